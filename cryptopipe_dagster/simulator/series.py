"""Time-window queries over one market: candles of any step and trades, as of a clock's `now`.

Coarser steps than the recording are rolled up from recorded bars; finer ones from derived 1m bars.
Nothing after `now` exists; the bar containing `now` is built from what happened up to `now`
(complete minutes plus the current minute's trades so far), as a real exchange serves it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptopipe_dagster.simulator.derive import IntBars, aggregate, bar_keys, empty_bars, split_bars
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.trades import Trades, aggregate_trades, empty_trades, trades_of_minutes

MINUTE_S = 60
_MINUTES_SALT = 1
_CHUNK_MS = 3_600_000  # trade cursors walk the tape an hour at a time


def candles(market: Market, step: int, first_s: int, last_s: int, now_ms: int) -> IntBars:
    """Bars of `step` seconds whose open time lies in [first_s, last_s], none opening after now."""
    first = -(-first_s // step) * step
    last = (min(last_s, now_ms // 1000) // step) * step
    if last < first:
        return empty_bars()
    if step % market.timeframe_s == 0:
        base = recorded_bars(market, first, last + step, now_ms)
        return base if step == market.timeframe_s else aggregate(base, step)
    base = minutes_between(market, first, last + step, now_ms)
    return base if step == MINUTE_S else aggregate(base, step)


def recorded_slice(market: Market, step: int, first_s: int, last_s: int, now_ms: int) -> slice | None:
    """When `candles(...)` would be exactly a run of complete recorded bars, their index range
    (lets venues serve pre-rendered rows); None otherwise."""
    if step != market.timeframe_s:
        return None
    ts = market.bars.ts
    lo = int(np.searchsorted(ts, first_s, "left"))
    hi = int(np.searchsorted(ts, min(last_s, now_ms // 1000), "right"))
    if hi > lo and (int(ts[hi - 1]) + step) * 1000 > now_ms:
        return None
    return slice(lo, max(lo, hi))


def recorded_bars(market: Market, start_s: int, end_s: int, now_ms: int) -> IntBars:
    """Recorded bars opening in [start_s, end_s) and not after now; the one containing now partial."""
    ts = market.bars.ts
    lo = int(np.searchsorted(ts, start_s, "left"))
    hi = int(np.searchsorted(ts, end_s, "left"))
    hi = min(hi, int(np.searchsorted(market.bars_ms, now_ms, "right")))
    if hi <= lo:
        return empty_bars()
    bars = market.bars.select(slice(lo, hi))
    if (int(ts[hi - 1]) + market.timeframe_s) * 1000 <= now_ms:
        return bars
    partial = partial_parent(market, hi - 1, now_ms)
    complete = bars.select(slice(0, len(bars) - 1))
    return complete if partial is None else IntBars.concat([complete, partial])


def partial_parent(market: Market, index: int, now_ms: int) -> IntBars | None:
    """The recorded bar `index` as seen at `now`: its derived minutes (and trades) up to now."""
    start = int(market.bars.ts[index])
    minutes = minutes_between(market, start, start + market.timeframe_s, now_ms)
    if len(minutes) == 0:
        return None
    one = np.array
    return IntBars(
        one([start]),
        minutes.open[:1],
        one([minutes.high.max()]),
        one([minutes.low.min()]),
        minutes.close[-1:],
        one([minutes.volume.sum()]),
    )


def minutes_of_parents(market: Market, lo: int, hi: int) -> IntBars:
    """Every derived 1m bar of recorded bars lo..hi-1 (the whole bars, regardless of now)."""
    if hi <= lo:
        return empty_bars()
    parents = market.bars.select(slice(lo, hi))
    overlay = market.minute_overlay
    if overlay is not None:  # a scenario (flash crash): split the recorded bars, then change minutes
        parents = overlay.source_parents(parents)
    per_parent = market.timeframe_s // MINUTE_S
    keys = bar_keys(market.key, parents.ts, _MINUTES_SALT)
    split = split_bars(parents, per_parent, keys)
    offsets = np.arange(per_parent, dtype=np.int64) * MINUTE_S
    ts = (parents.ts[:, None] + offsets[None, :]).ravel()
    minutes = IntBars(
        ts,
        split.open.ravel(),
        split.high.ravel(),
        split.low.ravel(),
        split.close.ravel(),
        split.volume.ravel(),
    )
    return minutes if overlay is None else overlay.apply(minutes)


def minutes_between(market: Market, start_s: int, end_s: int, now_ms: int) -> IntBars:
    """1m bars opening in [start_s, end_s): complete minutes, plus the current one from its trades."""
    minutes = _minutes_in(market, start_s, end_s)
    opened_ms = minutes.ts * 1000
    complete = opened_ms + MINUTE_S * 1000 <= now_ms
    out = minutes.select(complete)
    current = np.flatnonzero(~complete & (opened_ms <= now_ms))
    if len(current) == 0:
        return out
    minute = minutes.select(current[:1])
    trades = trades_of_minutes(market, minute)
    partial = aggregate_trades(trades.select(trades.ts_ms <= now_ms), int(minute.ts[0]))
    return out if partial is None else IntBars.concat([out, partial])


def _minutes_in(market: Market, start_s: int, end_s: int) -> IntBars:
    ts = market.bars.ts
    lo = int(np.searchsorted(ts, start_s - market.timeframe_s + 1, "left"))
    hi = int(np.searchsorted(ts, end_s, "left"))
    minutes = minutes_of_parents(market, lo, hi)
    return minutes.select((minutes.ts >= start_s) & (minutes.ts < end_s))


def trades_between(market: Market, start_ms: int, end_ms: int, now_ms: int) -> Trades:
    """Trades with start_ms <= time < end_ms and time <= now, ascending."""
    end_ms = min(end_ms, now_ms + 1)
    if end_ms <= start_ms:
        return empty_trades()
    start_s = (start_ms // 60_000) * MINUTE_S
    end_s = -(-end_ms // 60_000) * MINUTE_S
    trades = trades_of_minutes(market, _minutes_in(market, start_s, end_s))
    return trades.select((trades.ts_ms >= start_ms) & (trades.ts_ms < end_ms))


def trades_older_than(market: Market, trade_id: int | None, limit: int, now_ms: int) -> Trades:
    """The `limit` newest trades with id < trade_id (or the latest ones when None), ascending."""
    end = now_ms + 1
    if trade_id is not None:
        end = min(end, (trade_id // 1000 + 1) * 60_000)
    parts: list[Trades] = []
    found = 0
    while found < limit:
        p = int(np.searchsorted(market.bars_ms, end - 1, "right")) - 1
        if p < 0:
            break
        parent_start = int(market.bars_ms[p])
        end = min(end, parent_start + market.timeframe_s * 1000)
        start = max(end - _CHUNK_MS, parent_start)
        chunk = trades_between(market, start, end, now_ms)
        if trade_id is not None:
            chunk = chunk.select(chunk.trade_id < trade_id)
        parts.insert(0, chunk)
        found += len(chunk)
        end = start
    trades = Trades.concat(parts)
    return trades.select(slice(max(0, len(trades) - limit), None))


def trades_newer_than(market: Market, trade_id: int, limit: int, now_ms: int) -> Trades:
    """The `limit` oldest trades with id > trade_id and time <= now, ascending."""
    start = (trade_id // 1000) * 60_000
    bars_ms, length_ms = market.bars_ms, market.timeframe_s * 1000
    parts: list[Trades] = []
    found = 0
    while found < limit and start <= now_ms:
        p = int(np.searchsorted(bars_ms, start, "right")) - 1
        if p < 0 or int(bars_ms[p]) + length_ms <= start:  # before the recording or in a gap: skip ahead
            p += 1
            if p >= len(bars_ms):
                break
            start = int(bars_ms[p])
        end = min(start + _CHUNK_MS, int(bars_ms[p]) + length_ms)
        chunk = trades_between(market, start, end, now_ms)
        chunk = chunk.select(chunk.trade_id > trade_id)
        parts.append(chunk)
        found += len(chunk)
        start = end
    return Trades.concat(parts).select(slice(0, limit))


def derived_minute_candles(market: Market, day_start_s: int) -> pd.DataFrame:
    """The exact 1m children of every recorded bar opening in the UTC day from `day_start_s`, as
    candle rows (exchange, symbol, timeframe, ts, open, high, low, close, volume)."""
    lo, hi = np.searchsorted(market.bars.ts, [day_start_s, day_start_s + 86_400])
    minutes = minutes_of_parents(market, int(lo), int(hi))
    return pd.DataFrame(
        {
            "exchange": market.exchange,
            "symbol": market.symbol,
            "timeframe": "1m",
            "ts": pd.to_datetime(minutes.ts, unit="s", utc=True),
            "open": market.prices(minutes.open),
            "high": market.prices(minutes.high),
            "low": market.prices(minutes.low),
            "close": market.prices(minutes.close),
            "volume": market.volumes(minutes.volume),
        }
    )
