"""The anomaly thresholds file (config/anomalies.yaml): parsed and validated on load, so a typo fails
with the file, the key and the bad value named, never in the middle of a check."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.markets_config import validate_exchange_id, validate_symbols
from cryptopipe_dagster.lib.timeframes import timeframe_seconds

DEFAULT_ANOMALIES_FILE = Path(__file__).resolve().parents[2] / "config" / "anomalies.yaml"
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "s", "m": "min", "h": "h", "d": "D"}


@dataclass(frozen=True)
class RobustZ:
    """A robust z-score detector: trailing window (bars), minimum valid bars, thresholds per
    timeframe ("default" for the others; wick_z for the price detector's wicks), scale floor."""

    window: int
    min_periods: int
    z: dict[str, float]
    min_scale: float
    wick_z: dict[str, float] | None = None

    def threshold(self, timeframe: str, wick: bool = False) -> float:
        """The z threshold of a timeframe (its own, else the default)."""
        table = self.wick_z if wick and self.wick_z else self.z
        return table.get(timeframe, table["default"])


@dataclass(frozen=True)
class StuckFeed:
    """Flat or zero-volume runs longer than multiple x quantile of the market's runs (>= floor)."""

    quantile: float
    multiple: float
    floor_bars: dict[str, int]


@dataclass(frozen=True)
class Divergence:
    """The same pair on two exchanges apart by more than `bps` for at least `min_bars` bars."""

    timeframe: str
    bps: float
    min_bars: int
    pairs: tuple[tuple[str, str, str], ...]  # (symbol, exchange_a, exchange_b)


@dataclass(frozen=True)
class AnomalyConfig:
    """Every detector's thresholds, and how far back the checks read per timeframe."""

    price_jump: RobustZ
    volume_spike: RobustZ
    stuck_feed: StuckFeed
    freshness: dict[str, pd.Timedelta]
    divergence: Divergence
    lookback_days: dict[str, int]


def _section(raw: dict, name: str, where: str) -> dict:
    body = raw.get(name)
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: '{name}:' must be a mapping, got {body!r}")
    return body


def _number(body: dict, key: str, where: str, *, integer: bool = False, low: float = 0.0) -> float:
    value = body.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        raise ConfigError(f"{where}.{key}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    if value <= low:
        raise ConfigError(f"{where}.{key}: must be > {low:g}, got {value!r}")
    return value


def _robust(raw: dict, name: str, path: Path) -> RobustZ:
    where = f"{path}: {name}"
    body = _section(raw, name, str(path))
    window = int(_number(body, "window", where, integer=True, low=1))
    min_periods = int(_number(body, "min_periods", where, integer=True))
    if min_periods > window:
        raise ConfigError(f"{where}.min_periods: {min_periods} is more than the window ({window})")
    wick_z = _thresholds(body, "wick_z", where) if "wick_z" in body else None
    return RobustZ(
        window, min_periods, _thresholds(body, "z", where), float(_number(body, "min_scale", where)), wick_z
    )


def _thresholds(body: dict, key: str, where: str) -> dict[str, float]:
    """{default: z, <timeframe>: z, ...}: a default is required, every key a timeframe."""
    table = body.get(key)
    if not isinstance(table, dict) or "default" not in table:
        raise ConfigError(f"{where}.{key}: expected {{default: z, 1h: z, ...}}, got {table!r}")
    out = {}
    for timeframe in table:
        if timeframe != "default":
            timeframe_seconds(str(timeframe))  # InvalidTimeframe names a bad key
        out[str(timeframe)] = float(_number(table, timeframe, f"{where}.{key}"))
    return out


def _per_timeframe(body: object, where: str, parse) -> dict:
    if not isinstance(body, dict) or not body:
        raise ConfigError(f"{where}: expected a mapping of timeframe to value, got {body!r}")
    out = {}
    for timeframe, value in body.items():
        timeframe_seconds(str(timeframe))  # InvalidTimeframe names a bad key
        out[str(timeframe)] = parse(value, f"{where}.{timeframe}")
    return out


def parse_duration(value: object, where: str) -> pd.Timedelta:
    """'10m', '3h', '2d', '30s' -> Timedelta; ConfigError naming anything else."""
    match = _DURATION.match(str(value))
    if match is None or int(match[1]) == 0:
        raise ConfigError(f"{where}: {value!r} is not a duration such as 10m, 3h or 2d")
    return pd.Timedelta(int(match[1]), _UNITS[match[2]])


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _stuck(raw: dict, path: Path) -> StuckFeed:
    where = f"{path}: stuck_feed"
    body = _section(raw, "stuck_feed", str(path))
    quantile = float(_number(body, "quantile", where))
    if quantile > 1:
        raise ConfigError(f"{where}.quantile: must be in (0, 1], got {quantile!r}")
    floors = _per_timeframe(body.get("floor_bars"), f"{where}.floor_bars", _positive_int)
    return StuckFeed(quantile, float(_number(body, "multiple", where)), floors)


def _pair(entry: object, index: int, where: str) -> tuple[str, str, str]:
    here = f"{where}.pairs[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{here}: expected {{symbol, exchanges: [a, b]}}, got {entry!r}")
    (symbol,) = validate_symbols([entry.get("symbol")], here)
    exchanges = entry.get("exchanges")
    if not isinstance(exchanges, list) or len(exchanges) != 2 or exchanges[0] == exchanges[1]:
        raise ConfigError(f"{here}.exchanges: expected two different exchanges, got {exchanges!r}")
    return symbol, validate_exchange_id(exchanges[0]), validate_exchange_id(exchanges[1])


def _divergence(raw: dict, path: Path) -> Divergence:
    where = f"{path}: divergence"
    body = _section(raw, "divergence", str(path))
    timeframe = str(body.get("timeframe"))
    timeframe_seconds(timeframe)
    pairs = body.get("pairs") or []
    if not isinstance(pairs, list):
        raise ConfigError(f"{where}.pairs: expected a list, got {pairs!r}")
    return Divergence(
        timeframe,
        float(_number(body, "bps", where)),
        int(_number(body, "min_bars", where, integer=True)),
        tuple(_pair(entry, i, where) for i, entry in enumerate(pairs)),
    )


def load_anomaly_config(path: Path | None = None) -> AnomalyConfig:
    """Load and validate the thresholds file (default: CRYPTOPIPE_ANOMALIES_FILE, else the packaged one)."""
    path = Path(path or os.environ.get("CRYPTOPIPE_ANOMALIES_FILE") or DEFAULT_ANOMALIES_FILE)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read anomalies file {path}: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of detector sections")
    stale = _section(raw, "stale_feed", str(path))
    return AnomalyConfig(
        price_jump=_robust(raw, "price_jump", path),
        volume_spike=_robust(raw, "volume_spike", path),
        stuck_feed=_stuck(raw, path),
        freshness=_per_timeframe(stale.get("freshness"), f"{path}: stale_feed.freshness", parse_duration),
        divergence=_divergence(raw, path),
        lookback_days=_per_timeframe(raw.get("lookback_days"), f"{path}: lookback_days", _positive_int),
    )
