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

import functools
import operator
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cryptopipe_dagster.lib.edge import trades_rows
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
from cryptopipe_dagster.lib.edge.schemas import Text, TradeSchema, frame_from_arrow
from cryptopipe_dagster.lib.edge.symbols import canonical_symbol
from cryptopipe_dagster.lib.edge.trade_rules import NUMERIC_ID_PATTERN, TRADE_ARROW_SCHEMA
from cryptopipe_dagster.lib.edge.trades_rows import ROWS_MAX
from cryptopipe_dagster.lib.edge.validation import RowRejections, find_failures
from cryptopipe_dagster.lib.errors import InvalidSymbol, SchemaDrift

TRADE_FIELDS = ("id", "timestamp", "symbol", "price", "amount", "side")
# Venues whose trade ids are decimal integers: anything else is a corrupted record, not a trade
# (a garbled frame can carry a well-formed price and time under an id like "garbage").
NUMERIC_TRADE_IDS = frozenset({"binance", "bitstamp", "coinbaseexchange", "kraken", "bybit", "okx"})
_NOT_TEXT = "<not text>"  # stands in for a non-text symbol value; canonical_symbol rejects it


class TradeBatch:
    """The outcome of normalizing one batch of trades.

    The valid rows are kept as Arrow (the columnar path's output, which loaders scan without a
    copy); ``valid`` is the same rows as a TradeSchema pandas frame, built on first use."""

    def __init__(
        self, valid: pa.Table | pd.DataFrame, dead_letters: pd.DataFrame, duplicates_dropped: int
    ) -> None:
        self._valid = valid
        self.dead_letters = dead_letters
        self.duplicates_dropped = duplicates_dropped

    @functools.cached_property
    def valid(self) -> pd.DataFrame:
        """The valid rows as a TradeSchema frame (Arrow-backed text, UTC timestamps)."""
        if isinstance(self._valid, pd.DataFrame):
            return self._valid
        return frame_from_arrow(self._valid)

    @property
    def valid_arrow(self) -> pa.Table:
        """The valid rows as Arrow with the stored column types."""
        if isinstance(self._valid, pa.Table):
            return self._valid
        return pa.Table.from_pandas(self._valid, preserve_index=False).cast(TRADE_ARROW_SCHEMA)

    @property
    def rows_in(self) -> int:
        """Input records accounted for: valid + dead letters + duplicates."""
        return len(self._valid) + len(self.dead_letters) + self.duplicates_dropped


def normalize_trades(
    trades: list[dict],
    *,
    exchange: str,
    source: str = "rest",
    now: pd.Timestamp | None = None,
    ingested_at: pd.Timestamp | None = None,
    drift: DriftClassifier | None = None,
    model_check: bool = True,
) -> TradeBatch:
    """Normalize ccxt trade dicts (id, timestamp, symbol, price, amount, side; hostile) to TradeSchema.

    drift (fingerprint.drift_classifier): rejected records whose payload lost or retyped a field of
    the endpoint's known shape become ``schema_drift`` dead letters.
    model_check=False skips the Pandera Polars pass over the rows the columnar rules accepted (those
    rules are the model's and more, see trades_columnar.py): Pandera costs ~10 ms per call however
    small the batch, so the collector, which flushes a few dozen trades per market five times a
    second, leaves it to the loader, which validates every landed batch against TradeSchema."""
    check_exchange_and_source(exchange, source)
    if not isinstance(trades, list | tuple):
        raise SchemaDrift(f"trades payload is {type(trades).__name__}, expected a list of dicts")
    plain_dicts = set(map(type, trades)) <= {dict}  # one C-level pass; the usual case
    is_dict = (
        np.ones(len(trades), dtype=bool)
        if plain_dicts
        else np.fromiter((isinstance(t, dict) for t in trades), dtype=bool, count=len(trades))
    )
    positions = np.flatnonzero(is_dict)
    records = trades if is_dict.all() else [trades[i] for i in positions]

    def payloads(positions: np.ndarray) -> list:
        return [trades[i] for i in positions]

    if is_dict.all() and len(trades) <= ROWS_MAX:  # a micro-batch: per-record rules (trades_rows.py)
        return _normalize_rows(trades, payloads, exchange, source, now, ingested_at, drift)
    # Column by column: a ccxt trade dict has a dozen keys (info, fees, ...), six of them matter.
    arrays = _arrow_columns(records, plain_dicts=plain_dicts)

    if is_dict.all() and all(isinstance(array, pa.Array) for array in arrays.values()):
        table = pa.table(arrays)
        if columnar().fast_path_applies(table):
            return _normalize_columnar(
                table, payloads, exchange, source, now, ingested_at, drift, model_check=model_check
            )
    raw = exact_frame(arrays, index=positions)
    return _normalize(raw, np.flatnonzero(~is_dict), payloads, exchange, source, now, ingested_at, drift)


def columnar() -> ModuleType:
    """The columnar path (trades_columnar), imported on first use: Polars and its Pandera backend
    add ~50 MB to a process, and the collector, which only sends micro-batches, never needs them."""
    from cryptopipe_dagster.lib.edge import trades_columnar

    return trades_columnar


def _arrow_columns(records: list[dict], *, plain_dicts: bool = False) -> dict[str, pa.Array | list]:
    """The TRADE_FIELDS of every record, one column per field (see arrow_column).

    plain_dicts (every record is exactly a dict): fields are read with itemgetter, in C."""
    return {name: arrow_column(_field(records, name, plain_dicts)) for name in TRADE_FIELDS}


def _field(records: list[dict], name: str, plain_dicts: bool) -> list:
    if plain_dicts:
        try:
            return list(map(operator.itemgetter(name), records))
        except KeyError:  # some record lacks the field: read it as missing, below
            pass
    return [record.get(name) for record in records]


def arrow_column(values: list) -> pa.Array | list:
    """One field of every record as Arrow when it is uniformly typed (the usual case), else as is."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return values
    if pa.types.is_string(array.type) or pa.types.is_null(array.type):
        return array  # Arrow refuses to mix text with anything but None: no bool hides in there
    types = set(map(type, values))
    if bool in types and len(types - {type(None)}) > 1:  # Arrow would read True as 1.0 among floats
        return values
    return array


def exact_frame(arrays: dict[str, pa.Array | list], index=None) -> pd.DataFrame:
    """The exact path's input frame of fields read column by column (arrow_column)."""
    return pd.DataFrame({name: typed_column(array) for name, array in arrays.items()}, index=index)


def typed_column(values: pa.Array | list) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A field for the exact path: typed when Arrow could type it (the vectorized checks apply),
    else Python objects (the hostile-input path)."""
    if not isinstance(values, pa.Array):
        return object_column(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pd.array(values, dtype=Text)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return values.to_numpy(zero_copy_only=False)
    return object_column(values.to_pylist())


def object_column(values: list) -> np.ndarray:
    """Python objects as a 1-D object array (the hostile-input path's column)."""
    # Not np.array(values, dtype=object): a list of equal-length lists would become a 2-D array.
    out = np.empty(len(values), dtype=object)
    out[:] = pd.Series(values, dtype=object).to_numpy()
    return out


def normalize_trades_table(
    table: pa.Table | pd.DataFrame,
    *,
    exchange: str,
    source: str = "rest",
    now: pd.Timestamp | None = None,
    ingested_at: pd.Timestamp | None = None,
) -> TradeBatch:
    """The same rules for columnar input (Arrow or pandas) with the TRADE_FIELDS columns."""
    check_exchange_and_source(exchange, source)
    names = table.column_names if isinstance(table, pa.Table) else list(table.columns)
    missing = [name for name in TRADE_FIELDS if name not in names]
    if missing:
        raise SchemaDrift(f"trade table lacks columns {missing}; has {names}")
    if isinstance(table, pa.Table):
        table = table.select(list(TRADE_FIELDS))
        if columnar().fast_path_applies(table):
            return _normalize_columnar(table, None, exchange, source, now, ingested_at)
        raw = _exact_input(table)
    else:
        raw = table[list(TRADE_FIELDS)].reset_index(drop=True)

    def payloads(positions: np.ndarray) -> list[dict]:
        return raw.loc[positions].to_dict("records")

    return _normalize(raw, np.empty(0, dtype=np.int64), payloads, exchange, source, now, ingested_at)


def _exact_input(table: pa.Table) -> pd.DataFrame:
    # Typed, zero-copy where Arrow allows: numbers stay float64/int64 and text stays Arrow-backed,
    # so every check takes its vectorized path (object columns would take the hostile one).
    return frame_from_arrow(table)


def _normalize_columnar(
    table, payload_of, exchange, source, now, ingested_at, drift=None, *, model_check: bool = True
) -> TradeBatch:
    """The columnar fast path for the clean rows, the exact path for the declined ones, one dedup."""
    import polars as pl

    fast = columnar()
    now, ingested_at = as_utc(now), as_utc(ingested_at)
    digit_ids = exchange in NUMERIC_TRADE_IDS  # the fast path only accepts digits on those venues
    split = fast.split_clean_rows(
        table,
        exchange=exchange,
        source=source,
        now=now,
        ingested_at=ingested_at,
        numeric_ids=digit_ids,
        model_check=model_check,
    )
    candidates, dead = split.clean, empty_dead_letters()
    if len(split.declined):
        raw = _exact_input(table.take(split.declined))
        raw.index = pd.Index(split.declined)
        if payload_of is None:

            def payload_of(positions: np.ndarray) -> list[dict]:
                return raw.loc[positions].to_dict("records")

        checked, passed, dead = _check(
            raw, np.empty(0, dtype=np.int64), payload_of, exchange, source, now, ingested_at, drift
        )
        if passed.any():
            exact = fast.from_trade_frame(checked[passed]).select(candidates.columns)
            digit_ids = digit_ids and fast.ids_are_digits(exact["trade_id"])
            candidates = pl.concat([candidates, exact])
    valid = fast.last_per_key_sorted_by_ts(candidates, digit_ids=digit_ids)
    return TradeBatch(
        valid=fast.to_trade_table(valid), dead_letters=dead, duplicates_dropped=len(candidates) - len(valid)
    )


def _normalize_rows(trades, payload_of, exchange, source, now, ingested_at, drift) -> TradeBatch:
    """The micro-batch path for the accepted records, the exact path for the declined ones."""
    now, ingested_at = as_utc(now), as_utc(ingested_at)
    accepted, declined = trades_rows.accept_rows(trades, now=now, numeric_ids=exchange in NUMERIC_TRADE_IDS)
    dead = empty_dead_letters()
    if len(declined):
        arrays = _arrow_columns([trades[i] for i in declined])
        raw = exact_frame(arrays, index=declined)
        checked, passed, dead = _check(
            raw, np.empty(0, dtype=np.int64), payload_of, exchange, source, now, ingested_at, drift
        )
        accepted += trades_rows.from_checked_frame(checked[passed])
    valid = trades_rows.last_per_key_sorted_by_ts(accepted)
    table = trades_rows.to_trade_table(valid, exchange=exchange, source=source, ingested_at=ingested_at)
    return TradeBatch(valid=table, dead_letters=dead, duplicates_dropped=len(accepted) - len(valid))


def _normalize(raw, not_dicts, payload_of, exchange, source, now, ingested_at, drift=None) -> TradeBatch:
    """The exact path over a whole batch (hostile types, pandas input)."""
    now, ingested_at = as_utc(now), as_utc(ingested_at)
    checked, passed, dead = _check(raw, not_dicts, payload_of, exchange, source, now, ingested_at, drift)
    before = int(passed.sum())
    valid = _last_per_key_sorted_by_ts(checked, passed)
    return TradeBatch(valid=valid, dead_letters=dead, duplicates_dropped=before - len(valid))


def _check(raw, not_dicts, payload_of, exchange, source, now, ingested_at, drift):
    """Every rule over `raw` (indexed by input position): the checked rows (indexed the same), which
    of them passed, and the dead letters of the rest."""
    rejections = RowRejections(raw.index)
    columns = _trade_columns(raw, now, rejections, numeric_ids=exchange in NUMERIC_TRADE_IDS)
    frame = _trade_frame(columns, ~rejections.rejected, raw.index, exchange, source, ingested_at)
    checked, failures = find_failures(frame, TradeSchema, drop_failures=False)
    rejections.add_failures(failures)
    passed = ~checked.index.isin(failures.index) if len(failures) else np.ones(len(checked), dtype=bool)
    dead = _trade_dead_letters(
        payload_of, not_dicts, rejections, columns["symbol"], exchange, source, ingested_at, drift
    )
    return checked, passed, dead


def _last_per_key_sorted_by_ts(frame: pd.DataFrame, passed: np.ndarray) -> pd.DataFrame:
    """The passing rows, last row per (symbol, trade_id), ordered by ts (stable), in one copy.

    Keys are Arrow dictionary codes combined in int64 and ordered with one numpy sort: several times
    faster than pandas' multi-column duplicated + boolean filter + sort_values on a million rows."""
    rows = np.flatnonzero(passed)
    if not len(rows):
        return frame.iloc[0:0].reset_index(drop=True)
    symbol_codes, n_symbols = _codes(frame["symbol"], rows)
    numeric_ids = _as_int64(frame["trade_id"], rows) if n_symbols == 1 else None
    if numeric_ids is not None:  # one market with integer ids (the usual batch): the ids are the key
        key = numeric_ids
    else:
        id_codes, n_ids = _codes(frame["trade_id"], rows)
        key = symbol_codes * max(n_ids, 1) + id_codes
    # Hash-based (O(n)), not np.unique's sort: each key's last row, kept in input order.
    keep = rows[~pd.Series(key).duplicated(keep="last").to_numpy()]
    ts = frame["ts"].array.asi8[keep]
    order = keep if (np.diff(ts) >= 0).all() else keep[np.argsort(ts, kind="stable")]
    if len(order) == len(frame) and (order == np.arange(len(frame))).all():
        frame.index = pd.RangeIndex(len(frame))  # in place: reset_index would copy every column
        return frame
    n = len(order)
    # Column by column; the batch-constant columns are rebuilt, not gathered row by row.
    rebuilt = {
        "exchange": lambda: constant_text(frame["exchange"].iloc[0], n),
        "source": lambda: constant_text(frame["source"].iloc[0], n),
        "ingested_at": lambda: utc_timestamps(np.full(n, frame["ingested_at"].iloc[0].value, dtype=np.int64)),
    }
    return pd.DataFrame(
        {c: rebuilt[c]() if c in rebuilt else frame[c].array.take(order) for c in frame.columns},
        index=pd.RangeIndex(n),
    )


def _as_int64(column: pd.Series, rows: np.ndarray) -> np.ndarray | None:
    """The rows' ids as int64 when every one is plain decimal digits that fit, else None."""
    arrow = _arrow_text(column)
    if arrow is None:
        return None
    # The whole column (no gather of the rows' strings): rows are picked from the int64 result.
    if not pc.all(pc.match_substring_regex(arrow, r"^[0-9]{1,18}$")).as_py():
        return None  # "007" and "7" are different ids as text; digits-only means no sign, no space
    if pc.any(pc.starts_with(arrow, "0")).as_py():
        return None
    return pc.cast(arrow, pa.int64()).to_numpy(zero_copy_only=False)[rows]


def _codes(column: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """int64 dictionary codes of an Arrow text column's `rows` and how many distinct values."""
    arrow = _arrow_text(column)
    if arrow is None:
        codes, uniques = pd.factorize(column.to_numpy()[rows])
        return codes.astype(np.int64), len(uniques)
    encoded = pc.dictionary_encode(pc.take(arrow, pa.array(rows))).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)


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
            "symbol": _text(columns["symbol"][keep]),
            "trade_id": _text(columns["trade_id"][keep]),
            "ts": utc_timestamps(columns["ts"][keep]),
            "price": columns["price"][keep],
            "amount": columns["amount"][keep],
            "side": _text(columns["side"][keep]),
            "source": constant_text(source, n),
            "ingested_at": utc_timestamps(np.full(n, ingested_at.value, dtype=np.int64)),
        },
        index=index[keep],
    )
    frame["trade_id"] = _fill_synthetic_ids(frame)
    return frame


def _text(values) -> pd.api.extensions.ExtensionArray:
    """A Text (Arrow string) column from Text or an object array of str/None, converted in C."""
    if isinstance(values, pd.api.extensions.ExtensionArray):
        return values if values.dtype == Text else pd.array(values, dtype=Text)
    return pd.arrays.ArrowStringArray(pa.array(values, type=pa.string(), from_pandas=True))


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


def _sides(raw: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    arrow = _arrow_text(raw)
    if arrow is not None:  # Arrow text: lower-cased in C
        return pd.array(pc.utf8_lower(pc.fill_null(arrow, "unknown")), dtype=Text)
    text = raw.astype(object).where(raw.notna(), "unknown")
    return text.astype(str).str.lower().to_numpy(dtype=object)


def _arrow_text(raw: pd.Series) -> pa.ChunkedArray | None:
    """The column's Arrow string data when it is Arrow-backed text (Text dtype), else None."""
    if isinstance(raw.dtype, pd.StringDtype) and raw.dtype.storage == "pyarrow":
        return pa.chunked_array(raw.array._pa_array)  # noqa: SLF001 - pandas exposes no public accessor
    return None


def _trade_ids(raw: pd.Series, rejections: RowRejections, *, numeric: bool = False) -> np.ndarray:
    """Ids as text: str stays, int becomes its decimal text, missing/empty becomes None (synthesized).

    With `numeric` (the venue's ids are integers) a present id that is not decimal digits is refused."""
    arrow = _arrow_text(raw)
    if arrow is not None:  # Arrow text: empty -> missing, the digit check in C
        ids = pc.if_else(pc.equal(arrow, ""), pa.scalar(None, pa.string()), arrow)
        if numeric:
            digits = pc.match_substring_regex(ids, f"^{NUMERIC_ID_PATTERN}$")
            bad = pc.fill_null(pc.invert(digits), False).to_numpy(zero_copy_only=False)
            rejections.add(
                bad, "invalid_trade_id", "trade_id:decimal_integer", "trade id is not a decimal integer", raw
            )
        return pd.array(ids, dtype=Text)
    ids = _id_texts(raw, rejections)
    if numeric:
        text = pd.Series(ids, index=raw.index, dtype=object)
        bad = (text.notna() & ~text.astype(str).str.fullmatch(NUMERIC_ID_PATTERN)).to_numpy()
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
    payload_of, not_dicts, rejections, symbols, exchange, source, ingested_at, drift=None
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
    reasons, checks, details = reasons[order], checks[order], details[order]
    reclassify_drift(drift, positions[order], reasons, checks, details)
    return build_dead_letters(
        dataset="trades",
        exchange=exchange,
        source=source,
        symbol=pair[order].tolist(),
        reason_code=reasons,
        check_name=checks,
        error_detail=details,
        raw_payload=payload_json(payload_of(positions[order])),
        first_seen_at=ingested_at,
    )
