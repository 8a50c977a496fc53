"""Timeframe strings ('1m', '1h', '1d') <-> durations; the one place that parses them."""

from __future__ import annotations

import re

from cryptopipe_dagster.lib.errors import InvalidTimeframe

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIMEFRAME = re.compile(r"^([1-9][0-9]{0,3})([smhdw])$")


def timeframe_seconds(timeframe: str) -> int:
    """Length of one candle of `timeframe` in seconds; raises InvalidTimeframe on anything else."""
    match = _TIMEFRAME.match(timeframe) if isinstance(timeframe, str) else None
    if match is None:
        raise InvalidTimeframe(timeframe)
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle of `timeframe` in milliseconds."""
    return timeframe_seconds(timeframe) * 1000
