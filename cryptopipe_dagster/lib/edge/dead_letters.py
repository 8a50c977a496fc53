"""Dead letters: rejected records kept verbatim with a stable reason code, so they can be replayed.

A dead letter's id is sha256(dataset|exchange|reason_code|raw_payload): the same bad record
rejected again (a re-run, a redelivered message) gets the same id, and the warehouse stores it once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.edge.schemas import DeadLetterSchema, Text, schema_columns

# Stable reason codes, most fundamental first: when a record fails several checks, the first code
# in this order is the one recorded (the others are mentioned in error_detail).
REASON_CODES: tuple[str, ...] = (
    "malformed_row",  # not a list of 6 values / not a dict
    "schema_drift",  # the payload lost or retyped a field of the endpoint's known shape (fingerprint.py)
    "null_value",  # a required value is None or NaN
    "non_numeric_value",  # not a finite number (text, bool, list, inf, ...)
    "precision_exceeded",  # > 15 significant digits or |x| >= 1e15: float64 would round it
    "ts_out_of_range",  # not an integer ms epoch in [2009-01-03, 2100-01-01)
    "invalid_symbol",  # a per-record pair that symbols.py cannot read (trades)
    "invalid_trade_id",  # trade id of an unusable type
    "invalid_value",  # any other column-level schema check (bad exchange id, source, ...)
    "invalid_side",
    "non_positive_price",
    "non_positive_amount",
    "negative_volume",
    "ts_in_future",
    "ohlc_inconsistent",
    "ts_misaligned",
    "schema_check_failed",  # a check added to a schema without a code of its own yet
)
REASON_RANK = {code: rank for rank, code in enumerate(REASON_CODES)}
MAX_DETAIL_CHARS = 300


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def payload_json(records: Iterable[object]) -> list[str]:
    """JSON text of each record as received (floats via repr, so no digit is lost or invented)."""
    return [json.dumps(record, default=_json_default, ensure_ascii=False) for record in records]


def dead_letter_ids(
    dataset: str, exchanges: Sequence[str], reason_codes: Sequence[str], payloads: Sequence[str]
) -> list[str]:
    """Deterministic ids: sha256 hex of ``dataset|exchange|reason_code|raw_payload``."""
    return [
        hashlib.sha256(f"{dataset}|{exchange}|{code}|{payload}".encode()).hexdigest()
        for exchange, code, payload in zip(exchanges, reason_codes, payloads, strict=True)
    ]


def build_dead_letters(
    *,
    dataset: str,
    exchange: str | Sequence[str],
    source: str,
    reason_code: Iterable[str],
    check_name: Iterable[str],
    error_detail: Iterable[str],
    raw_payload: list[str],
    first_seen_at: pd.Timestamp,
    symbol: str | None | Sequence[str | None] = None,
    timeframe: str | None | Sequence[str | None] = None,
) -> pd.DataFrame:
    """A frame in DeadLetterSchema shape, one row per payload.

    exchange, symbol and timeframe are either one value for every row or one value per row.
    """
    n = len(raw_payload)
    reasons = list(reason_code)
    exchanges = _per_row(exchange, n)
    frame = pd.DataFrame(
        {
            "dead_letter_id": dead_letter_ids(dataset, exchanges, reasons, raw_payload),
            "dataset": [dataset] * n,
            "exchange": exchanges,
            "symbol": _per_row(symbol, n),
            "timeframe": _per_row(timeframe, n),
            "source": [source] * n,
            "reason_code": reasons,
            "check_name": list(check_name),
            "error_detail": [detail[:MAX_DETAIL_CHARS] for detail in error_detail],
            "raw_payload": raw_payload,
            "first_seen_at": pd.Series([first_seen_at] * n, dtype="datetime64[ns, UTC]"),
            "replayed_at": pd.Series([pd.NaT] * n, dtype="datetime64[ns, UTC]"),
        }
    )
    return _typed(frame)


def _per_row(value: object, n: int) -> list[object]:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)  # type: ignore[call-overload]
    if len(values) != n:
        raise ValueError(f"expected {n} values, got {len(values)}")
    return values


def empty_dead_letters() -> pd.DataFrame:
    """A zero-row frame in DeadLetterSchema shape (a fresh copy: callers may add to it)."""
    return _empty_dead_letters().copy()


@functools.cache
def _empty_dead_letters() -> pd.DataFrame:
    frame = pd.DataFrame({column: [] for column in schema_columns(DeadLetterSchema)})
    for column in ("first_seen_at", "replayed_at"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    text_columns = [c for c in frame.columns if c not in ("first_seen_at", "replayed_at")]
    return frame.astype({column: Text for column in text_columns}).reset_index(drop=True)
