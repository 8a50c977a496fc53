"""Run a Pandera schema over a whole frame and turn its failure cases into per-row reason codes.

One bad row never fails a batch: `SchemaErrors.failure_cases` names the failing rows, those rows
become dead letters, every other row stays valid. Only failures that name no row (a missing or
extra column, a check that crashed) mean the batch itself has the wrong shape: SchemaDrift.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine

from cryptopipe_dagster.lib.edge.dead_letters import REASON_RANK, build_dead_letters, payload_json
from cryptopipe_dagster.lib.edge.schemas import ROW_CHECKS
from cryptopipe_dagster.lib.errors import SchemaDrift

# Dataframe-level checks are named after what must hold; the reason code names what went wrong.
_DATAFRAME_CHECK_REASONS = {
    "ohlc_consistent": "ohlc_inconsistent",
    "ts_aligned_to_timeframe": "ts_misaligned",
    "ts_not_in_future": "ts_in_future",
}
_PRICE_COLUMNS = frozenset({"open", "high", "low", "close", "price"})
_SIGN_REASONS = {"amount": "non_positive_amount", "volume": "negative_volume"}
_COERCION_CHECKS = ("coerce_dtype(", "dtype(")


def reason_code_for(column: object, check: str) -> str:
    """Stable snake_case reason code for one Pandera (column, check) failure."""
    if check in _DATAFRAME_CHECK_REASONS:
        return _DATAFRAME_CHECK_REASONS[check]
    if check == "not_nullable":
        return "null_value"
    if check.startswith(_COERCION_CHECKS):
        return "non_numeric_value" if column in _PRICE_COLUMNS | {"volume", "amount"} else "invalid_value"
    if check.startswith("greater_than(0)"):
        return (
            "non_positive_price" if column in _PRICE_COLUMNS else _SIGN_REASONS.get(column, "invalid_value")
        )
    if check.startswith("greater_than_or_equal_to(0)"):
        return _SIGN_REASONS.get(column, "invalid_value")
    column_reasons = {"symbol": "invalid_symbol", "side": "invalid_side", "trade_id": "invalid_trade_id"}
    if column in column_reasons:
        return column_reasons[column]
    if check.startswith(("str_matches(", "isin(", "str_length(")):
        return "invalid_value"
    return "schema_check_failed"


def find_failures(
    df: pd.DataFrame, schema: type[pa.DataFrameModel], *, drop_failures: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate `df` (lazy; its index must be unique) and return (passing rows coerced, failures).

    drop_failures=False may return the failing rows too (the caller drops failures.index itself).
    failures has one row per failing row label (index) with reason_code, check_name and
    error_detail; when a row fails several checks the most fundamental reason is kept.
    Raises SchemaDrift when a failure names no row (missing/extra column, a crashing check).
    """
    coerced = _coerced_or_none(df, schema)
    row_checks = ROW_CHECKS.get(schema, {}) if coerced is not None else {}
    failed_rows, row_cases = _run_row_checks(coerced, row_checks) if row_checks else (None, None)
    typed = coerced is not None and coerced is df
    full = _checking_schema(schema) if typed else _full_schema(schema)
    if failed_rows is None or not failed_rows.any():
        valid, cases = _pandera_cases(df if coerced is None else coerced, full)
    else:
        # Rows failing a dataframe-level check skip those checks in Pandera (see schemas.ROW_CHECKS)
        # but still get every column check, so the most fundamental reason is still the one kept.
        valid, clean_cases = _pandera_cases(coerced.loc[~failed_rows], full)
        _, dirty_cases = _pandera_cases(coerced.loc[failed_rows], _column_schema(schema))
        cases = pd.concat([clean_cases, dirty_cases, row_cases], ignore_index=True)
    if cases.empty:
        return valid, _no_failures()
    drift = cases[cases["index"].isna()]
    if len(drift):
        summary = "; ".join(
            f"{c}: {k} ({v})" for c, k, v in drift[["column", "check", "failure_case"]].values
        )
        raise SchemaDrift(f"{schema.__name__} does not fit the batch: {summary[:500]}")
    failures = _summarise(cases)
    coercion_failed = cases["check"].str.startswith(_COERCION_CHECKS).any()
    if not drop_failures and not coercion_failed:  # the caller filters (with its own dedup, one copy)
        return valid, failures
    valid = valid.loc[~valid.index.isin(failures.index)]
    if coercion_failed:
        # A column that could not be coerced as a whole is still raw; coerce the passing rows now.
        valid = _revalidate(valid, schema)
    return valid, failures


def _revalidate(valid: pd.DataFrame, schema: type[pa.DataFrameModel]) -> pd.DataFrame:
    try:
        return _full_schema(schema).validate(valid, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise SchemaDrift(f"{schema.__name__}: rows that passed failed again after coercion") from err


@functools.cache
def _full_schema(schema: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    return schema.to_schema()


@functools.cache
def _column_schema(schema: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    columns_only = copy.deepcopy(schema.to_schema())
    columns_only.checks = []
    return columns_only


def _coerced_or_none(df: pd.DataFrame, schema: type[pa.DataFrameModel]) -> pd.DataFrame | None:
    """`df` with the schema's dtypes, or None when some value cannot be coerced (Pandera reports it)."""
    if list(df.columns) != list(_full_schema(schema).columns):
        return None
    if _has_schema_dtypes(df, schema):  # normalize built it typed: coercing again would only copy
        return df
    try:
        return _full_schema(schema).coerce_dtype(df)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors):
        return None


def _has_schema_dtypes(df: pd.DataFrame, schema: type[pa.DataFrameModel]) -> bool:
    columns = _full_schema(schema).columns
    return all(
        column.dtype is not None and column.dtype.check(pandas_engine.Engine.dtype(df[name].dtype))
        for name, column in columns.items()
    )


@functools.cache
def _checking_schema(schema: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    """The schema without coercion, for frames that already have its dtypes (every check still runs)."""
    checking = copy.deepcopy(schema.to_schema())
    checking.coerce = False
    return checking


def _run_row_checks(df: pd.DataFrame, checks: dict) -> tuple[np.ndarray, pd.DataFrame]:
    failed = np.zeros(len(df), dtype=bool)
    parts = []
    for name, check in checks.items():
        failing = ~np.asarray(check(df), dtype=bool)
        failed |= failing
        labels = df.index[failing]
        parts.append(pd.DataFrame({"index": labels, "column": None, "check": name, "failure_case": False}))
    return failed, pd.concat(parts, ignore_index=True)


def _pandera_cases(df: pd.DataFrame, schema: pa.DataFrameSchema) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return schema.validate(df, lazy=True), pd.DataFrame(
            columns=["index", "column", "check", "failure_case"]
        )
    except pa.errors.SchemaErrors as err:
        coerced = err.data if err.data is not None else df
        return coerced, err.failure_cases[["index", "column", "check", "failure_case"]]


def _summarise(cases: pd.DataFrame) -> pd.DataFrame:
    # Dataframe-level checks report every column of a failing row; keep one line per (row, check).
    is_frame_check = cases["check"].isin(list(_DATAFRAME_CHECK_REASONS))
    cases = cases.assign(column=cases["column"].where(~is_frame_check, None))
    cases = cases.drop_duplicates(subset=["index", "check", "column"])
    pairs = cases[["column", "check"]].drop_duplicates()
    pairs["reason_code"] = [reason_code_for(column, check) for column, check in pairs.values]
    cases = cases.merge(pairs, on=["column", "check"], how="left")
    cases["rank"] = cases["reason_code"].map(REASON_RANK).fillna(REASON_RANK["schema_check_failed"])
    cases["check_name"] = np.where(
        cases["column"].isna(), cases["check"], cases["column"] + ":" + cases["check"]
    )
    failures_per_row = cases.groupby("index")["check"].transform("size")
    value = cases["failure_case"].astype(str).str.slice(0, 80)
    detail = np.where(
        cases["column"].isna(), "row failed " + cases["check"], cases["check_name"] + " failed for " + value
    )
    extra = np.where(
        failures_per_row > 1, " (+" + (failures_per_row - 1).astype(str) + " other failed checks)", ""
    )
    cases["error_detail"] = pd.Series(detail, index=cases.index) + extra
    first = cases.sort_values("rank", kind="stable").drop_duplicates(subset="index")
    return first.set_index("index")[["reason_code", "check_name", "error_detail"]].rename_axis(None)


def _no_failures() -> pd.DataFrame:
    return pd.DataFrame({"reason_code": [], "check_name": [], "error_detail": []}, dtype=object)


def validate_frame(
    df: pd.DataFrame,
    schema: type[pa.DataFrameModel],
    *,
    dataset: str,
    source: str,
    first_seen_at: pd.Timestamp | None = None,
    payloads: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `df` into (valid rows coerced to `schema`, dead letters for every failing row).

    `payloads` (same index as `df`) holds each row's raw JSON as received; without it the row
    itself is serialised. exchange/symbol/timeframe of a dead letter come from the row's columns
    when the frame has them.
    """
    first_seen_at = first_seen_at if first_seen_at is not None else pd.Timestamp.now(tz="UTC")
    if not df.index.is_unique:
        # Failure cases name rows by index label: each label must name exactly one row.
        df = df.reset_index(drop=True)
        payloads = payloads.reset_index(drop=True) if payloads is not None else None
    valid, failures = find_failures(df, schema)
    bad = df.loc[failures.index]
    raw = payloads.loc[bad.index].tolist() if payloads is not None else payload_json(bad.to_dict("records"))
    return valid, build_dead_letters(
        dataset=dataset,
        source=source,
        exchange=_column_or(bad, "exchange", ""),
        symbol=_column_or(bad, "symbol", None),
        timeframe=_column_or(bad, "timeframe", None),
        reason_code=failures["reason_code"],
        check_name=failures["check_name"],
        error_detail=failures["error_detail"],
        raw_payload=raw,
        first_seen_at=first_seen_at,
    )


def _column_or(frame: pd.DataFrame, column: str, default: object) -> list[object]:
    if column not in frame:
        return [default] * len(frame)
    values = frame[column].astype(object)
    return values.where(values.notna(), default).map(str, na_action="ignore").tolist()


class RowRejections:
    """Per-row rejection reasons collected across checks; a row keeps its most fundamental reason."""

    _NOT_REJECTED = np.iinfo(np.int32).max

    def __init__(self, labels: pd.Index) -> None:
        self.labels = labels
        self.rank = np.full(len(labels), self._NOT_REJECTED, dtype=np.int32)
        self.reason = np.full(len(labels), None, dtype=object)
        self.check = np.full(len(labels), None, dtype=object)
        self.detail = np.full(len(labels), None, dtype=object)

    @property
    def rejected(self) -> np.ndarray:
        """Boolean mask of rows with at least one reason."""
        return self.rank != self._NOT_REJECTED

    def add(
        self, mask: np.ndarray, reason: str, check: str, message: str, values: pd.Series | None = None
    ) -> None:
        """Reject rows in `mask` for `reason` unless they already carry a more fundamental one."""
        take = mask & (self.rank > REASON_RANK[reason])
        if not take.any():
            return
        self.rank[take] = REASON_RANK[reason]
        self.reason[take] = reason
        self.check[take] = check
        if values is None:
            self.detail[take] = message
        else:  # only the rejected values are formatted: this loop runs over bad rows, never all rows
            # tolist(): Python scalars, so a typed column reads 5, not np.int64(5), as objects do.
            rejected = values.to_numpy()[take].tolist()
            self.detail[take] = [f"{message}: {value!r}"[:200] for value in rejected]

    def add_failures(self, failures: pd.DataFrame) -> None:
        """Merge the output of find_failures (indexed by the same labels)."""
        if failures.empty:
            return
        positions = self.labels.get_indexer(failures.index)
        unknown_rank = REASON_RANK["schema_check_failed"]
        ranks = failures["reason_code"].map(REASON_RANK).fillna(unknown_rank).to_numpy(dtype=np.int32)
        take = ranks < self.rank[positions]
        positions = positions[take]
        self.rank[positions] = ranks[take]
        for column, target in (
            ("reason_code", self.reason),
            ("check_name", self.check),
            ("error_detail", self.detail),
        ):
            target[positions] = failures[column].to_numpy()[take]
