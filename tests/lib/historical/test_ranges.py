"""Range sets of the checkpoint: merging, and what a window still lacks."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from cryptopipe_dagster.lib.historical.ranges import add_range, missing_parts

T0 = pd.Timestamp("2019-01-01", tz="UTC")
H = pd.Timedelta(hours=1)


def at(hours: int) -> pd.Timestamp:
    return T0 + hours * H


def covered(ranges) -> set[int]:
    return {h for lo, hi in ranges for h in range((lo - T0) // H, (hi - T0) // H)}


def test_adjacent_and_overlapping_ranges_merge() -> None:
    ranges = add_range(add_range((), at(0), at(5)), at(10), at(12))
    assert ranges == ((at(0), at(5)), (at(10), at(12)))
    assert add_range(ranges, at(5), at(10)) == ((at(0), at(12)),)  # touches both: one range
    assert add_range(ranges, at(3), at(11)) == ((at(0), at(12)),)
    assert add_range(ranges, at(7), at(7)) == ranges  # empty range: nothing


def test_missing_parts_of_a_window() -> None:
    ranges = ((at(0), at(5)), (at(10), at(12)))
    assert missing_parts(ranges, at(2), at(11)) == [(at(5), at(10))]
    assert missing_parts(ranges, at(0), at(20)) == [(at(5), at(10)), (at(12), at(20))]
    assert missing_parts(ranges, at(1), at(4)) == []
    assert missing_parts((), at(1), at(4)) == [(at(1), at(4))]


spans = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20)), max_size=12)


@given(spans, st.integers(0, 70), st.integers(0, 70))
def test_range_set_is_the_union_and_missing_is_its_complement(pairs, lo, hi) -> None:
    ranges: tuple = ()
    for start, length in pairs:
        ranges = add_range(ranges, at(start), at(start + length))
    expected = {h for start, length in pairs for h in range(start, start + length)}
    assert covered(ranges) == expected
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # disjoint, not adjacent
    window = set(range(lo, hi))
    parts = missing_parts(ranges, at(lo), at(hi))
    assert covered(parts) == window - expected
    assert covered(parts).isdisjoint(expected)
