"""The schema contract read from the warehouse catalog, on DuckDB and BigQuery: a stored table that
gains, loses or retypes a column differs from its spec, and only then.

DuckDB's tables are changed with ALTER TABLE. The BigQuery emulator's DDL does not update its
catalog (tables.get and INFORMATION_SCHEMA keep the old schema), so there the table is changed
through the API, as a schema update or a re-creation would leave it in BigQuery.
"""

from __future__ import annotations

import pytest
from google.cloud import bigquery

from cryptopipe_dagster.lib.quality.table_contract import contract_differences
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse
from cryptopipe_dagster.lib.warehouse.bigquery_tables import schema_fields
from cryptopipe_dagster.lib.warehouse.tables import CANDLES, TRADES, table_spec


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        store = open_warehouse(request.getfixturevalue("bigquery_env"), ensure=False)
    store.ensure_schema()
    return store


def alter(warehouse: Warehouse, logical: str, *, add=None, drop=None, retype=None) -> None:
    """Add (name, logical type), drop a column, or retype (name, logical type) of a stored table."""
    if isinstance(warehouse, DuckDBWarehouse):
        types = warehouse.dialect.types
        statement = (
            f"ADD COLUMN {add[0]} {types[add[1]]}"
            if add
            else f"DROP COLUMN {drop}"
            if drop
            else f"ALTER COLUMN {retype[0]} TYPE {types[retype[1]]}"
        )
        with warehouse._transaction() as connection:  # noqa: SLF001
            connection.execute(f"ALTER TABLE {logical} {statement}")
        return
    spec = table_spec(logical)
    client, table_id = warehouse.client, warehouse.table_id(spec)
    fields = schema_fields(spec)
    if add:
        table = client.get_table(table_id)
        table.schema = [*table.schema, bigquery.SchemaField(add[0], warehouse.dialect.types[add[1]])]
        client.update_table(table, ["schema"])
        return
    if drop:
        fields = [f for f in fields if f.name != drop]
    if retype:
        kind = warehouse.dialect.types[retype[1]]
        fields = [
            bigquery.SchemaField(f.name, kind, mode=f.mode) if f.name == retype[0] else f for f in fields
        ]
    client.delete_table(table_id)
    client.create_table(bigquery.Table(table_id, schema=fields))


def test_catalog_columns_equal_the_spec_after_ensure_schema(warehouse):
    for spec in (CANDLES, TRADES):
        assert warehouse.table_columns(spec.qualified) == {c.name: c.type for c in spec.columns}
        assert contract_differences(warehouse, spec.qualified).empty


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"add": ("vwap", "float64")}, [("vwap", "unexpected", None, "float64")]),
        ({"drop": "volume"}, [("volume", "missing", "float64", None)]),
        ({"retype": ("close", "string")}, [("close", "retyped", "float64", "string")]),
    ],
)
def test_altered_table_differs_from_its_contract(warehouse, change, expected):
    alter(warehouse, "raw.candles", **change)
    found = contract_differences(warehouse, "raw.candles")
    rows = [tuple(None if v != v else v for v in row) for row in found.itertuples(index=False)]
    assert rows == expected
    assert contract_differences(warehouse, "raw.trades").empty  # only the altered table


def test_missing_table_has_every_column_missing(warehouse):
    if isinstance(warehouse, DuckDBWarehouse):
        with warehouse._transaction() as connection:  # noqa: SLF001
            connection.execute("DROP TABLE raw.trades")
    else:
        warehouse.client.delete_table(warehouse.table_id(TRADES))
    found = contract_differences(warehouse, "raw.trades")
    assert set(found["problem"]) == {"missing"} and len(found) == len(TRADES.columns)
