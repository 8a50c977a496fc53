"""ccxt unified trade dicts -> canonical trade frames; same edge rules as the candle path.

Rules beyond the candle path (see ``normalize.py``):
- The symbol comes with each record, so an unreadable one is that record's problem: dead letter
  ``invalid_symbol`` (not a config error as in the candle path).
- A missing/empty ``id`` (some exchanges publish none) gets a deterministic synthetic id
  ``syn-<hash of ts, price, amount, side>``, so redelivery still deduplicates. Two genuinely
  distinct id-less trades with the same ms, price, amount and side are indistinguishable in the
  payload and collapse into one (counted as a duplicate).
- ``side`` None means unknown; any other value outside buy/sell is ``invalid_side``.
- Duplicates: same (exchange, symbol, trade_id) after validation; the last one wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.dead_letters import build_dead_letters, empty_dead_letters, payload_json
from cryptopipe_dagster.lib.errors import InvalidSymbol, SchemaDrift
from cryptopipe_dagster.lib.normalize_common import (
    as_utc,
    check_exchange_and_source,
    check_numeric_columns,
    check_timestamps,
    constant_text,
    utc_timestamps,
)
from cryptopipe_dagster.lib.schemas import Text, TradeSchema
from cryptopipe_dagster.lib.symbols import canonical_symbol
from cryptopipe_dagster.lib.validation import RowRejections, find_failures

TRADE_FIELDS = ("id", "timestamp", "symbol", "price", "amount", "side")
# Venues whose trade ids are decimal integers: anything else is a corrupted record, not a trade
# (a garbled frame can carry a well-formed price and time under an id like "garbage").
NUMERIC_TRADE_IDS = frozenset({"binance", "bitstamp", "coinbaseexchange", "kraken", "bybit", "okx"})
_NOT_TEXT = "<not text>"  # stands in for a non-text symbol value; canonical_symbol rejects it


@dataclass(frozen=True)
class TradeBatch:
    """The outcome of normalizing one batch of trades."""

    valid: pd.DataFrame
    dead_letters: pd.DataFrame
    duplicates_dropped: int

    @property
    def rows_in(self) -> int:
        """Input records accounted for: valid + dead letters + duplicates."""
        return len(self.valid) + len(self.dead_letters) + self.duplicates_dropped


def normalize_trades(
    trades: list[dict],
    *,
    exchange: str,
    source: str = "rest",
    now: pd.Timestamp | None = None,
    ingested_at: pd.Timestamp | None = None,
) -> TradeBatch:
    """Normalize ccxt trade dicts (id, timestamp, symbol, price, amount, side; hostile) to TradeSchema."""
    check_exchange_and_source(exchange, source)
    if not isinstance(trades, list | tuple):
        raise SchemaDrift(f"trades payload is {type(trades).__name__}, expected a list of dicts")
    now, ingested_at = as_utc(now), as_utc(ingested_at)
    is_dict = np.fromiter((isinstance(t, dict) for t in trades), dtype=bool, count=len(trades))
    positions = np.flatnonzero(is_dict)
    records = trades if is_dict.all() else [trades[i] for i in positions]
    raw = pd.DataFrame(list(records), columns=list(TRADE_FIELDS), index=positions)
    rejections = RowRejections(raw.index)
    columns = _trade_columns(raw, now, rejections, numeric_ids=exchange in NUMERIC_TRADE_IDS)
    frame = _trade_frame(columns, ~rejections.rejected, raw.index, exchange, source, ingested_at)
    valid, failures = find_failures(frame, TradeSchema)
    rejections.add_failures(failures)
    before = len(valid)
    valid = valid.loc[~valid.duplicated(subset=["symbol", "trade_id"], keep="last")]
    valid = valid.sort_values("ts", kind="stable").reset_index(drop=True)
    dead = _trade_dead_letters(
        trades, np.flatnonzero(~is_dict), rejections, columns["symbol"], exchange, source, ingested_at
    )
    return TradeBatch(valid=valid, dead_letters=dead, duplicates_dropped=before - len(valid))


def _trade_columns(
    raw: pd.DataFrame, now: pd.Timestamp, rejections: RowRejections, *, numeric_ids: bool
) -> dict[str, np.ndarray]:
    """Every field coerced over the whole batch; refused values are recorded in `rejections`."""
    numbers = check_numeric_columns(raw, ("price", "amount"), rejections)
    return {
        "symbol": _canonical_symbols(raw["symbol"], rejections),
        "trade_id": _trade_ids(raw["id"], rejections, numeric=numeric_ids),
        "ts": check_timestamps(raw["timestamp"], now, rejections),
        **numbers,
        "side": _sides(raw["side"]),
    }


def _trade_frame(
    columns: dict, keep: np.ndarray, index: pd.Index, exchange: str, source: str, ingested_at: pd.Timestamp
) -> pd.DataFrame:
    n = int(keep.sum())
    frame = pd.DataFrame(
        {
            "exchange": constant_text(exchange, n),
            "symbol": pd.array(columns["symbol"][keep], dtype=Text),
            "trade_id": pd.array(columns["trade_id"][keep], dtype=Text),
            "ts": utc_timestamps(columns["ts"][keep]),
            "price": columns["price"][keep],
            "amount": columns["amount"][keep],
            "side": pd.array(columns["side"][keep], dtype=Text),
            "source": constant_text(source, n),
            "ingested_at": utc_timestamps(np.full(n, ingested_at.value, dtype=np.int64)),
        },
        index=index[keep],
    )
    frame["trade_id"] = _fill_synthetic_ids(frame)
    return frame


def _canonical_symbols(raw: pd.Series, rejections: RowRejections) -> np.ndarray:
    """Canonical pair per row (None where unreadable), parsing each distinct spelling once."""
    text = raw
    if pd.api.types.infer_dtype(raw, skipna=True) not in ("string", "empty"):
        # Lists or dicts cannot even be hashed for factorize; anything but text is unreadable.
        text = raw.where(raw.map(type, na_action="ignore").isin([str]) | raw.isna(), other=_NOT_TEXT)
    codes, uniques = pd.factorize(text)
    canonical = np.full(len(uniques) + 1, None, dtype=object)  # last slot: factorize's -1 (null)
    for i, value in enumerate(uniques):
        try:
            canonical[i] = canonical_symbol(value)
        except InvalidSymbol:
            canonical[i] = None
    result = canonical[codes]
    null = raw.isna().to_numpy()
    rejections.add(null, "null_value", "symbol:not_nullable", "symbol is missing")
    rejections.add(
        ~null & pd.isna(result),
        "invalid_symbol",
        "symbol:canonical_pair",
        "symbol is not a BASE/QUOTE pair",
        raw,
    )
    return result


def _sides(raw: pd.Series) -> np.ndarray:
    text = raw.astype(object).where(raw.notna(), "unknown")
    return text.astype(str).str.lower().to_numpy(dtype=object)


def _trade_ids(raw: pd.Series, rejections: RowRejections, *, numeric: bool = False) -> np.ndarray:
    """Ids as text: str stays, int becomes its decimal text, missing/empty becomes None (synthesized).

    With `numeric` (the venue's ids are integers) a present id that is not decimal digits is refused."""
    ids = _id_texts(raw, rejections)
    if numeric:
        text = pd.Series(ids, index=raw.index, dtype=object)
        bad = (text.notna() & ~text.astype(str).str.fullmatch(r"[0-9]{1,40}")).to_numpy()
        rejections.add(
            bad, "invalid_trade_id", "trade_id:decimal_integer", "trade id is not a decimal integer", raw
        )
    return ids


def _id_texts(raw: pd.Series, rejections: RowRejections) -> np.ndarray:
    if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        ids = raw.to_numpy(dtype=object)
        return np.where(pd.isna(ids) | (ids == ""), None, ids)
    types = raw.map(type, na_action="ignore")
    is_text = types.isin([str, np.str_]).to_numpy()
    is_int = types.isin([int, np.int64, np.int32]).to_numpy()
    usable = is_text | is_int
    rejections.add(
        raw.notna().to_numpy() & ~usable,
        "invalid_trade_id",
        "trade_id:text_or_integer",
        "trade id is neither text nor an integer",
        raw,
    )
    ids = raw.astype(object).where(usable, None).map(str, na_action="ignore").to_numpy(dtype=object)
    return np.where(pd.isna(ids) | (ids == ""), None, ids)


def _fill_synthetic_ids(frame: pd.DataFrame) -> pd.Series:
    missing = frame["trade_id"].isna()
    if not missing.any():
        return frame["trade_id"]
    hashed = pd.util.hash_pandas_object(frame.loc[missing, ["ts", "price", "amount", "side"]], index=False)
    synthetic = "syn-" + pd.Series(hashed.to_numpy(), index=hashed.index).map("{:016x}".format)
    return frame["trade_id"].astype(object).where(~missing, synthetic).astype(Text)


def _trade_dead_letters(
    trades, not_dicts, rejections, symbols, exchange, source, ingested_at
) -> pd.DataFrame:
    rejected = np.flatnonzero(rejections.rejected)
    if not len(rejected) and not len(not_dicts):
        return empty_dead_letters()
    positions = np.concatenate([not_dicts, rejections.labels.to_numpy()[rejected]]).astype(np.int64)
    k = len(not_dicts)
    reasons = np.concatenate([np.full(k, "malformed_row", dtype=object), rejections.reason[rejected]])
    checks = np.concatenate([np.full(k, "record:is_dict", dtype=object), rejections.check[rejected]])
    details = np.concatenate(
        [np.full(k, "trade record is not a dict", dtype=object), rejections.detail[rejected]]
    )
    pair = np.concatenate([np.full(k, None, dtype=object), symbols[rejected]])
    order = np.argsort(positions, kind="stable")
    return build_dead_letters(
        dataset="trades",
        exchange=exchange,
        source=source,
        symbol=pair[order].tolist(),
        reason_code=reasons[order],
        check_name=checks[order],
        error_detail=details[order],
        raw_payload=payload_json(trades[i] for i in positions[order]),
        first_seen_at=ingested_at,
    )
