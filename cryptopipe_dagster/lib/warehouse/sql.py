"""Portable SQL text for every warehouse backend, built from the table specs.

Values always travel as query parameters (``$name`` in DuckDB, ``@name`` in BigQuery); only
identifiers are placed into SQL text, and only after ``safe_identifier`` has checked them and the
table name has been found in the TABLES allow-list. The statements use the subset of SQL both
DuckDB and BigQuery accept: MERGE INTO ... WHEN [NOT] MATCHED, IS DISTINCT FROM, CAST(ts AS DATE)
(UTC in BigQuery; DuckDB connections set TimeZone=UTC), IN (SELECT * FROM UNNEST(param)).
"""

from __future__ import annotations

from cryptopipe_dagster.lib.warehouse.tables import (
    CANDLES,
    Dialect,
    TableSpec,
    safe_identifier,
)


def create_table_sql(spec: TableSpec, dialect: Dialect, table: str) -> str:
    """CREATE TABLE IF NOT EXISTS with NOT NULLs; partition and cluster clauses where supported."""
    columns = ", ".join(
        f"{safe_identifier(c.name)} {dialect.types[c.type]}{'' if c.nullable else ' NOT NULL'}"
        for c in spec.columns
    )
    sql = f"CREATE TABLE IF NOT EXISTS {table} ({columns})"
    if dialect.partitions and (spec.date_column or spec.date_source):
        sql += f" PARTITION BY {spec.date_column or f'DATE({safe_identifier(spec.date_source)})'}"
    if dialect.partitions and spec.cluster_by:
        sql += " CLUSTER BY " + ", ".join(safe_identifier(c) for c in spec.cluster_by)
    return sql


def _key_match(spec: TableSpec) -> str:
    return " AND ".join(f"t.{safe_identifier(k)} = s.{safe_identifier(k)}" for k in spec.key)


def _changed(spec: TableSpec) -> str:
    return " OR ".join(
        f"t.{safe_identifier(c)} IS DISTINCT FROM s.{safe_identifier(c)}" for c in spec.compare
    )


def date_range(spec: TableSpec, dialect: Dialect, alias: str = "t") -> str:
    """Partition filter `date BETWEEN $min_date AND $max_date` (both inclusive)."""
    return (
        f"{spec.date_expression(alias)} BETWEEN {dialect.param('min_date')} AND {dialect.param('max_date')}"
    )


def _merge_condition(spec: TableSpec, dialect: Dialect) -> str:
    # Only a partition column derived from the key (candle_date from ts) may prune the MERGE: a
    # dead letter seen again later has a new first_seen_at, so pruning by it would miss the original.
    if spec.date_column:
        return f"{date_range(spec, dialect)} AND {_key_match(spec)}"
    return _key_match(spec)


def staged_select(spec: TableSpec, source: str) -> str:
    """The staged batch with the partition column derived in SQL (UTC date of its timestamp)."""
    columns = [f"s.{safe_identifier(c)}" for c in spec.input_columns]
    if spec.date_column:
        columns.append(
            f"CAST(s.{safe_identifier(spec.date_source)} AS DATE) AS {safe_identifier(spec.date_column)}"
        )
    return f"SELECT {', '.join(columns)} FROM {source} AS s"


def merge_stats_sql(spec: TableSpec, dialect: Dialect, table: str, source: str) -> str:
    """Counts of staged rows the MERGE will insert, update (values differ) or leave unchanged."""
    present = f"t.{safe_identifier(spec.key[0])} IS NOT NULL"  # key columns are NOT NULL
    changed = _changed(spec) if spec.compare else "FALSE"
    return (
        f"SELECT COUNT(*) AS total, "
        f"COALESCE(SUM(CASE WHEN {present} THEN 0 ELSE 1 END), 0) AS inserted, "
        f"COALESCE(SUM(CASE WHEN {present} AND ({changed}) THEN 1 ELSE 0 END), 0) AS updated "
        f"FROM {source} AS s LEFT JOIN {table} AS t ON {_merge_condition(spec, dialect)}"
    )


def merge_sql(spec: TableSpec, dialect: Dialect, table: str, source: str) -> str:
    """Idempotent MERGE of a staged batch on the table key, restricted to the batch's date range."""
    columns = spec.column_names
    sql = (
        f"MERGE INTO {table} AS t USING ({staged_select(spec, source)}) AS s "
        f"ON {_merge_condition(spec, dialect)} "
    )
    if spec.update:
        condition = f" AND ({_changed(spec)})" if spec.compare else ""
        assignments = ", ".join(f"{safe_identifier(c)} = s.{safe_identifier(c)}" for c in spec.update)
        sql += f"WHEN MATCHED{condition} THEN UPDATE SET {assignments} "
    insert_columns = ", ".join(safe_identifier(c) for c in columns)
    insert_values = ", ".join(f"s.{safe_identifier(c)}" for c in columns)
    return sql + f"WHEN NOT MATCHED THEN INSERT ({insert_columns}) VALUES ({insert_values})"


def duplicate_keys_sql(spec: TableSpec, dialect: Dialect, table: str) -> str:
    """Rows beyond the first per key within a date range (0 when every key is unique)."""
    key = ", ".join(safe_identifier(k) for k in spec.key)
    return (
        f"SELECT COALESCE(SUM(n - 1), 0) AS duplicates FROM (SELECT COUNT(*) AS n FROM {table} AS t "
        f"WHERE {date_range(spec, dialect)} GROUP BY {key} HAVING COUNT(*) > 1) AS d"
    )


def market_filter(dialect: Dialect) -> str:
    """WHERE fragment selecting one (exchange, symbol, timeframe)."""
    p = dialect.param
    return f"exchange = {p('exchange')} AND symbol = {p('symbol')} AND timeframe = {p('timeframe')}"


def candle_timestamps_sql(dialect: Dialect, table: str) -> str:
    """Open times of one market's candles in [start, end), pruned to [min_date, max_date]."""
    p = dialect.param
    return (
        f"SELECT ts FROM {table} AS t WHERE {date_range(CANDLES, dialect)} AND "
        f"{market_filter(dialect)} AND ts >= {p('start')} AND ts < {p('end')} ORDER BY ts"
    )


def first_candle_sql(dialect: Dialect, table: str) -> str:
    """Earliest open time of one market at or after min_date (the caller bounds the scan)."""
    return (
        f"SELECT MIN(ts) AS first_ts FROM {table} AS t WHERE {CANDLES.date_expression('t')} >= "
        f"{dialect.param('min_date')} AND ts >= {dialect.param('since')} AND {market_filter(dialect)}"
    )


def candles_in_window_sql(dialect: Dialect, table: str, *, by_exchange: bool) -> str:
    """Stored candles (schema columns) in [start, end), optionally only some exchanges."""
    p = dialect.param
    sql = (
        f"SELECT {', '.join(CANDLES.input_columns)} FROM {table} AS t "
        f"WHERE {date_range(CANDLES, dialect)} AND ts >= {p('start')} AND ts < {p('end')}"
    )
    if by_exchange:
        sql += f" AND exchange IN (SELECT * FROM UNNEST({p('exchanges')}))"
    return sql + " ORDER BY exchange, symbol, timeframe, ts"


def checkpoint_sql(dialect: Dialect, table: str) -> str:
    """The checkpoint row of one market."""
    return f"SELECT * FROM {table} WHERE {market_filter(dialect)}"


DEAD_LETTER_FILTERS = ("dataset", "exchange", "symbol", "reason_code")


def dead_letters_sql(
    dialect: Dialect, filters: list[str], replayed: bool | None, since: bool, limit: bool, table: str
) -> str:
    """Dead letters, oldest first, matching equality `filters` (names from DEAD_LETTER_FILTERS)."""
    clauses = [
        f"{safe_identifier(name)} = {dialect.param(name)}" for name in filters if name in DEAD_LETTER_FILTERS
    ]
    if replayed is not None:
        clauses.append(f"replayed_at IS {'NOT ' if replayed else ''}NULL")
    if since:
        clauses.append(f"first_seen_at >= {dialect.param('since')}")
    sql = f"SELECT * FROM {table} WHERE {' AND '.join(clauses) or 'TRUE'}"
    sql += " ORDER BY first_seen_at, dead_letter_id"
    return sql + (f" LIMIT {dialect.param('limit')}" if limit else "")


def mark_replayed_sql(dialect: Dialect, table: str) -> str:
    """Set replayed_at on the listed dead letters that are not replayed yet."""
    p = dialect.param
    return (
        f"UPDATE {table} SET replayed_at = {p('at')} WHERE replayed_at IS NULL "
        f"AND dead_letter_id IN (SELECT * FROM UNNEST({p('ids')}))"
    )
