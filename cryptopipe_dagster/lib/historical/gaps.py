"""Missing candles in a time range, computed from the stored open times in one vectorized pass.

Candle open times sit on a grid of the timeframe's length anchored at the Unix epoch; weekly
candles may instead be anchored on Mondays (Binance and most exchanges), so the grid's phase is
taken from the stored candles themselves when there are any.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.timeframes import timeframe_seconds


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _grid(start: pd.Timestamp, end: pd.Timestamp, step: int, phase: int) -> tuple[int, int]:
    """First grid point >= start and first grid point >= end, in ns, for grid `phase + k*step`."""
    first = -((phase - _utc(start).value) // step) * step + phase
    stop = -((phase - _utc(end).value) // step) * step + phase
    return first, stop


def expected_candle_count(start: pd.Timestamp, end: pd.Timestamp, timeframe: str) -> int:
    """How many epoch-aligned candles open in [start, end) (end exclusive)."""
    step = timeframe_seconds(timeframe) * 1_000_000_000
    first, stop = _grid(start, end, step, 0)
    return max(0, (stop - first) // step)


def _as_utc_ns(timestamps: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(pd.Series(timestamps), utc=True)
    return stamps.dropna().dt.as_unit("ns").array.asi8


def find_gaps(
    timestamps: pd.Series, start: pd.Timestamp, end: pd.Timestamp, timeframe: str
) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Runs of missing candles in [start, end): (first missing open, last missing open, count).

    Both bounds of a gap are candle open times and inclusive, so re-fetching [first, last + step)
    repairs it. Timestamps outside the range or off the grid are ignored.
    """
    step = timeframe_seconds(timeframe) * 1_000_000_000
    present = np.unique(_as_utc_ns(timestamps))
    phase = int(present[0] % step) if len(present) else 0
    first, stop = _grid(start, end, step, phase)
    if stop <= first:
        return []
    present = present[(present >= first) & (present < stop) & ((present - phase) % step == 0)]
    # Sentinels one step outside the range turn leading and trailing holes into ordinary gaps.
    edges = np.concatenate(([first - step], present, [stop]))
    jumps = np.diff(edges)
    at = np.flatnonzero(jumps > step)
    gap_from = edges[at] + step
    gap_to = edges[at + 1] - step
    missing = jumps[at] // step - 1
    return [
        (pd.Timestamp(a, unit="ns", tz="UTC"), pd.Timestamp(b, unit="ns", tz="UTC"), int(m))
        for a, b, m in zip(gap_from, gap_to, missing, strict=True)
    ]
