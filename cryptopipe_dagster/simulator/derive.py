"""Split parent bars into children that aggregate back to them exactly; aggregate bars up again.

All arithmetic is on integers (price ticks, volume units), so "exactly" means exactly: for every
parent, children's first open == open, last close == close, max high == high, min low == low and
sum(volume) == volume. Randomness is counter-based (splitmix64 of a per-parent key), so a parent's
children never depend on which other parents were derived in the same call: serving is lazy, per
request, and still deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
# Every non-empty candle child carries at least this many volume units, so that the trades later
# derived from it can show open, high, low and close as four distinct one-unit trades.
MIN_CANDLE_CHILD_UNITS = 4


@dataclass(frozen=True)
class IntBars:
    """Bars in integer units: ts (int64 seconds or ms, ascending), prices in ticks, volume in units."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, index: np.ndarray | slice) -> IntBars:
        """Rows picked by a boolean mask, an index array or a slice."""
        return IntBars(*(column[index] for column in self.columns()))

    def columns(self) -> tuple[np.ndarray, ...]:
        """(ts, open, high, low, close, volume)."""
        return self.ts, self.open, self.high, self.low, self.close, self.volume

    @staticmethod
    def concat(parts: list[IntBars]) -> IntBars:
        """Rows of every part, in order."""
        if not parts:
            return empty_bars()
        return IntBars(*(np.concatenate(cols) for cols in zip(*(p.columns() for p in parts), strict=True)))


def empty_bars() -> IntBars:
    """A bar set with no rows."""
    return IntBars(*(np.empty(0, dtype=np.int64) for _ in range(6)))


@dataclass(frozen=True)
class Split:
    """Children laid out (parents, max children); `valid` marks the real ones (row-major = time order)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    valid: np.ndarray


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer over a uint64 array (wrapping arithmetic, no warnings)."""
    x = values.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def bar_keys(market_key: int, ts: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic 64-bit key per bar, from the market's key, the bar's open time and a salt."""
    offset = np.uint64((market_key + salt * 0xD1B54A32D192ED03) & _MASK64)
    return mix64(ts.astype(np.int64).view(np.uint64) * np.uint64(_GOLDEN) + offset)


def uniforms(keys: np.ndarray, width: int, stream: int) -> np.ndarray:
    """(len(keys), width) floats in [0, 1), a pure function of (key, column, stream)."""
    stream_offset = np.uint64((stream * _GOLDEN) & _MASK64)
    base = mix64(keys + stream_offset)
    columns = np.arange(1, width + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    bits = mix64(base[:, None] + columns[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def split_bars(parents: IntBars, counts: np.ndarray | int, keys: np.ndarray, *, flat: bool = False) -> Split:
    """Split every parent bar into `counts` children that aggregate back to it exactly.

    flat=False: candle children (child i opens at child i-1's close, wicks inside the parent's range).
    flat=True: point children with open == high == low == close, e.g. trades; exact whenever
    count >= points_needed(parent) and count <= volume (each point carries >= 1 unit).
    """
    o, h, lo, c, v = (np.asarray(x, dtype=np.int64) for x in parents.columns()[1:])
    n = np.broadcast_to(np.asarray(counts, dtype=np.int64), o.shape)
    width = int(n.max()) if len(n) else 0
    valid = np.arange(width)[None, :] < n[:, None]
    if width == 0:
        empty = np.zeros(valid.shape, dtype=np.int64)
        return Split(empty, empty, empty, empty, empty, valid)
    if flat:
        if np.any(n > v):
            raise ValueError("flat children carry at least one volume unit each: count must be <= volume")
        volume = _allocate(v, valid, np.ones_like(v), uniforms(keys, width, 1))
        path = _flat_path(o, h, lo, c, n, valid, keys)
        return Split(path, path, path, path, volume, valid)
    active = _active_children(v, n, valid, keys)
    volume = _allocate(v, active, np.minimum(v, MIN_CANDLE_CHILD_UNITS), uniforms(keys, width, 1))
    # Children without volume are flat at the previous close; a zero-volume parent still moves.
    movers = np.where((v > 0)[:, None], active, valid)
    return _candle_children(o, h, lo, c, movers, valid, volume, keys)


def points_needed(parents: IntBars) -> np.ndarray:
    """How many flat children a parent needs at least: its distinct open, high, low, close points."""
    o, h, lo, c = parents.open, parents.high, parents.low, parents.close
    moving = (o != c) | (h != lo)
    extra = ((h != o) & (h != c)).astype(np.int64) + ((lo != o) & (lo != c)).astype(np.int64)
    return np.where(moving, 2 + extra, 1)


def _active_children(v: np.ndarray, n: np.ndarray, valid: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which children get volume: all of them unless the parent is too thin to give each the minimum."""
    n_active = np.where(v >= MIN_CANDLE_CHILD_UNITS * n, n, np.clip(v // MIN_CANDLE_CHILD_UNITS, 1, n))
    n_active = np.where(v > 0, n_active, 0)
    if np.all(n_active == n):
        return valid
    draws = np.where(valid, uniforms(keys, valid.shape[1], 2), 2.0)
    rank = np.argsort(np.argsort(draws, axis=1), axis=1)
    return rank < n_active[:, None]


def _allocate(total: np.ndarray, active: np.ndarray, base: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Integer shares of `total` over active children: `base` each, the rest by random weights."""
    rest = total - base * active.sum(axis=1)
    # +1e-9 keeps every active weight positive, so no unit can land on an inactive child.
    weights = np.where(active, 1e-9 - np.log1p(-u), 0.0)
    cumulative = np.cumsum(weights, axis=1)
    grand = cumulative[:, -1:]
    fraction = np.divide(cumulative, grand, out=np.zeros_like(cumulative), where=grand > 0)
    shares = np.maximum.accumulate(np.floor(rest[:, None] * fraction).astype(np.int64), axis=1)
    if shares.shape[1]:
        shares[:, -1] = np.where(active.any(axis=1), rest, 0)
    extra = np.diff(shares, axis=1, prepend=0)
    return np.where(active, base[:, None], 0) + extra


def _bridge(o, c, lo, h, steps_mask, keys, stream) -> np.ndarray:
    """A random walk pinned to o before the first step and to c after the last, kept inside [lo, h]."""
    u = uniforms(keys, steps_mask.shape[1], stream)
    walk = np.cumsum(np.where(steps_mask, 2.0 * u - 1.0, 0.0), axis=1)
    taken = np.cumsum(steps_mask, axis=1)
    t = taken / np.maximum(taken[:, -1:], 1)
    bridge = walk - walk[:, -1:] * t
    span = np.abs(bridge).max(axis=1, keepdims=True) if bridge.shape[1] else np.ones((len(o), 1))
    scale = 0.35 * (h - lo)[:, None] / np.where(span > 0, span, 1.0)
    path = o[:, None] + (c - o)[:, None] * t + scale * bridge
    return np.clip(np.rint(path), lo[:, None], h[:, None]).astype(np.int64)


def _candle_children(o, h, lo, c, movers, valid, volume, keys) -> Split:
    width = valid.shape[1]
    rows = np.arange(len(o))
    close = _bridge(o, c, lo, h, movers, keys, 3)
    last = np.maximum(valid.sum(axis=1) - 1, 0)
    has_children = valid.any(axis=1)
    close[rows[has_children], last[has_children]] = c[has_children]
    opens = np.concatenate([o[:, None], close[:, :-1]], axis=1) if width else close.copy()
    body_hi, body_lo = np.maximum(opens, close), np.minimum(opens, close)
    u_hi, u_lo = uniforms(keys, width, 4), uniforms(keys, width, 5)
    high = np.where(movers, body_hi + np.floor(u_hi * u_hi * 0.5 * (h[:, None] - body_hi)), body_hi)
    low = np.where(movers, body_lo - np.floor(u_lo * u_lo * 0.5 * (body_lo - lo[:, None])), body_lo)
    high, low = high.astype(np.int64), low.astype(np.int64)
    # The parent's extremes go where the path already runs highest / lowest.
    any_mover = movers.any(axis=1)
    at_high = np.argmax(np.where(movers, body_hi, np.iinfo(np.int64).min), axis=1)
    at_low = np.argmin(np.where(movers, body_lo, np.iinfo(np.int64).max), axis=1)
    high[rows[any_mover], at_high[any_mover]] = h[any_mover]
    low[rows[any_mover], at_low[any_mover]] = lo[any_mover]
    return Split(opens, high, low, close, volume, valid)


def _flat_path(o, h, lo, c, n, valid, keys) -> np.ndarray:
    """Points from o to c that visit h and lo at random interior positions."""
    width = valid.shape[1]
    rows = np.arange(len(o))
    steps = valid & (np.arange(width)[None, :] >= 1)
    path = _bridge(o, c, lo, h, steps, keys, 6)
    if width == 0:
        return path
    nonempty = n > 0
    path[rows[nonempty], 0] = o[nonempty]
    path[rows[nonempty], n[nonempty] - 1] = c[nonempty]
    need_h = (h != o) & (h != c)
    need_lo = (lo != o) & (lo != c) & (lo != h)
    interior = np.maximum(n - 2, 0)
    u = uniforms(keys, 2, 7)
    at_h = 1 + np.floor(u[:, 0] * interior).astype(np.int64)
    # When both are needed, the low goes to a different interior slot than the high.
    shift = 1 + np.floor(u[:, 1] * np.maximum(interior - 1, 0)).astype(np.int64)
    at_lo = np.where(need_h, 1 + (at_h - 1 + shift) % np.maximum(interior, 1), at_h)
    put_h = need_h & (interior >= 1)
    put_lo = need_lo & (interior >= np.where(need_h, 2, 1))
    path[rows[put_h], at_h[put_h]] = h[put_h]
    path[rows[put_lo], at_lo[put_lo]] = lo[put_lo]
    return path


def flatten(split: Split) -> tuple[np.ndarray, np.ndarray, IntBars]:
    """(parent row, child index, children as IntBars with ts=0) for the valid children, in order."""
    parent, child = np.nonzero(split.valid)
    bars = IntBars(
        np.zeros(len(parent), dtype=np.int64),
        split.open[parent, child],
        split.high[parent, child],
        split.low[parent, child],
        split.close[parent, child],
        split.volume[parent, child],
    )
    return parent, child, bars


def aggregate(bars: IntBars, step: int) -> IntBars:
    """Roll ascending bars up into `step`-aligned buckets (first open, max high, min low, last close)."""
    if len(bars) == 0:
        return bars
    bucket = bars.ts - bars.ts % step
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    ends = np.concatenate([starts[1:], [len(bucket)]]) - 1
    return IntBars(
        bucket[starts],
        bars.open[starts],
        np.maximum.reduceat(bars.high, starts),
        np.minimum.reduceat(bars.low, starts),
        bars.close[ends],
        np.add.reduceat(bars.volume, starts),
    )
