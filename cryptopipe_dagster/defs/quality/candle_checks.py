"""Asset checks of raw.candles for one run's window, computed from the warehouse after the load.

Each returns a dg.AssetCheckResult with metadata the UI shows (counts, and failures as a markdown
table) rather than log lines.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

from cryptopipe_dagster.defs.historical.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    daily_exchange_partitions,
)
from cryptopipe_dagster.lib.edge.schemas import CandleSchema
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillStats, find_window_gaps, listed_window
from cryptopipe_dagster.lib.historical.gap_ledger import (
    CANDLES_KIND,
    CONFIRMED,
    OPEN,
    REPAIRED,
    evidence_summary,
)
from cryptopipe_dagster.lib.historical.gaps import expected_candle_count
from cryptopipe_dagster.lib.quality.table_contract import contract_differences
from cryptopipe_dagster.lib.warehouse import Warehouse

COMPLETENESS = "candles_complete"
UNIQUE_KEYS = "candles_unique_keys"
DEAD_LETTERS = "candles_dead_letters"
SCHEMA = "candles_match_schema"
MAX_TABLE_ROWS = 50

CHECK_SPECS_DESCRIPTIONS = {
    COMPLETENESS: "No open gap in the window (gap ledger ops.gaps): open gaps fail it with their spans; "
    "gaps the exchange itself never served (confirmed_exchange_gap) are listed and pass.",
    UNIQUE_KEYS: "No two rows share (exchange, symbol, timeframe, ts) in the window's partitions.",
    DEAD_LETTERS: "No record of this run went to ops.dead_letters (reason codes listed when some did).",
    SCHEMA: "raw.candles' stored columns and types (the warehouse catalog) equal its contract (the "
    "table spec from CandleSchema): no column missing, retyped or unexpected; and the window's rows "
    "still validate against CandleSchema.",
}
# Checks that stop downstream dbt in the same run when they fail (severity ERROR): a mart built on
# duplicated keys, on a table that no longer has its contract's shape, or over an open gap would be
# wrong, and indicators would carry the error forward. Dead letters (and drift, anomalies) warn:
# the rows that were loaded are right, and what was kept out is listed for someone to look at.
BLOCKING = frozenset({COMPLETENESS, UNIQUE_KEYS, SCHEMA})


def markdown_table(frame: pd.DataFrame, limit: int = MAX_TABLE_ROWS) -> str:
    """A markdown table of the first `limit` rows (the UI renders it), noting what was cut."""
    if frame.empty:
        return "(none)"
    shown = frame.head(limit).astype(str)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in shown.itertuples(index=False)]
    if len(frame) > limit:
        lines.append(f"\n{len(frame) - limit} more rows not shown")
    return "\n".join(lines)


def _completeness_row(warehouse: Warehouse, stats: BackfillStats, now: pd.Timestamp) -> tuple[dict, list]:
    target = stats.target
    market = (target.exchange, target.symbol, target.timeframe)
    window = listed_window(warehouse, target, now)
    present = warehouse.candle_timestamps(*market, *window) if window else []
    spans = find_window_gaps(warehouse, target, now)  # the spans the backfill recorded in the ledger
    row = {
        "symbol": target.symbol,
        "timeframe": target.timeframe,
        "expected": expected_candle_count(*window, target.timeframe) if window else 0,
        "actual": len(present),
        "gaps": len(spans),
        "missing": sum(n for _start, _end, n in spans),
    }
    return row, [(*market, start, end, n) for start, end, n in spans]


_GAP_COLUMNS = ["exchange", "symbol", "timeframe", "span_start", "span_end", "state", "attempts", "evidence"]


def _ledger_gaps(warehouse: Warehouse, runs: list[BackfillStats]) -> pd.DataFrame:
    """Open and confirmed ledger gaps of the runs' markets that overlap the run's windows."""
    if not runs:
        return pd.DataFrame(columns=_GAP_COLUMNS)
    start, end = min(s.target.start for s in runs), max(s.target.end for s in runs)
    ledger = warehouse.list_gaps(kind=CANDLES_KIND, overlapping=(start, end))
    windows = pd.DataFrame(
        [
            (s.target.exchange, s.target.symbol, s.target.timeframe, s.target.start, s.target.end)
            for s in runs
        ],
        columns=["exchange", "symbol", "timeframe", "window_start", "window_end"],
    )
    if ledger.empty:
        return pd.DataFrame(columns=_GAP_COLUMNS)
    joined = ledger.astype({"exchange": str, "symbol": str, "timeframe": str}).merge(
        windows, on=["exchange", "symbol", "timeframe"]
    )
    inside = (joined.span_start < joined.window_end) & (joined.span_end > joined.window_start)
    kept = joined[inside & (joined.state != REPAIRED)].drop_duplicates(
        ["exchange", "symbol", "timeframe", "span_start"]
    )
    return kept.assign(evidence=kept["evidence"].map(evidence_summary))[_GAP_COLUMNS].reset_index(drop=True)


def _unrecorded(found: list[tuple], ledger: pd.DataFrame) -> pd.DataFrame:
    """Missing spans found now that no open or confirmed ledger gap covers (a bug if any)."""
    rows = [
        {
            **dict(zip(_GAP_COLUMNS[:5], (exchange, symbol, timeframe, start, end), strict=True)),
            "state": "unrecorded",
            "attempts": 0,
            "evidence": f"{missing} candles missing",
        }
        for exchange, symbol, timeframe, start, end, missing in found
        if not (
            (ledger.exchange == exchange)
            & (ledger.symbol == symbol)
            & (ledger.timeframe == timeframe)
            & (ledger.span_start <= start)
            & (ledger.span_end >= end)
        ).any()
    ]
    return pd.DataFrame(rows, columns=_GAP_COLUMNS)


def completeness_check(
    warehouse: Warehouse, runs: list[BackfillStats], now: pd.Timestamp
) -> dg.AssetCheckResult:
    """Reads the gap ledger: open gaps fail the check (ERROR: downstream waits for the repair),
    confirmed exchange gaps (real outages) are listed and pass."""
    rows, found = [], []
    for stats in runs:
        row, spans = _completeness_row(warehouse, stats, now)
        rows.append(row)
        found.extend(spans)
    summary = pd.DataFrame(rows)
    ledger = _ledger_gaps(warehouse, runs)
    parts = [frame for frame in (ledger, _unrecorded(found, ledger)) if not frame.empty]
    gaps = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_GAP_COLUMNS)
    failing = int(gaps["state"].isin([OPEN, "unrecorded"]).sum())
    return dg.AssetCheckResult(
        check_name=COMPLETENESS,
        passed=failing == 0,
        severity=dg.AssetCheckSeverity.ERROR if failing else dg.AssetCheckSeverity.WARN,
        metadata={
            "expected_candles": int(summary["expected"].sum()) if rows else 0,
            "actual_candles": int(summary["actual"].sum()) if rows else 0,
            "missing_candles": int(summary["missing"].sum()) if rows else 0,
            "gap_count": len(gaps),
            "open_gaps": failing,
            "confirmed_exchange_gaps": int((gaps["state"] == CONFIRMED).sum()),
            "per_market": dg.MetadataValue.md(markdown_table(summary)),
            "gaps": dg.MetadataValue.md(markdown_table(gaps)),
        },
    )


def unique_keys_check(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> dg.AssetCheckResult:
    """Duplicate keys would mean the idempotent MERGE failed: an error, not a warning."""
    duplicates = warehouse.count_duplicate_keys(
        "raw.candles", start.date(), (end - pd.Timedelta(days=1)).date()
    )
    return dg.AssetCheckResult(
        check_name=UNIQUE_KEYS, passed=duplicates == 0, metadata={"duplicate_keys": duplicates}
    )


def dead_letters_check(runs: list[BackfillStats]) -> dg.AssetCheckResult:
    """Dead letters are kept and replayable; the check warns so someone looks at the reasons."""
    total = sum(s.dead_letters for s in runs)
    reasons = pd.DataFrame(
        [
            {
                "symbol": s.target.symbol,
                "timeframe": s.target.timeframe,
                "reason_code": reason,
                "count": count,
            }
            for s in runs
            for reason, count in s.dead_letter_reasons.items()
        ]
    )
    return dg.AssetCheckResult(
        check_name=DEAD_LETTERS,
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"dead_letters": total, "by_reason": dg.MetadataValue.md(markdown_table(reasons))},
    )


def schema_check(
    warehouse: Warehouse, exchanges: list[str], start: pd.Timestamp, end: pd.Timestamp
) -> dg.AssetCheckResult:
    """The stored table against its contract (catalog columns and types), then the window's rows
    against CandleSchema. Fails (ERROR, blocking) on any difference."""
    return table_schema_result(
        SCHEMA,
        warehouse,
        "raw.candles",
        lambda: warehouse.candles_in_window(exchanges, start, end),
        CandleSchema,
    )


def table_schema_result(
    check_name: str, warehouse: Warehouse, logical: str, read_rows, schema
) -> dg.AssetCheckResult:
    """A schema check of one table: contract differences (from the catalog) and, when the table has
    its contract's shape, the Pandera failure cases of the rows `read_rows()` returns (no row check
    when read_rows is None)."""
    differences = contract_differences(warehouse, logical)
    stored, failures = pd.DataFrame(), pd.DataFrame()
    # Rows of a table with another shape cannot even be read as the schema's.
    if differences.empty and read_rows is not None:
        stored = read_rows()
        try:
            schema.validate(stored, lazy=True)
        except (SchemaErrors, SchemaError) as error:  # report the cases; the run itself goes on
            failures = (
                error.failure_cases
                if isinstance(error.failure_cases, pd.DataFrame)
                else pd.DataFrame({"error": [str(error)]})
            )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=differences.empty and failures.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if differences.empty
        else f"{logical} differs from its contract in {len(differences)} column(s)",
        metadata={
            "column_differences": len(differences),
            "columns": dg.MetadataValue.md(markdown_table(differences)),
            "rows_checked": len(stored),
            "failure_cases": len(failures),
            "failures": dg.MetadataValue.md(markdown_table(failures)),
        },
    )


def partition_check_evaluations(
    warehouse: Warehouse, partition: str, runless: bool = False
) -> list[dg.AssetCheckEvaluation]:
    """The unique-keys and schema checks of one raw/candles partition (date|exchange), as
    evaluations to log beside a materialization made outside the backfill job: live 1m candles from
    the sensor, the catch-up job, gap repair. The UI then shows check results for every latest
    materialization, whoever made it."""
    key = daily_exchange_partitions.get_partition_key_from_str(partition)
    day = pd.Timestamp(key.keys_by_dimension[DATE_DIMENSION], tz="UTC")
    exchange = key.keys_by_dimension[EXCHANGE_DIMENSION]
    end = day + pd.Timedelta(days=1)
    return [
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(["raw", "candles"]),
            check_name=result.check_name,
            passed=result.passed,
            severity=result.severity,
            description=result.description,
            metadata={**result.metadata, "partition": str(key)},
            partition=None if runless else str(key),
            blocking=True,
        )
        for result in (unique_keys_check(warehouse, day, end), schema_check(warehouse, [exchange], day, end))
    ]
