from __future__ import annotations

import pytest

from cryptopipe_dagster.lib.edge.schemas import CandleSchema, DeadLetterSchema, TradeSchema, schema_columns
from cryptopipe_dagster.lib.errors import UnsafeIdentifier
from cryptopipe_dagster.lib.warehouse.sql import create_table_sql, dead_letters_sql, merge_sql
from cryptopipe_dagster.lib.warehouse.tables import (
    BIGQUERY,
    CANDLES,
    DUCKDB,
    TABLES,
    safe_identifier,
    table_spec,
)


def test_tables_follow_the_schemas_plus_partition_column() -> None:
    assert TABLES["raw.candles"].column_names == [*schema_columns(CandleSchema), "candle_date"]
    assert TABLES["raw.trades"].column_names == [*schema_columns(TradeSchema), "trade_date"]
    assert TABLES["ops.dead_letters"].column_names == schema_columns(DeadLetterSchema)
    assert TABLES["raw.candles"].key == ("exchange", "symbol", "timeframe", "ts")


def test_bigquery_ddl_partitions_and_clusters_candles() -> None:
    ddl = create_table_sql(CANDLES, BIGQUERY, "`p.raw.candles`")
    assert ddl.endswith("PARTITION BY candle_date CLUSTER BY exchange, symbol, timeframe")
    assert "ts TIMESTAMP NOT NULL" in ddl and "open FLOAT64 NOT NULL" in ddl
    assert "PARTITION" not in create_table_sql(CANDLES, DUCKDB, "raw.candles")


def test_merge_is_parameterized_and_pruned_by_candle_date() -> None:
    duck, bq = (
        merge_sql(CANDLES, DUCKDB, "raw.candles", "s1"),
        merge_sql(CANDLES, BIGQUERY, "raw.candles", "s1"),
    )
    assert "t.candle_date BETWEEN $min_date AND $max_date" in duck
    assert "t.candle_date BETWEEN @min_date AND @max_date" in bq
    assert "WHEN MATCHED AND (t.open IS DISTINCT FROM s.open" in duck


@pytest.mark.parametrize("bad", ["a b", "x;DROP TABLE y", "1abc", "", "a.b", "naïve", None, 3, "a--"])
def test_identifiers_outside_the_allow_list_are_rejected(bad: object) -> None:
    with pytest.raises(UnsafeIdentifier):
        safe_identifier(bad)


@pytest.mark.parametrize("bad", ["raw.nope", "raw.candles; DROP TABLE raw.candles", "RAW.CANDLES", None])
def test_only_known_tables(bad: object) -> None:
    with pytest.raises(UnsafeIdentifier):
        table_spec(bad)


def test_dead_letter_filters_are_parameters_never_values() -> None:
    sql = dead_letters_sql(
        BIGQUERY,
        ["exchange", "reason_code", "1=1; --"],
        replayed=False,
        since=True,
        limit=True,
        table="ops.dead_letters",
    )
    assert "exchange = @exchange AND reason_code = @reason_code AND replayed_at IS NULL" in sql
    assert "first_seen_at >= @since" in sql and sql.endswith("LIMIT @limit") and "1=1" not in sql
