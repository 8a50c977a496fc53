"""What the venues' WebSocket dialects share: vectorized field formatting and the protocol base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.channel import Renderer
from cryptopipe_dagster.simulator.derive import mix64
from cryptopipe_dagster.simulator.feed import MarketFeed
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.trades import Trades, empty_trades
from cryptopipe_dagster.simulator.venues.common import Venue

if TYPE_CHECKING:
    from cryptopipe_dagster.simulator.hub import StreamHub

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def iso_times(epoch: np.ndarray, unit: str) -> list[str]:
    """Integer epoch times in `unit` ('ms', 'us', 'ns') -> ISO 8601 UTC with that many decimals + 'Z'."""
    text = np.datetime_as_string(epoch.astype(f"datetime64[{unit}]"), unit=unit)
    return [f"{t}Z" for t in text.tolist()]


def trade_hashes(trade_ids: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic 64-bit value per trade id (order ids and the like)."""
    return mix64(trade_ids.astype(np.int64).view(np.uint64) * _GOLDEN + np.uint64(salt))


def order_uuids(trade_ids: np.ndarray, salt: int) -> list[str]:
    """UUID-shaped order ids derived from trade ids (version-4 layout)."""
    high, low = trade_hashes(trade_ids, salt).tolist(), trade_hashes(trade_ids, salt + 1).tolist()
    return [
        f"{h >> 32:08x}-{(h >> 16) & 0xFFFF:04x}-4{h & 0xFFF:03x}-"
        f"{0x8000 | (lo >> 48) & 0x3FFF:04x}-{lo & 0xFFFFFFFFFFFF:012x}"
        for h, lo in zip(high, low, strict=True)
    ]


@dataclass(frozen=True)
class RunningCandles:
    """The candle of each trade's bucket as of that trade (what an exchange pushes per trade)."""

    bucket_ms: np.ndarray  # open time of the bucket
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    vwap: np.ndarray  # float, in price units (not ticks)
    last_of_bucket: np.ndarray  # bool: the bucket's final state within these trades


def running_candles(market: Market, trades: Trades, bucket_ms: int) -> RunningCandles:
    """Running OHLCV per bucket, vectorized: trades must be ascending."""
    bucket = trades.ts_ms - trades.ts_ms % bucket_ms
    n = len(bucket)
    starts = np.ones(n, dtype=bool)
    starts[1:] = bucket[1:] != bucket[:-1]
    segment = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)[segment]
    price, amount = trades.price, trades.amount
    # Offsetting each segment by more than the price range makes one running max restart per segment.
    span = int(price.max() - price.min() + 1) if n else 1
    offset = segment * span
    high = np.maximum.accumulate(price + offset) - offset
    low = -(np.maximum.accumulate(offset - price) - offset)
    cumulative = np.cumsum(amount)
    volume = cumulative - cumulative[first] + amount[first]
    weighted = np.cumsum(market.prices(price) * market.volumes(amount))
    notional = weighted - weighted[first] + (market.prices(price) * market.volumes(amount))[first]
    last = np.ones(n, dtype=bool)
    last[:-1] = starts[1:]
    return RunningCandles(
        bucket,
        price[first],
        high,
        low,
        price.copy(),
        volume,
        np.arange(n) - first + 1,
        np.round(notional / market.volumes(volume), market.price_decimals + 2),
        last,
    )


def recent_ledger_trades(feed: MarketFeed, limit: int) -> Trades:
    """The newest `limit` trades the feed has emitted (for snapshots on subscribe)."""
    ids, ts = feed.ledger.arrays()
    if not len(ids):
        return empty_trades()
    first_id, first_ts, last_ts = int(ids[-limit:][0]), int(ts[-limit:][0]), int(ts[-1])
    trades = series.trades_between(feed.market, first_ts, last_ts + 1, last_ts)
    return trades.select((trades.trade_id >= first_id) & (trades.trade_id <= int(ids[-1])))


class VenueStream:
    """Base of a venue's WebSocket dialect: subclasses set the ids, channels and message handling."""

    exchange_id = ""
    path = ""  # under /<exchange id>; "" is the venue's bare ws URL

    def __init__(self, venue: Venue, hub: StreamHub) -> None:
        self.venue, self.hub = venue, hub

    def channels(self) -> dict[str, Renderer]:
        """Channel name -> renderer; the first is the trades channel (it keeps the ledger)."""
        raise NotImplementedError

    def feed(self, symbol: str) -> MarketFeed | None:
        """The feed of a unified symbol, None when the venue does not serve it."""
        return self.hub.feed(self.exchange_id, symbol)

    async def on_open(self, conn: Connection) -> None:
        """Called once the socket is open (e.g. a status greeting)."""

    async def on_close(self, conn: Connection) -> None:
        """Called once the socket is gone."""

    async def on_message(self, conn: Connection, data: Any, raw: str) -> None:
        """One client message (`data` None when it was not JSON)."""
        raise NotImplementedError
