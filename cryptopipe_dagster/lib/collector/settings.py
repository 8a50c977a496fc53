"""What one collector process streams and how patiently: validated once, at start-up."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from cryptopipe_dagster.lib.edge.symbols import canonical_symbol
from cryptopipe_dagster.lib.errors import ConfigError, InvalidSymbol
from cryptopipe_dagster.lib.markets_config import validate_exchange_id


@dataclass(frozen=True)
class MarketSpec:
    """One market to stream: its trades always, its closed 1m candles when `candles`."""

    exchange: str
    symbol: str
    candles: bool = False

    @property
    def key(self) -> str:
        """``exchange:BASE/QUOTE``, the Pub/Sub ordering key and the checkpoint key."""
        return f"{self.exchange}:{self.symbol}"


def parse_market(text: str, *, candles: bool = False) -> MarketSpec:
    """``exchange:BASE/QUOTE`` -> MarketSpec; ConfigError naming the bad part."""
    exchange, sep, symbol = str(text).partition(":")
    if not sep or not symbol:
        raise ConfigError(f"market {text!r}: expected EXCHANGE:BASE/QUOTE, e.g. kraken:BTC/USD")
    try:
        return MarketSpec(validate_exchange_id(exchange.strip()), canonical_symbol(symbol.strip()), candles)
    except InvalidSymbol as error:
        raise ConfigError(f"market {text!r}: {error}") from error


@dataclass(frozen=True)
class CollectorSettings:
    """Knobs of one collector process; every number must be positive (ConfigError otherwise)."""

    markets: tuple[MarketSpec, ...]
    project_id: str
    exchange_api_url: str | None = None
    batch_max_records: int = 2_000  # a market's buffer is published when it holds this many...
    batch_max_age_s: float = 0.2  # ...or when its oldest record waited this long
    stall_timeout_s: float = 10.0  # no message for this long: reconnect (ccxt can hang silently)
    reconnect_initial_s: float = 0.5  # backoff: full jitter, doubling up to reconnect_max_s
    reconnect_max_s: float = 30.0
    unhealthy_after: int = 5  # this many identical errors in a row: a bug, not weather (see streams)
    unhealthy_retry_s: float = 300.0  # how often an unhealthy stream is tried again
    sweep_interval_s: float = 30.0  # REST sweep for what a stream may have dropped without a trace
    fill_margin_s: float = 5.0  # REST fills start this long before the last trade seen
    dedup_capacity: int = 200_000  # trade ids remembered per market
    trades_limit: int = 50_000  # ccxt.pro's per-symbol trade cache; a full cache means overflow
    shutdown_timeout_s: float = 30.0
    state_path: Path | None = None  # checkpoint file; None keeps the checkpoint in memory only
    extra_exchange_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.markets:
            raise ConfigError("the collector needs at least one market (EXCHANGE:BASE/QUOTE)")
        keys = [market.key for market in self.markets]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"markets listed twice: {sorted({k for k in keys if keys.count(k) > 1})}")
        if not self.project_id:
            raise ConfigError("the collector needs a Pub/Sub project id")
        for item in fields(self):
            value = getattr(self, item.name)
            # `not value > 0` also refuses NaN (a NaN stall timeout would disable the watchdog).
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"collector setting {item.name} must be finite and > 0, got {value!r}")
