"""Read-only introspection of the BigQuery warehouse for `cryptopipe doctor`: datasets, table layouts
(columns, partitioning, clustering) and the caller's table permissions, compared with the specs.

Every call is a read (get / testIamPermissions) bounded by `timeout_s`, retries included. Failures
that mean "cannot ask" (unreachable endpoint, no credentials, an API error other than 404) raise
`BigQueryUnavailable` with one line; a 404 is an answer (None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import bigquery

from cryptopipe_dagster.lib.errors import CryptopipeError
from cryptopipe_dagster.lib.settings import Settings
from cryptopipe_dagster.lib.warehouse.bigquery_client import bigquery_client
from cryptopipe_dagster.lib.warehouse.bigquery_tables import expected_layout
from cryptopipe_dagster.lib.warehouse.tables import TableSpec

# The API still answers with the legacy type names; the specs use the standard SQL ones.
_STANDARD_TYPES = {"FLOAT": "FLOAT64", "INTEGER": "INT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
_CANNOT_ASK = (gexc.GoogleAPIError, requests.exceptions.RequestException, auth_exceptions.GoogleAuthError)


class BigQueryUnavailable(CryptopipeError):
    """BigQuery could not be asked at all (unreachable, no credentials, refused); one line."""


class PermissionsNotCheckable(CryptopipeError):
    """The endpoint does not implement tables.testIamPermissions (the emulator answers 405/501)."""


@dataclass(frozen=True)
class LayoutDifference:
    """One way a live table differs from its spec: what (`aspect`), expected, found, what to do."""

    aspect: str
    expected: str
    found: str
    remedy: str


def one_line(error: BaseException, limit: int = 200) -> str:
    """The gist of an error in one line: API and HTTP errors can carry whole bodies and URLs."""
    if isinstance(error, gexc.RetryError) and error.cause is not None:
        error = error.cause  # "Timeout of Ns exceeded" says less than what kept failing
    text = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, requests.exceptions.ConnectionError):
        reason = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
        text = reason.group(0) if reason else "no connection"
    text = f"{type(error).__name__}: {text}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_client(settings: Settings) -> bigquery.Client:
    """`bigquery_client(settings)`, with missing credentials as BigQueryUnavailable."""
    try:
        return bigquery_client(settings)
    except (auth_exceptions.GoogleAuthError, OSError, ValueError) as error:
        raise BigQueryUnavailable(f"cannot create a BigQuery client: {one_line(error)}") from error


def _retry(timeout_s: float) -> Retry:
    # Transient errors are retried, but never past the doctor's budget for one call.
    return bigquery.DEFAULT_RETRY.with_timeout(timeout_s)


def read_dataset(client: bigquery.Client, dataset_id: str, timeout_s: float) -> bigquery.Dataset | None:
    """The dataset `project.dataset`, or None when it does not exist."""
    try:
        return client.get_dataset(dataset_id, retry=_retry(timeout_s), timeout=timeout_s)
    except gexc.NotFound:
        return None
    except _CANNOT_ASK as error:
        raise BigQueryUnavailable(f"reading dataset {dataset_id} failed: {one_line(error)}") from error


def read_table(client: bigquery.Client, table_id: str, timeout_s: float) -> bigquery.Table | None:
    """The table `project.dataset.table`, or None when it does not exist."""
    try:
        return client.get_table(table_id, retry=_retry(timeout_s), timeout=timeout_s)
    except gexc.NotFound:
        return None
    except _CANNOT_ASK as error:
        raise BigQueryUnavailable(f"reading table {table_id} failed: {one_line(error)}") from error


def missing_table_permissions(
    client: bigquery.Client, table_id: str, permissions: list[str], timeout_s: float
) -> list[str]:
    """Which of `permissions` the client's credentials lack on the table (tables.testIamPermissions)."""
    try:
        response = client.test_iam_permissions(
            table_id, permissions, retry=_retry(timeout_s), timeout=timeout_s
        )
    except (gexc.MethodNotAllowed, gexc.MethodNotImplemented) as error:
        raise PermissionsNotCheckable(f"{type(error).__name__}: HTTP {error.code}") from error
    except _CANNOT_ASK as error:
        raise BigQueryUnavailable(f"testing permissions on {table_id} failed: {one_line(error)}") from error
    granted = set(response.get("permissions", []))
    return [permission for permission in permissions if permission not in granted]


def found_layout(table: bigquery.Table) -> dict:
    """A live table in the shape of `expected_layout`, plus the partitioning type."""
    return {
        "columns": {
            field.name: (_STANDARD_TYPES.get(field.field_type, field.field_type), field.mode or "NULLABLE")
            for field in table.schema
        },
        "partitioning": _describe_partitioning(table),
        "clustering": list(table.clustering_fields) if table.clustering_fields else None,
        "require_partition_filter": table.require_partition_filter,
    }


def _describe_partitioning(table: bigquery.Table) -> str:
    if table.range_partitioning is not None:
        return f"integer range on {table.range_partitioning.field}"
    partitioning = table.time_partitioning
    if partitioning is None:
        return "not partitioned"
    return f"{partitioning.type_ or 'DAY'} on {partitioning.field or '_PARTITIONTIME (ingestion time)'}"


def _expected_partitioning(spec: TableSpec) -> str:
    field = expected_layout(spec)["partition_field"]
    return f"DAY on {field}" if field else "not partitioned"


def layout_differences(spec: TableSpec, table: bigquery.Table, emulator: bool) -> list[LayoutDifference]:
    """How `table` differs from `spec` (empty when it matches).

    `emulator`: the BigQuery emulator (bqemulator 1.4.0) does not report require_partition_filter
    back (always None), so None is "unknown" there and not a difference. Real BigQuery omits the
    flag when it is off, so None there means off: a difference when the spec requires it."""
    expected, found = expected_layout(spec), found_layout(table)
    differences = _column_differences(expected["columns"], found["columns"])
    if found["partitioning"] != _expected_partitioning(spec):
        differences.append(
            LayoutDifference(
                "partitioning",
                _expected_partitioning(spec),
                found["partitioning"],
                "BigQuery cannot change partitioning in place: recreate the table (copy its rows first)",
            )
        )
    if found["clustering"] != expected["clustering"]:
        differences.append(
            LayoutDifference(
                "clustering",
                ", ".join(expected["clustering"] or []) or "none",
                ", ".join(found["clustering"] or []) or "none",
                "set the clustering fields (bq update --clustering_fields, or terraform apply)",
            )
        )
    wanted, have = bool(expected["require_partition_filter"]), found["require_partition_filter"]
    if not (have is None and emulator) and wanted != bool(have):
        differences.append(
            LayoutDifference(
                "require_partition_filter",
                str(wanted).lower(),
                str(bool(have)).lower(),
                f"bq update --require_partition_filter={str(wanted).lower()} (or terraform apply)",
            )
        )
    return differences


def _column_differences(
    expected: dict[str, tuple[str, str]], found: dict[str, tuple[str, str]]
) -> list[LayoutDifference]:
    differences = []
    missing = [f"{name} {kind} {mode}" for name, (kind, mode) in expected.items() if name not in found]
    if missing:
        differences.append(
            LayoutDifference(
                "columns",
                ", ".join(missing),
                "absent",
                "add the columns (ALTER TABLE ... ADD COLUMN) or recreate",
            )
        )
    for name, (kind, mode) in expected.items():
        if name in found and found[name] != (kind, mode):
            differences.append(
                LayoutDifference(
                    f"column {name}",
                    f"{kind} {mode}",
                    " ".join(found[name]),
                    "recreate the table with the spec's schema (types and modes cannot be narrowed in place)",
                )
            )
    # An extra REQUIRED column breaks every insert that does not name it; an extra NULLABLE one does not.
    extra = [f"{name} {kind} {mode}" for name, (kind, mode) in found.items() if name not in expected]
    if any(entry.endswith(" REQUIRED") for entry in extra):
        differences.append(
            LayoutDifference(
                "columns",
                "no other columns",
                ", ".join(extra),
                "drop the extra columns or make them NULLABLE",
            )
        )
    return differences
