"""The contract between Dagster partitions and the dbt models: the vars of one run."""

from __future__ import annotations

import datetime as dt
import json


def dbt_window_vars(start: dt.datetime, end: dt.datetime, exchanges: list[str]) -> str:
    """--vars for a run over [start, end) of some exchanges (ISO timestamps, UTC, end exclusive)."""
    return json.dumps(
        {
            "window_start": start.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "window_end": end.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "exchanges": sorted(exchanges),
        }
    )
