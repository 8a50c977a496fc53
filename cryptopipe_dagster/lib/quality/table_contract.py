"""A stored table's real columns (the warehouse catalog) against its contract (the TableSpec).

The contract is the spec: every column with its logical type, derived from the Pandera models.
A column that is missing, of another type, or not in the contract is a difference. Unexpected
columns count too, even nullable ones: a column nobody declared means something writes to the
table outside the pipeline (or a migration ran half-way), and dbt's `select *` staging would
pass it on.
"""

from __future__ import annotations

import pandas as pd

from cryptopipe_dagster.lib.warehouse import Warehouse
from cryptopipe_dagster.lib.warehouse.tables import table_spec

DIFFERENCE_COLUMNS = ["column", "problem", "expected_type", "found_type"]


def contract_differences(warehouse: Warehouse, logical: str) -> pd.DataFrame:
    """One row per column that breaks the contract of `logical` ("raw.candles"): missing, retyped
    or unexpected; empty when the stored table matches its spec."""
    expected = {column.name: column.type for column in table_spec(logical).columns}
    found = warehouse.table_columns(logical)
    rows = [
        {"column": name, "problem": "missing", "expected_type": kind, "found_type": None}
        for name, kind in expected.items()
        if name not in found
    ]
    rows += [
        {"column": name, "problem": "retyped", "expected_type": kind, "found_type": found[name]}
        for name, kind in expected.items()
        if name in found and found[name] != kind
    ]
    rows += [
        {"column": name, "problem": "unexpected", "expected_type": None, "found_type": kind}
        for name, kind in found.items()
        if name not in expected
    ]
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
