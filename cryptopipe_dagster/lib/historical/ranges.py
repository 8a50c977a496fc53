"""Sets of loaded time ranges: what a checkpoint holds per (exchange, symbol, timeframe).

A range set is a sorted tuple of disjoint, non-adjacent [start, end) pairs. Adding a range merges
it with every range it overlaps or touches, so two disjoint backfills, a resume and a covering run
compose into the smallest set of ranges, and a backfill asks only for the parts of its window that
no range covers.
"""

from __future__ import annotations

import pandas as pd

Range = tuple[pd.Timestamp, pd.Timestamp]
RangeSet = tuple[Range, ...]


def add_range(ranges: RangeSet, start: pd.Timestamp, end: pd.Timestamp) -> RangeSet:
    """`ranges` with [start, end) added; overlapping or adjacent ranges become one."""
    if end <= start:
        return tuple(ranges)
    merged: list[Range] = []
    for lo, hi in sorted([*ranges, (start, end)]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def missing_parts(ranges: RangeSet, start: pd.Timestamp, end: pd.Timestamp) -> list[Range]:
    """The parts of [start, end) that no range covers, in time order."""
    parts: list[Range] = []
    cursor = start
    for lo, hi in sorted(ranges):
        if hi <= cursor or lo >= end:
            continue
        if lo > cursor:
            parts.append((cursor, min(lo, end)))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        parts.append((cursor, end))
    return parts
