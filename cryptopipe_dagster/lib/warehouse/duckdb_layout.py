"""Read-only introspection of the DuckDB warehouse file for `cryptopipe doctor`.

The file is opened with ``read_only=True`` and only after checking that it exists: DuckDB would
otherwise create an empty database, and the doctor writes nothing. A file another process holds
for writing cannot be opened at all (DuckDB's single-writer lock): that is reported, not waited on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from cryptopipe_dagster.lib.errors import CryptopipeError
from cryptopipe_dagster.lib.warehouse.tables import DUCKDB, TableSpec

# information_schema spells some types out in full; the dialect uses the short names.
_LONG_TYPE_NAMES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}

_COLUMNS_SQL = """
    SELECT table_schema, table_name, column_name, data_type, is_nullable
    FROM information_schema.columns
    WHERE table_catalog = current_database()
    ORDER BY table_schema, table_name, ordinal_position
"""


class DuckDBUnreadable(CryptopipeError):
    """The DuckDB file cannot be opened read-only (missing, locked by a writer, not a database)."""


@dataclass(frozen=True)
class ColumnDifference:
    """A column of a DuckDB table that differs from its spec."""

    column: str
    expected: str
    found: str


def read_columns(path: Path) -> dict[str, dict[str, str]]:
    """Every table of the file as {"schema.table": {column: "TYPE" or "TYPE NOT NULL"}}."""
    if not path.is_file():
        raise DuckDBUnreadable(f"{path} does not exist")
    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            rows = connection.execute(_COLUMNS_SQL).fetchall()
    except duckdb.Error as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise DuckDBUnreadable(f"{path} cannot be opened read-only: {first_line}") from error
    tables: dict[str, dict[str, str]] = {}
    for schema, table, column, data_type, is_nullable in rows:
        kind = _LONG_TYPE_NAMES.get(data_type, data_type)
        tables.setdefault(f"{schema}.{table}", {})[column] = kind + (
            "" if is_nullable == "YES" else " NOT NULL"
        )
    return tables


def expected_columns(spec: TableSpec) -> dict[str, str]:
    """The spec's columns as DuckDB declares them (`create_table_sql` with the DUCKDB dialect)."""
    return {c.name: DUCKDB.types[c.type] + ("" if c.nullable else " NOT NULL") for c in spec.columns}


def column_differences(spec: TableSpec, found: dict[str, str]) -> list[ColumnDifference]:
    """Columns missing or declared differently, and extra NOT NULL columns (they break every insert,
    which names only the spec's columns); extra nullable columns are harmless and not reported."""
    expected = expected_columns(spec)
    differences = [
        ColumnDifference(name, declaration, found.get(name, "absent"))
        for name, declaration in expected.items()
        if found.get(name) != declaration
    ]
    return differences + [
        ColumnDifference(name, "absent (or nullable)", declaration)
        for name, declaration in found.items()
        if name not in expected and declaration.endswith(" NOT NULL")
    ]
