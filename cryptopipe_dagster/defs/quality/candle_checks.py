"""Asset checks of raw.candles for one run's window, computed from the warehouse after the load.

Each returns a dg.AssetCheckResult with metadata the UI shows (counts, and failures as a markdown
table) rather than log lines.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

from cryptopipe_dagster.lib.edge.schemas import CandleSchema
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillStats, closed_until
from cryptopipe_dagster.lib.historical.gaps import expected_candle_count, find_gaps
from cryptopipe_dagster.lib.warehouse import Warehouse

COMPLETENESS = "candles_complete"
UNIQUE_KEYS = "candles_unique_keys"
DEAD_LETTERS = "candles_dead_letters"
SCHEMA = "candles_match_schema"
MAX_TABLE_ROWS = 50

CHECK_SPECS_DESCRIPTIONS = {
    COMPLETENESS: "Every closed candle of the window is there (from the market's first candle); gaps listed.",
    UNIQUE_KEYS: "No two rows share (exchange, symbol, timeframe, ts) in the window's partitions.",
    DEAD_LETTERS: "No record of this run went to ops.dead_letters (reason codes listed when some did).",
    SCHEMA: "Rows stored for the window still validate against the Pandera CandleSchema.",
}


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


LISTING_LOOKBACK = pd.Timedelta(days=366)


def _completeness_row(warehouse: Warehouse, stats: BackfillStats, now: pd.Timestamp) -> tuple[dict, list]:
    target = stats.target
    end = closed_until(now, target.timeframe, target.end)
    present = warehouse.candle_timestamps(target.exchange, target.symbol, target.timeframe, target.start, end)
    # Bounded look back (every warehouse query prunes by date): a market with no candle in the year
    # before the window counts as not listed yet, so its missing window is not reported as gaps.
    first_listed = warehouse.first_candle_ts(
        target.exchange, target.symbol, target.timeframe, since=target.start - LISTING_LOOKBACK
    )
    start = max(target.start, first_listed) if first_listed is not None else target.start
    expected = expected_candle_count(start, end, target.timeframe) if end > start else 0
    gaps = find_gaps(present, start, end, target.timeframe) if first_listed is not None else []
    row = {
        "symbol": target.symbol,
        "timeframe": target.timeframe,
        "expected": expected,
        "actual": len(present),
        "gaps": len(gaps),
        "missing": sum(g[2] for g in gaps),
    }
    gap_rows = [
        {
            "symbol": target.symbol,
            "timeframe": target.timeframe,
            "from": g[0],
            "to": g[1],
            "missing_candles": g[2],
        }
        for g in gaps
    ]
    return row, gap_rows


def completeness_check(
    warehouse: Warehouse, runs: list[BackfillStats], now: pd.Timestamp
) -> dg.AssetCheckResult:
    """Expected vs actual candles per market; real exchange outages show up here as listed gaps."""
    rows, gap_rows = [], []
    for stats in runs:
        row, gaps = _completeness_row(warehouse, stats, now)
        rows.append(row)
        gap_rows.extend(gaps)
    summary = pd.DataFrame(rows)
    missing = int(summary["missing"].sum()) if not summary.empty else 0
    return dg.AssetCheckResult(
        check_name=COMPLETENESS,
        passed=missing == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "expected_candles": int(summary["expected"].sum()) if rows else 0,
            "actual_candles": int(summary["actual"].sum()) if rows else 0,
            "missing_candles": missing,
            "gap_count": len(gap_rows),
            "per_market": dg.MetadataValue.md(markdown_table(summary)),
            "gaps": dg.MetadataValue.md(markdown_table(pd.DataFrame(gap_rows))),
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
    """Re-validate what is stored: catches drift between the table and the canonical schema."""
    stored = warehouse.candles_in_window(exchanges, start, end)
    failures = pd.DataFrame()
    try:
        CandleSchema.validate(stored, lazy=True)
    except (SchemaErrors, SchemaError) as error:  # report the cases; the run itself goes on
        failures = (
            error.failure_cases
            if isinstance(error.failure_cases, pd.DataFrame)
            else pd.DataFrame({"error": [str(error)]})
        )
    return dg.AssetCheckResult(
        check_name=SCHEMA,
        passed=failures.empty,
        metadata={
            "rows_checked": len(stored),
            "failure_cases": len(failures),
            "failures": dg.MetadataValue.md(markdown_table(failures)),
        },
    )
