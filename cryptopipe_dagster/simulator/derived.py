"""Derived markets: extra streamable markets made from the recordings, for benchmarks and load tests.

The recordings hold four series (five streamable markets once Kraken serves the Coinbase one); a
load test needs a hundred. Derived market i (1-based) is:

- `S{i:03d}/<source quote>` (S001/USD, S002/USD, ...): an invented base, never a real asset, that the
  pipeline's symbol validator accepts in every venue's spelling (S001-USD, s001usd, S001USD);
- served by venue `(i - 1) % 3` of the streaming venues (coinbaseexchange, bitstamp, kraken);
- a copy of recorded series `(i - 1) % 4` (the store's markets by exchange and symbol) with the same
  bar times and volumes and every price times an exact factor m * 10**-k (m in 101..999, k in 2..5,
  from a hash of i), kept as k more price decimals so the scaled bars are exact integers in the same
  open/high/low/close order;
- derived further with its own key (seed, venue, symbol): its 1m candles and trades differ from the
  source's and every other market's, yet aggregate exactly to its own bars, and it trades at its
  source's rates (~0.16 trades per second at replay speed 1).

Market i does not depend on how many are asked for, so a simulator started with `derived_markets=N`
serves `streamable_markets(count)` for every count up to the recorded ones + N.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.simulator.clock import SimClock
from cryptopipe_dagster.simulator.derive import IntBars
from cryptopipe_dagster.simulator.market_data import Market, MarketStore, cached_store, market_key
from cryptopipe_dagster.simulator.venues import STREAMS, venues_for

MAX_DERIVED = 999  # keeps the base at S + three digits
_EXACT_TICKS = 2**53  # scaled prices must stay exactly representable as floats


def derived_symbol(index: int, quote: str) -> str:
    """The unified symbol of derived market `index` (1-based), e.g. S001/USD."""
    return f"S{index:03d}/{quote}"


def price_factor(index: int) -> tuple[int, int]:
    """(m, k): derived market `index` multiplies its source's prices by m * 10**-k."""
    digest = hashlib.blake2b(f"derived|{index}".encode(), digest_size=8).digest()
    bits = int.from_bytes(digest, "little")
    return 101 + bits % 899, 2 + (bits >> 32) % 4


def derive_market(source: Market, index: int, exchange: str, seed: int) -> Market:
    """Derived market `index` on `exchange`: `source`'s bars with prices scaled, its own key."""
    multiplier, extra_decimals = price_factor(index)
    if int(source.bars.high.max(initial=0)) * multiplier >= _EXACT_TICKS:
        raise ValueError(f"{source.exchange}:{source.symbol} prices are too fine to scale exactly")
    bars = source.bars
    scaled = IntBars(
        bars.ts,  # shared, not copied: only prices change
        bars.open * multiplier,
        bars.high * multiplier,
        bars.low * multiplier,
        bars.close * multiplier,
        bars.volume,
    )
    symbol = derived_symbol(index, source.quote)
    return dataclasses.replace(
        source,
        exchange=exchange,
        symbol=symbol,
        price_decimals=source.price_decimals + extra_decimals,
        bars=scaled,
        key=market_key(seed, exchange, symbol),
        derived_from=f"{source.exchange}:{source.symbol}",
        price_factor=format(Decimal(multiplier).scaleb(-extra_decimals).normalize(), "f"),
    )


def streaming_venues(store: MarketStore) -> list[str]:
    """ccxt ids of the venues that serve `store` with a WebSocket stream, in serving order."""
    return [venue.exchange_id for venue in venues_for(store.exchanges()) if venue.exchange_id in STREAMS]


def derived_markets(store: MarketStore, count: int) -> list[Market]:
    """Derived markets 1..count (see the module docstring); ValueError beyond MAX_DERIVED or when
    there is no recording (or no streaming venue) to derive from."""
    if not 0 <= count <= MAX_DERIVED:
        raise ValueError(f"derived markets must be between 0 and {MAX_DERIVED}, got {count}")
    if count == 0:
        return []
    sources, venues = store.all_markets(), streaming_venues(store)
    if not sources or not venues:
        raise ValueError("no recording with a streaming venue to derive markets from")
    return [
        derive_market(sources[(i - 1) % len(sources)], i, venues[(i - 1) % len(venues)], store.seed)
        for i in range(1, count + 1)
    ]


def recorded_streamable(store: MarketStore) -> list[str]:
    """`exchange:SYMBOL` of every recorded market a venue streams (Kraken's is the Coinbase one)."""
    clock = SimClock()
    return [
        f"{venue.exchange_id}:{market.symbol}"
        for venue in venues_for(store.exchanges())
        if venue.exchange_id in STREAMS
        for market in venue(store, clock).markets
    ]


def streamable_markets(count: int, data_dir: Path | None = None) -> list[str]:
    """The first `count` markets the simulator can stream, as "exchange:BASE/QUOTE": the recorded
    ones first (coinbaseexchange:BTC/USD, bitstamp:BTC/USD, ETH/USD, LTC/USD, kraken:BTC/USD), then
    derived ones in order (coinbaseexchange:S001/USD, bitstamp:S002/USD, kraken:S003/USD, ...).

    A simulator started with `derived_markets=count` (`cryptopipe sim --derived-markets N`) serves
    all of them (it needs count minus the recorded ones; extra markets cost nothing until
    subscribed). `data_dir` defaults to the settings' data directory. ValueError when count < 0 or
    more than the recorded ones + MAX_DERIVED.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    store = cached_store(Path(data_dir) if data_dir is not None else _default_data_dir())
    recorded = recorded_streamable(store)
    derived = derived_markets(store, max(0, count - len(recorded)))
    return [*recorded, *(f"{m.exchange}:{m.symbol}" for m in derived)][:count]


def streamable_window(data_dir: Path | None = None) -> tuple[datetime, datetime]:
    """(start, end) that every recorded series, and so every derived market, covers: a replay
    started in it streams all markets (except inside a gap of a recording, e.g. Bitstamp's
    2019-03-20 .. 2019-03-31 outage). ValueError when the recordings do not overlap."""
    store = cached_store(Path(data_dir) if data_dir is not None else _default_data_dir())
    markets = store.all_markets()
    if not markets:
        raise ValueError("no recordings")
    start = max(int(m.bars.ts[0]) for m in markets)
    end = min(int(m.bars.ts[-1]) + m.timeframe_s for m in markets)
    if end <= start:
        raise ValueError("the recordings do not overlap")
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def _default_data_dir() -> Path:
    return load_settings().data_dir
