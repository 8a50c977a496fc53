"""The markets file (YAML): which exchanges, markets and timeframes to ingest, and the demo plan.

Validated on load so that a typo fails fast with the bad value named, never mid-backfill.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import ccxt
import yaml

from cryptopipe_dagster.lib.edge.symbols import canonical_symbol
from cryptopipe_dagster.lib.errors import ConfigError, InvalidSymbol, UnknownExchange
from cryptopipe_dagster.lib.timeframes import timeframe_seconds


@dataclass(frozen=True)
class ExchangeMarkets:
    """The markets of one exchange and the timeframes ingested for each."""

    exchange: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]


@dataclass(frozen=True)
class BackfillSpec:
    """One backfill: markets of one exchange over [start, end] (inclusive UTC dates)."""

    exchange: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class MarketsConfig:
    """The whole markets file."""

    exchanges: dict[str, ExchangeMarkets]
    demo: tuple[BackfillSpec, ...]
    history_start: dt.date

    def markets_of(self, exchange: str) -> ExchangeMarkets:
        if exchange not in self.exchanges:
            raise UnknownExchange(exchange, list(self.exchanges))
        return self.exchanges[exchange]


def validate_exchange_id(exchange: object) -> str:
    """Return the ccxt id, or raise UnknownExchange naming the value."""
    if not isinstance(exchange, str) or exchange not in ccxt.exchanges:
        raise UnknownExchange(str(exchange))
    return exchange


def validate_symbols(symbols: object, where: str) -> tuple[str, ...]:
    """Symbols must already be canonical (BASE/QUOTE); aliases are a config smell, so name them."""
    if not isinstance(symbols, list | tuple) or not symbols:
        raise ConfigError(f"{where}: symbols must be a non-empty list, got {symbols!r}")
    for symbol in symbols:
        canonical = canonical_symbol(symbol)
        if canonical != symbol:
            raise InvalidSymbol(symbol, f"write it as {canonical!r} ({where})")
    return tuple(symbols)


def validate_timeframes(timeframes: object, where: str) -> tuple[str, ...]:
    """Timeframes such as 1m, 1h, 1d; anything else raises naming the value."""
    if not isinstance(timeframes, list | tuple) or not timeframes:
        raise ConfigError(f"{where}: timeframes must be a non-empty list, got {timeframes!r}")
    for timeframe in timeframes:
        timeframe_seconds(timeframe)
    return tuple(timeframes)


def parse_date(value: object, where: str) -> dt.date:
    """YAML dates arrive as date objects; CLI ones as YYYY-MM-DD strings."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a YYYY-MM-DD date") from None


def _parse_backfill(entry: object, index: int, exchanges: dict[str, ExchangeMarkets]) -> BackfillSpec:
    where = f"demo[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
    exchange = validate_exchange_id(entry.get("exchange"))
    if exchange not in exchanges:
        raise ConfigError(f"{where}: exchange {exchange!r} is not configured under exchanges:")
    spec = BackfillSpec(
        exchange=exchange,
        symbols=validate_symbols(entry.get("symbols"), where),
        timeframes=validate_timeframes(entry.get("timeframes"), where),
        start=parse_date(entry.get("start"), where),
        end=parse_date(entry.get("end"), where),
    )
    if spec.end < spec.start:
        raise ConfigError(f"{where}: end {spec.end} is before start {spec.start}")
    return spec


class _StringDatesLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text, so a bad date is reported by value, not by a crash."""


_StringDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_markets_config(path: Path) -> MarketsConfig:
    """Load and validate the markets file; every error names the file and the bad value."""
    try:
        raw = yaml.load(Path(path).read_text(), Loader=_StringDatesLoader)  # noqa: S506 - a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read markets file {path}: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("exchanges"), dict) or not raw["exchanges"]:
        raise ConfigError(f"{path}: expected a non-empty 'exchanges:' mapping")
    exchanges: dict[str, ExchangeMarkets] = {}
    for exchange, body in raw["exchanges"].items():
        where = f"{path}: exchanges.{exchange}"
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: expected a mapping with symbols and timeframes")
        exchanges[exchange] = ExchangeMarkets(
            exchange=validate_exchange_id(exchange),
            symbols=validate_symbols(body.get("symbols"), where),
            timeframes=validate_timeframes(body.get("timeframes"), where),
        )
    demo = tuple(_parse_backfill(entry, i, exchanges) for i, entry in enumerate(raw.get("demo") or []))
    history_start = parse_date(raw.get("history_start", "2014-01-01"), f"{path}: history_start")
    return MarketsConfig(exchanges=exchanges, demo=demo, history_start=history_start)
