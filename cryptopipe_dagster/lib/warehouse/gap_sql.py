"""SQL of the gap ledger (ops.gaps), the same text for DuckDB and BigQuery.

ops.gaps is small (one row per missing span) and clustered, not partitioned: its reads filter by
state, market and due time, never by date."""

from __future__ import annotations

from cryptopipe_dagster.lib.warehouse.tables import Dialect, safe_identifier

GAP_FILTERS = ("state", "exchange", "symbol", "timeframe", "kind")


def list_gaps_sql(dialect: Dialect, table: str, filters: list[str], due: bool, overlapping: bool) -> str:
    """Gaps matching equality `filters` (names from GAP_FILTERS); `due`: next_attempt <= $due_at;
    `overlapping`: span meets [$window_start, $window_end)."""
    p = dialect.param
    clauses = [f"{safe_identifier(name)} = {p(name)}" for name in filters if name in GAP_FILTERS]
    if due:
        clauses.append(f"next_attempt <= {p('due_at')}")
    if overlapping:
        clauses.append(f"span_start < {p('window_end')} AND span_end > {p('window_start')}")
    return (
        f"SELECT * FROM {table} WHERE {' AND '.join(clauses) or 'TRUE'} "
        "ORDER BY exchange, symbol, timeframe, span_start"
    )
