"""The simulator's store: recorded bars per (exchange, symbol) in integer units, plus unit <-> text."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.timeframes import timeframe_seconds
from cryptopipe_dagster.simulator.derive import IntBars
from cryptopipe_dagster.simulator.recordings import load_recordings

VOLUME_DECIMALS = 8  # volume units are 1e-8 of the base currency (a satoshi for BTC)


@dataclass(frozen=True)
class Market:
    """One recorded market: its bars in ticks/units and the scales to turn them back into decimals."""

    exchange: str
    symbol: str  # unified, e.g. BTC/USD
    timeframe_s: int  # the recording's bar length
    price_decimals: int  # max decimals seen in the recorded prices: one tick = 10**-price_decimals
    bars: IntBars  # ts in seconds, ascending
    key: int  # 64-bit derivation key from (seed, exchange, symbol)
    bars_ms: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, dtype=np.int64))
    derived_from: str = ""  # "exchange:SYMBOL" of the recording a derived market scales (derived.py)
    price_factor: str = "1"  # exact decimal factor applied to the source's prices
    # A scenario changing the derived minutes (flash_crash.CrashOverlay): series.minutes_of_parents
    # splits `source_parents(parents)` and returns `apply(minutes)`.
    minute_overlay: Any = field(default=None, repr=False)

    @property
    def base(self) -> str:
        """Base currency code, e.g. BTC."""
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        """Quote currency code, e.g. USD."""
        return self.symbol.split("/")[1]

    @property
    def price_scale(self) -> float:
        """Ticks per unit of price."""
        return float(10**self.price_decimals)

    def prices(self, ticks: np.ndarray) -> np.ndarray:
        """Ticks -> floats; IEEE division is correctly rounded, so repr() gives the exact decimal."""
        return ticks.astype(np.float64) / self.price_scale

    def volumes(self, units: np.ndarray) -> np.ndarray:
        """Volume units -> floats whose repr() is the exact decimal."""
        return units.astype(np.float64) / float(10**VOLUME_DECIMALS)

    def price_texts(self, ticks: np.ndarray) -> list[str]:
        """Ticks -> fixed-point decimal strings with the market's decimals, e.g. '8051.00'."""
        return format_fixed(ticks, self.price_decimals)

    def volume_texts(self, units: np.ndarray) -> list[str]:
        """Volume units -> fixed-point decimal strings with 8 decimals, as Bitstamp prints amounts."""
        return format_fixed(units, VOLUME_DECIMALS)


def format_fixed(values: np.ndarray, decimals: int) -> list[str]:
    """Exact fixed-point text of integers scaled by 10**-decimals (formatting a correctly rounded
    float to `decimals` places gives back the exact decimal while values stay below 2**53)."""
    scaled = (values.astype(np.float64) / float(10**decimals)).tolist()
    spec = f".{decimals}f"
    return [format(x, spec) for x in scaled]


def decimal_units(texts: np.ndarray | list[str], decimals: int) -> np.ndarray:
    """Exact decimal strings -> int64 multiples of 10**-decimals; ValueError if one is finer."""
    out = np.empty(len(texts), dtype=np.int64)
    scale = 10**decimals
    for i, text in enumerate(texts):
        whole, _, frac = text.partition(".")
        if len(frac) > decimals:
            raise ValueError(f"{text!r} has more than {decimals} decimals")
        out[i] = int(whole) * scale + (int(frac.ljust(decimals, "0")) if decimals else 0)
    return out


def market_key(seed: int, exchange: str, symbol: str) -> int:
    """Stable 64-bit key (Python's hash() is salted per process, so it cannot be used)."""
    digest = hashlib.blake2b(f"{seed}|{exchange}|{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class MarketStore:
    """Every recorded market of a data directory, keyed by (ccxt exchange id, unified symbol)."""

    def __init__(self, data_dir: Path, seed: int = 0) -> None:
        self.seed = seed
        frame = load_recordings(data_dir)
        self._markets: dict[tuple[str, str], Market] = {}
        for (exchange, symbol), rows in frame.groupby(["exchange", "symbol"], sort=True):
            self._markets[(exchange, symbol)] = _build_market(rows, seed)

    def exchanges(self) -> list[str]:
        """ccxt ids of the exchanges that have at least one recording."""
        return sorted({exchange for exchange, _ in self._markets})

    def markets(self, exchange: str) -> list[Market]:
        """The recorded markets of one exchange, by symbol."""
        return [m for (ex, _), m in sorted(self._markets.items()) if ex == exchange]

    def all_markets(self) -> list[Market]:
        """Every recorded market."""
        return [self._markets[k] for k in sorted(self._markets)]

    def get(self, exchange: str, symbol: str) -> Market | None:
        """The market, or None when it was not recorded on that exchange."""
        return self._markets.get((exchange, symbol))


def _build_market(rows: pd.DataFrame, seed: int) -> Market:
    exchange, symbol, timeframe = rows["exchange"].iloc[0], rows["symbol"].iloc[0], rows["timeframe"].iloc[0]
    price_texts = [rows[f"{f}_str"].to_numpy() for f in ("open", "high", "low", "close")]
    decimals = max(_max_decimals(texts) for texts in price_texts)
    o, h, lo, c = (decimal_units(texts, decimals) for texts in price_texts)
    volume = decimal_units(rows["volume_str"].to_numpy(), VOLUME_DECIMALS)
    ts = (rows["ts"].astype("int64").to_numpy() // 10**9).astype(np.int64)
    bars = IntBars(ts, o, h, lo, c, volume)
    return Market(
        exchange,
        symbol,
        timeframe_seconds(timeframe),
        decimals,
        bars,
        market_key(seed, exchange, symbol),
        bars_ms=ts * 1000,
    )


def _max_decimals(texts: np.ndarray) -> int:
    return max((len(t) - t.index(".") - 1 for t in texts if "." in t), default=0)


def cached_store(data_dir: Path, seed: int = 0) -> MarketStore:
    """A MarketStore shared by every app on the same directory, seed and file versions."""
    directory = Path(data_dir).resolve()
    signature = tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.glob("*.csv"))
    )
    return _cached_store(directory, seed, signature)


@functools.lru_cache(maxsize=8)
def _cached_store(directory: Path, seed: int, _signature: tuple) -> MarketStore:
    return MarketStore(directory, seed)
