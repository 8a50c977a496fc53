from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryptopipe_dagster.lib.historical.gaps import expected_candle_count, find_gaps

START = pd.Timestamp("2024-01-01", tz="UTC")


def minutes(*offsets: int) -> pd.Series:
    return pd.Series([START + pd.Timedelta(minutes=m) for m in offsets])


def at(m: int) -> pd.Timestamp:
    return START + pd.Timedelta(minutes=m)


def test_no_gaps() -> None:
    assert find_gaps(minutes(*range(10)), START, at(10), "1m") == []


def test_leading_inner_and_trailing_gaps_are_exact() -> None:
    gaps = find_gaps(minutes(2, 3, 6, 7), START, at(10), "1m")
    assert gaps == [(at(0), at(1), 2), (at(4), at(5), 2), (at(8), at(9), 2)]


def test_empty_input_is_one_gap_over_the_whole_range() -> None:
    assert find_gaps(pd.Series([], dtype="datetime64[ns, UTC]"), START, at(5), "1m") == [(at(0), at(4), 5)]


def test_unaligned_range_bounds_and_outside_timestamps() -> None:
    gaps = find_gaps(minutes(-5, 1, 2, 50), START + pd.Timedelta(seconds=30), at(4), "1m")
    assert gaps == [(at(3), at(3), 1)]


def test_weekly_grid_follows_the_stored_phase() -> None:
    mondays = pd.Series(pd.date_range("2024-01-01", periods=5, freq="7D", tz="UTC")).drop(index=2)
    gaps = find_gaps(
        mondays, pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-02-01", tz="UTC"), "1w"
    )
    assert gaps == [(pd.Timestamp("2024-01-15", tz="UTC"), pd.Timestamp("2024-01-15", tz="UTC"), 1)]


@pytest.mark.parametrize(
    ("start", "end", "timeframe", "count"),
    [
        (at(0), at(10), "1m", 10),
        (at(0), at(0), "1m", 0),
        (at(5), at(0), "1m", 0),
        (START + pd.Timedelta(seconds=1), at(10), "1m", 9),
        (START, START + pd.Timedelta(days=2), "1h", 48),
    ],
)
def test_expected_candle_count(start: pd.Timestamp, end: pd.Timestamp, timeframe: str, count: int) -> None:
    assert expected_candle_count(start, end, timeframe) == count


@given(present=st.sets(st.integers(0, 199), max_size=200))
def test_property_gaps_cover_exactly_the_missing_candles(present: set[int]) -> None:
    gaps = find_gaps(minutes(*sorted(present)), START, at(200), "1m")
    missing = set()
    for first, last, count in gaps:
        run = range(
            int((first - START) / pd.Timedelta(minutes=1)), int((last - START) / pd.Timedelta(minutes=1)) + 1
        )
        assert len(run) == count > 0
        missing.update(run)
    assert missing == set(range(200)) - present
    assert sum(g[2] for g in gaps) + len(present) == expected_candle_count(START, at(200), "1m")
    assert np.all(np.diff([g[0].value for g in gaps]) > 0)
