"""Trades derived from 1m bars: each minute's trades aggregate back to it exactly.

Trade ids are `minute_index * 1000 + n` (n < 1000), so they increase with time, are stable across
requests and encode where to resume a cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptopipe_dagster.simulator.derive import IntBars, bar_keys, points_needed, split_bars, uniforms
from cryptopipe_dagster.simulator.market_data import Market

MAX_TRADES_PER_MINUTE = 999
_TRADES_SALT = 2


@dataclass(frozen=True)
class Trades:
    """Trades in integer units, ascending by time (and id)."""

    ts_ms: np.ndarray
    trade_id: np.ndarray
    price: np.ndarray  # ticks
    amount: np.ndarray  # volume units
    is_sell: np.ndarray  # taker side

    def __len__(self) -> int:
        return len(self.ts_ms)

    def select(self, index: np.ndarray | slice) -> Trades:
        """Rows picked by a mask, index array or slice."""
        return Trades(
            self.ts_ms[index],
            self.trade_id[index],
            self.price[index],
            self.amount[index],
            self.is_sell[index],
        )

    @staticmethod
    def concat(parts: list[Trades]) -> Trades:
        """Rows of every part, in order."""
        if not parts:
            return empty_trades()
        return Trades(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("ts_ms", "trade_id", "price", "amount", "is_sell")
            )
        )


def empty_trades() -> Trades:
    """No trades."""
    ints = [np.empty(0, dtype=np.int64) for _ in range(4)]
    return Trades(*ints, np.empty(0, dtype=bool))


def trade_counts(market: Market, minutes: IntBars) -> np.ndarray:
    """How many trades each minute gets: none without volume, else enough to show its OHLC points."""
    need = points_needed(minutes)
    keys = bar_keys(market.key, minutes.ts, _TRADES_SALT)
    wanted = need + np.floor(uniforms(keys, 1, 8)[:, 0] * 12).astype(np.int64)
    wanted = np.minimum(wanted, np.minimum(minutes.volume, MAX_TRADES_PER_MINUTE))
    # A minute thinner than `need` units cannot be exact; the candle split never produces one
    # from real data (every traded minute carries >= 4 units).
    return np.where(minutes.volume > 0, np.maximum(wanted, np.minimum(need, minutes.volume)), 0)


def trades_of_minutes(market: Market, minutes: IntBars) -> Trades:
    """Every trade of the given 1m bars (ts in seconds), in time order."""
    traded = minutes.volume > 0
    minutes = minutes.select(traded)
    if len(minutes) == 0:
        return empty_trades()
    counts = trade_counts(market, minutes)
    keys = bar_keys(market.key, minutes.ts, _TRADES_SALT)
    split = split_bars(minutes, counts, keys, flat=True)
    width = split.valid.shape[1]
    # Sorted random offsets inside the minute; padding sorts last, so valid slots stay in front.
    offsets = np.floor(uniforms(keys, width, 9) * 60_000).astype(np.int64)
    offsets = np.sort(np.where(split.valid, offsets, 60_000), axis=1)
    sells = uniforms(keys, width, 10) < 0.5
    rows, cols = np.nonzero(split.valid)
    minute_ts = minutes.ts[rows]
    return Trades(
        ts_ms=minute_ts * 1000 + offsets[rows, cols],
        trade_id=(minute_ts // 60) * 1000 + cols,
        price=split.open[rows, cols],
        amount=split.volume[rows, cols],
        is_sell=sells[rows, cols],
    )


def aggregate_trades(trades: Trades, minute_ts: int) -> IntBars | None:
    """One bar from a minute's trades (for the minute that contains `now`), None without trades."""
    if len(trades) == 0:
        return None
    one = np.array
    return IntBars(
        one([minute_ts]),
        one([trades.price[0]]),
        one([trades.price.max()]),
        one([trades.price.min()]),
        one([trades.price[-1]]),
        one([trades.amount.sum()]),
    )
