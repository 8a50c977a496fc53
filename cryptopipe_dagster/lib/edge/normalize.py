"""Exchange payloads -> canonical candle frames, at the edge, over whole batches.

Every input row ends in exactly one place: ``valid``, ``dead_letters``, ``duplicates_dropped`` or
``incomplete_dropped`` (their sum is the input row count; nothing is lost silently).

Rules:
- Configuration (exchange id, symbol, timeframe, source) is checked once; a bad value raises
  (InvalidSymbol, InvalidTimeframe, ConfigError) instead of dead-lettering every row.
- Row problems become dead letters with a stable reason code (see ``dead_letters.REASON_CODES``).
- A candle whose period has not ended (``ts + timeframe > now``) is the exchange's still-open
  candle: expected, not stored, not a dead letter, only counted in ``incomplete_dropped``.
  A candle that opens more than CLOCK_SKEW after ``now`` cannot exist yet: ``ts_in_future``.
- Duplicates: rows sharing (exchange, symbol, timeframe, ts) after validation; the last one in the
  batch wins (an exchange revising a candle sends the newer values later), every other copy is
  counted in ``duplicates_dropped``, and the copies whose values differ from the kept row are also
  counted in ``conflicting_duplicates``.
- ``now`` (default: wall clock) decides incomplete/future; the schema's own ``ts_not_in_future``
  check still runs against the wall clock as a backstop. Precision policy: see ``schemas.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.edge.dead_letters import build_dead_letters, empty_dead_letters, payload_json
from cryptopipe_dagster.lib.edge.fingerprint import DriftClassifier, reclassify_drift
from cryptopipe_dagster.lib.edge.normalize_common import (
    as_utc,
    check_exchange_and_source,
    check_numeric_columns,
    check_timestamps,
    constant_text,
    utc_timestamps,
)
from cryptopipe_dagster.lib.edge.normalize_trades import TradeBatch, normalize_trades
from cryptopipe_dagster.lib.edge.schemas import CandleSchema
from cryptopipe_dagster.lib.edge.symbols import canonical_symbol
from cryptopipe_dagster.lib.edge.validation import RowRejections, find_failures, validate_frame
from cryptopipe_dagster.lib.errors import SchemaDrift
from cryptopipe_dagster.lib.timeframes import timeframe_seconds

__all__ = [
    "CandleBatch",
    "TradeBatch",
    "normalize_ohlcv",
    "normalize_candles_frame",
    "normalize_trades",
    "validate_frame",
]

CANDLE_FIELDS = ("ts", "open", "high", "low", "close", "volume")
VALUE_FIELDS = CANDLE_FIELDS[1:]


@dataclass(frozen=True)
class CandleBatch:
    """The outcome of normalizing one batch of candles."""

    valid: pd.DataFrame
    dead_letters: pd.DataFrame
    duplicates_dropped: int
    incomplete_dropped: int
    conflicting_duplicates: int = 0

    @property
    def rows_in(self) -> int:
        """Input rows accounted for: valid + dead letters + duplicates + incomplete."""
        return len(self.valid) + len(self.dead_letters) + self.duplicates_dropped + self.incomplete_dropped


@dataclass(frozen=True)
class _Market:
    exchange: str
    symbol: str
    timeframe: str
    source: str
    now: pd.Timestamp
    ingested_at: pd.Timestamp


def _market(exchange, symbol, timeframe, source, now, ingested_at) -> _Market:
    check_exchange_and_source(exchange, source)
    timeframe_seconds(timeframe)  # raises InvalidTimeframe
    return _Market(exchange, canonical_symbol(symbol), timeframe, source, as_utc(now), as_utc(ingested_at))


def normalize_ohlcv(
    rows: list,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    source: str = "rest",
    now: pd.Timestamp | None = None,
    ingested_at: pd.Timestamp | None = None,
    drift: DriftClassifier | None = None,
) -> CandleBatch:
    """Normalize ccxt ``fetch_ohlcv`` rows (``[ts_ms, open, high, low, close, volume]``, hostile).

    drift (fingerprint.drift_classifier): rejected rows whose shape lost or retyped a field of the
    endpoint's known shape become ``schema_drift`` dead letters."""
    market = _market(exchange, symbol, timeframe, source, now, ingested_at)
    if not isinstance(rows, list | tuple):
        raise SchemaDrift(f"fetch_ohlcv returned {type(rows).__name__}, expected a list of rows")
    frame, malformed = _ohlcv_frame(rows)
    return _normalize(
        frame, malformed, market, lambda positions: payload_json(rows[i] for i in positions), drift
    )


def normalize_candles_frame(
    df: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    source: str = "rest",
    now: pd.Timestamp | None = None,
    ingested_at: pd.Timestamp | None = None,
) -> CandleBatch:
    """Normalize a frame with columns ts (ms epoch or datetime), open, high, low, close, volume.

    Other columns are ignored (but kept in dead letters' raw payload); a missing one is SchemaDrift.
    """
    market = _market(exchange, symbol, timeframe, source, now, ingested_at)
    missing = [column for column in CANDLE_FIELDS if column not in df.columns]
    if missing:
        raise SchemaDrift(f"candle frame lacks columns {missing}; has {list(df.columns)}")
    raw = df[list(CANDLE_FIELDS)].reset_index(drop=True)
    return _normalize(
        raw, np.empty(0, dtype=np.int64), market, lambda positions: _frame_payloads(df, positions)
    )


def _frame_payloads(df: pd.DataFrame, positions: np.ndarray) -> list[str]:
    return payload_json(df.iloc[positions].to_dict("records"))


def _ohlcv_frame(rows: list | tuple) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows -> frame indexed by input position, plus positions of rows not shaped [6 values]."""
    try:
        grid = np.array(rows, dtype=object)
    except ValueError:  # ragged nesting deeper than the row level
        grid = None
    if grid is not None and grid.ndim == 2 and grid.shape[1] == len(CANDLE_FIELDS):
        columns = {name: _typed_if_uniform(grid[:, i]) for i, name in enumerate(CANDLE_FIELDS)}
        return pd.DataFrame(columns), np.empty(0, dtype=np.int64)
    # Hostile batch: find the rows that are not a 6-item list/tuple (only now, never on the fast path).
    shaped = np.fromiter(
        (isinstance(r, list | tuple) and len(r) == 6 for r in rows), dtype=bool, count=len(rows)
    )
    positions = np.flatnonzero(shaped)
    frame = pd.DataFrame(
        [rows[i] for i in positions], columns=list(CANDLE_FIELDS), index=positions, dtype=object
    )
    return frame, np.flatnonzero(~shaped)


def _typed_if_uniform(column: np.ndarray) -> np.ndarray:
    """A column of only ints (ccxt's times) as int64, of only floats (its values) as float64, so the
    checks take their vectorized paths; anything else (None, bool, text, a huge int, ints among
    floats, whose dead-letter detail must not read 5.0 for 5) stays Python objects for the exact
    checks. infer_dtype inspects the objects in C."""
    kind = pd.api.types.infer_dtype(column, skipna=False)
    try:
        if kind == "integer":
            return column.astype(np.int64)
        if kind == "floating":
            return column.astype(np.float64)
    except OverflowError:  # an int past int64: the exact path refuses it with its reason
        pass
    return column


def _normalize(
    raw: pd.DataFrame,
    malformed: np.ndarray,
    market: _Market,
    payload_of: Callable[[np.ndarray], list[str]],
    drift: DriftClassifier | None = None,
) -> CandleBatch:
    rejections = RowRejections(raw.index)
    ts_ns = check_timestamps(raw["ts"], market.now, rejections)
    values = check_numeric_columns(raw, VALUE_FIELDS, rejections)
    step_ns = timeframe_seconds(market.timeframe) * 1_000_000_000
    candidate = ~rejections.rejected
    incomplete = candidate & (ts_ns + step_ns > market.now.value)
    keep = candidate & ~incomplete
    frame = _candle_frame(raw.index[keep], ts_ns[keep], {c: v[keep] for c, v in values.items()}, market)
    valid, failures = find_failures(frame, CandleSchema)
    rejections.add_failures(failures)
    valid, duplicates, conflicting = _dedup_last(valid)
    dead = _candle_dead_letters(rejections, malformed, market, payload_of, drift)
    return CandleBatch(valid, dead, duplicates, int(incomplete.sum()), conflicting)


def _candle_frame(index: pd.Index, ts_ns: np.ndarray, values: dict, market: _Market) -> pd.DataFrame:
    n = len(index)
    columns = {
        "exchange": constant_text(market.exchange, n),
        "symbol": constant_text(market.symbol, n),
        "timeframe": constant_text(market.timeframe, n),
        "ts": utc_timestamps(ts_ns),
        **values,
        "source": constant_text(market.source, n),
        "ingested_at": utc_timestamps(np.full(n, market.ingested_at.value, dtype=np.int64)),
    }
    return pd.DataFrame(
        {name: pd.Series(column, index=index) for name, column in columns.items()}, copy=False
    )


def _dedup_last(valid: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Sort by ts and keep the last row per ts; returns (rows, dropped, dropped-with-other-values).

    exchange, symbol and timeframe are constant within a batch, so ts alone is the key here.
    """
    ts = valid["ts"].array.asi8
    if len(ts) < 2 or bool((np.diff(ts) > 0).all()):
        return valid.reset_index(drop=True), 0, 0
    order = np.argsort(ts, kind="stable")
    ts_sorted = ts[order]
    is_last = np.append(ts_sorted[1:] != ts_sorted[:-1], True)
    last_positions = np.flatnonzero(is_last)
    dropped_sorted = np.flatnonzero(~is_last)
    # Each dropped row's kept twin is the next group-end at or after it in sorted order.
    kept_twin = order[last_positions[np.searchsorted(last_positions, dropped_sorted)]]
    values = valid[list(VALUE_FIELDS)].to_numpy()
    dropped = order[dropped_sorted]
    conflicting = int((values[dropped] != values[kept_twin]).any(axis=1).sum())
    return valid.iloc[order[is_last]].reset_index(drop=True), len(dropped), conflicting


def _candle_dead_letters(
    rejections: RowRejections,
    malformed: np.ndarray,
    market: _Market,
    payload_of: Callable,
    drift: DriftClassifier | None = None,
) -> pd.DataFrame:
    rejected = np.flatnonzero(rejections.rejected)
    if not len(rejected) and not len(malformed):
        return empty_dead_letters()
    positions = np.concatenate([malformed, rejections.labels.to_numpy()[rejected]]).astype(np.int64)
    n_malformed = len(malformed)
    reasons = np.concatenate(
        [np.full(n_malformed, "malformed_row", dtype=object), rejections.reason[rejected]]
    )
    checks = np.concatenate(
        [np.full(n_malformed, "row:six_values", dtype=object), rejections.check[rejected]]
    )
    details = np.concatenate(
        [
            np.full(
                n_malformed,
                "row is not a list of 6 values [ts, open, high, low, close, volume]",
                dtype=object,
            ),
            rejections.detail[rejected],
        ]
    )
    order = np.argsort(positions, kind="stable")  # dead letters in input order
    reasons, checks, details = reasons[order], checks[order], details[order]
    reclassify_drift(drift, positions[order], reasons, checks, details)
    return build_dead_letters(
        dataset="candles",
        exchange=market.exchange,
        symbol=market.symbol,
        timeframe=market.timeframe,
        source=market.source,
        reason_code=reasons,
        check_name=checks,
        error_detail=details,
        raw_payload=payload_of(positions[order]),
        first_seen_at=market.ingested_at,
    )
