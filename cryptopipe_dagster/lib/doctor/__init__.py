"""`cryptopipe doctor` as a library: check a configured environment without writing anything.

`diagnose(settings)` reads the warehouse (the DuckDB file, or the BigQuery datasets and tables with
their columns, partitioning and clustering), the Pub/Sub topics and subscriptions, and the
permissions the current credentials hold, and returns a `Diagnosis`: problems (each one line: what,
where, expected vs found, what to do) and notes (facts that are not problems, such as what cannot
be checked against an emulator). It never raises for a bad environment: an unreachable API is one
problem. Cheap to import (the clients load on first use); every API call has a timeout.

Permissions are tested with testIamPermissions, which answers for the credentials doctor runs
with: run it as each process's identity (e.g. with service account impersonation) to check that one.
Not checkable this way, and so not checked: bigquery.jobs.create (project-level, so there is no
table to test it on; every query and MERGE needs it: roles/bigquery.jobUser), and the Pub/Sub
service agent's rights to publish dead letters and to ack on the source subscription (Terraform
grants those; testIamPermissions tests the caller, not the agent).

The reads themselves live behind the seams (lib/warehouse/bigquery_layout.py,
lib/pubsub/inspect.py); this package only turns their answers into findings
(findings.py, warehouse.py, pubsub.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptopipe_dagster.lib.doctor.findings import Diagnosis, Note, Problem, guarded
from cryptopipe_dagster.lib.doctor.pubsub import (
    PUBSUB_EMULATOR_ENV,
    SUBSCRIPTION_PERMISSIONS,
    TOPIC_PERMISSIONS,
    diagnose_pubsub,
)
from cryptopipe_dagster.lib.doctor.warehouse import TABLE_PERMISSIONS, diagnose_bigquery, diagnose_duckdb
from cryptopipe_dagster.lib.settings import Settings

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SUBSCRIPTION_PERMISSIONS",
    "TABLE_PERMISSIONS",
    "TOPIC_PERMISSIONS",
    "Diagnosis",
    "Note",
    "Problem",
    "diagnose",
]

DEFAULT_TIMEOUT_S = 10.0


def diagnose(
    settings: Settings, *, environ: Mapping[str, str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Diagnosis:
    """Check the warehouse, Pub/Sub and permissions of `settings` (and `environ`, default
    os.environ, for the Pub/Sub variables); writes nothing, raises nothing for a bad environment."""
    environ = os.environ if environ is None else environ
    diagnosis = Diagnosis()
    if settings.env == "prod":
        for name in ("CRYPTOPIPE_BIGQUERY_ENDPOINT", PUBSUB_EMULATOR_ENV):
            if environ.get(name, "").strip():
                diagnosis.problem(
                    "config", f"{name} is set with CRYPTOPIPE_ENV=prod: it points at an emulator; unset it"
                )
    if settings.warehouse == "bigquery":
        guarded(diagnosis, "bigquery", lambda: diagnose_bigquery(settings, diagnosis, timeout_s))
    else:
        guarded(diagnosis, "duckdb", lambda: diagnose_duckdb(settings, diagnosis))
    guarded(diagnosis, "pubsub", lambda: diagnose_pubsub(settings, environ, diagnosis, timeout_s))
    return diagnosis
