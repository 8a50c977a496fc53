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
lib/pubsub/inspect.py); this module only turns their answers into findings.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptopipe_dagster.lib.settings import Settings

if TYPE_CHECKING:  # the Pub/Sub client loads on first use, not on import
    from cryptopipe_dagster.lib.pubsub.inspect import PubSubInspector

DEFAULT_TIMEOUT_S = 10.0
DBT_DATASETS = ("staging", "intermediate", "marts")  # created by the first `dbt build`
PUBSUB_PROJECT_ENV = "CRYPTOPIPE_PUBSUB_PROJECT"
PUBSUB_EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
# The project the collector and the loader fall back to (defs/streaming/resources.py LOCAL_PROJECT;
# not imported from there: lib/ does not import Dagster definitions).
LOCAL_PUBSUB_PROJECT = "cryptopipe-local"
READ_WRITE = ("bigquery.tables.getData", "bigquery.tables.updateData")
# Table permissions per process: updateData covers MERGE, insert and streaming append.
TABLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "loader": {
        name: READ_WRITE
        for name in (
            "raw.candles",
            "raw.trades",
            "ops.dead_letters",
            "ops.landed_batches",
            "ops.loaded_batches",
        )
    },
    "backfill": {name: READ_WRITE for name in ("raw.candles", "ops.dead_letters", "ops.ingest_checkpoints")},
}
# Pub/Sub permissions per process; subscriptions.consume covers pull, ack and modifyAckDeadline.
TOPIC_PERMISSIONS = {"collector": {"market-data": ("pubsub.topics.publish",)}}
SUBSCRIPTION_PERMISSIONS = {"loader": {"market-data-loader": ("pubsub.subscriptions.consume",)}}


@dataclass(frozen=True)
class Finding:
    """One line of the diagnosis: which check (`bigquery.table`, `pubsub.iam`, ...) and what it found."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


class Problem(Finding):
    """Something that stops a process from working: what, where, expected vs found, what to do."""


class Note(Finding):
    """A fact worth knowing that is not a problem (not created yet, not checkable here)."""


@dataclass
class Diagnosis:
    """Problems, notes, and what was found in order (for the "ok" summary)."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, check: str, message: str) -> None:
        self.problems.append(Problem(check, message))

    def note(self, check: str, message: str) -> None:
        self.notes.append(Note(check, message))

    def summary(self) -> str:
        """'ok: ...' or 'N problem(s)', one line."""
        if self.problems:
            return f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} found"
        return "ok: " + "; ".join(self.checked or ["nothing to check"])


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
        _guarded(diagnosis, "bigquery", lambda: _diagnose_bigquery(settings, diagnosis, timeout_s))
    else:
        _guarded(diagnosis, "duckdb", lambda: _diagnose_duckdb(settings, diagnosis))
    _guarded(diagnosis, "pubsub", lambda: _diagnose_pubsub(settings, environ, diagnosis, timeout_s))
    return diagnosis


def _guarded(diagnosis: Diagnosis, check: str, run: Callable[[], None]) -> None:
    # The doctor reports; it must not crash the CLI or the Dagster definitions that gate on it.
    try:
        run()
    except Exception as error:  # noqa: BLE001 - anything left is a bug, reported as one line
        diagnosis.problem(check, f"the check itself failed ({_one_line(error)}); please report it")


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diagnose_duckdb(settings: Settings, diagnosis: Diagnosis) -> None:
    from cryptopipe_dagster.lib.warehouse import duckdb_layout
    from cryptopipe_dagster.lib.warehouse.tables import LANDING_TABLES, TABLES

    path = settings.duckdb_path
    if not path.exists():
        diagnosis.problem(
            "duckdb",
            f"warehouse file {path} does not exist: the first pipeline run creates it "
            "(cryptopipe demo, cryptopipe backfill), or set CRYPTOPIPE_DUCKDB_PATH to the existing file",
        )
        return
    try:
        found = duckdb_layout.read_columns(path)
    except duckdb_layout.DuckDBUnreadable as error:
        diagnosis.problem(
            "duckdb", f"{error}; stop the process that holds it, or check CRYPTOPIPE_DUCKDB_PATH"
        )
        return
    for spec in TABLES.values():
        if spec.qualified not in found:
            diagnosis.problem(
                "duckdb.table", f"table {spec.qualified} is missing in {path}: any pipeline run creates it"
            )
            continue
        for diff in duckdb_layout.column_differences(spec, found[spec.qualified]):
            diagnosis.problem(
                "duckdb.table",
                f"{spec.qualified} column {diff.column} in {path}: expected {diff.expected}, "
                f"found {diff.found}; the file predates the schema: move it aside and run the backfill again",
            )
    for name in LANDING_TABLES:
        if name not in found:
            diagnosis.note(
                "duckdb.table", f"{name} does not exist yet: the first market_data_sensor tick creates it"
            )
    diagnosis.checked.append(f"DuckDB {path}: {len(TABLES)} tables")


def _diagnose_bigquery(settings: Settings, diagnosis: Diagnosis, timeout_s: float) -> None:
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout

    where = settings.bigquery_endpoint or "BigQuery"
    try:
        with layout.open_client(settings) as client:
            present = _check_bigquery_tables(settings, client, diagnosis, timeout_s)
            _check_dbt_datasets(settings, client, diagnosis, timeout_s)
            _check_table_permissions(settings, client, present, diagnosis, timeout_s)
    except layout.BigQueryUnavailable as error:
        hint = (
            "check CRYPTOPIPE_BIGQUERY_ENDPOINT and that the emulator runs"
            if settings.bigquery_endpoint
            else "check the network and the credentials (Application Default Credentials)"
        )
        diagnosis.problem(
            "bigquery", f"cannot ask {where} for project {settings.gcp_project}: {error}; {hint}"
        )


def _check_bigquery_tables(
    settings: Settings, client, diagnosis: Diagnosis, timeout_s: float
) -> dict[str, str]:
    """Datasets and tables of the specs; returns {"raw.candles": table id} of the tables that exist."""
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout
    from cryptopipe_dagster.lib.warehouse.bigquery_client import dataset_name
    from cryptopipe_dagster.lib.warehouse.tables import LANDING_TABLES, TABLES

    by_dataset = defaultdict(list)
    for spec in (*TABLES.values(), *LANDING_TABLES.values()):
        by_dataset[spec.dataset].append(spec)
    emulator, present, unknown_filter = bool(settings.bigquery_endpoint), {}, []
    for logical, specs in by_dataset.items():
        dataset_id = f"{settings.gcp_project}.{dataset_name(settings.bq_dataset_prefix, logical)}"
        dataset = layout.read_dataset(client, dataset_id, timeout_s)
        if dataset is None:
            names = ", ".join(spec.qualified for spec in specs)
            diagnosis.problem(
                "bigquery.dataset",
                f"dataset {dataset_id} does not exist (it holds {names}): "
                f"create it in {settings.bq_location} with its tables (terraform apply)",
            )
            continue
        if dataset.location and dataset.location.lower() != settings.bq_location.lower():
            diagnosis.problem(
                "bigquery.dataset",
                f"dataset {dataset_id} is in {dataset.location}, expected {settings.bq_location} "
                "(CRYPTOPIPE_BQ_LOCATION): set the variable to the dataset's location",
            )
        for spec in specs:
            table_id = f"{dataset_id}.{spec.name}"
            table = layout.read_table(client, table_id, timeout_s)
            if table is None:
                diagnosis.problem(
                    "bigquery.table",
                    f"table {table_id} ({spec.qualified}) does not exist: create it (terraform apply)",
                )
                continue
            present[spec.qualified] = table_id
            for diff in layout.layout_differences(spec, table, emulator):
                diagnosis.problem(
                    "bigquery.table",
                    f"{table_id} {diff.aspect}: expected {diff.expected}, found {diff.found}; {diff.remedy}",
                )
            if emulator and spec.require_partition_filter and table.require_partition_filter is None:
                unknown_filter.append(spec.qualified)
    if unknown_filter:
        # bqemulator 1.4.0 does not report require_partition_filter back; real BigQuery does.
        diagnosis.note(
            "bigquery.table",
            f"require_partition_filter of {', '.join(unknown_filter)} not checkable: "
            "the emulator does not report it",
        )
    diagnosis.checked.append(
        f"BigQuery {settings.gcp_project}: {len(present)} tables in {len(by_dataset)} datasets"
    )
    return present


def _check_dbt_datasets(settings: Settings, client, diagnosis: Diagnosis, timeout_s: float) -> None:
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout
    from cryptopipe_dagster.lib.warehouse.bigquery_client import dataset_name

    for logical in DBT_DATASETS:
        dataset_id = f"{settings.gcp_project}.{dataset_name(settings.bq_dataset_prefix, logical)}"
        if layout.read_dataset(client, dataset_id, timeout_s) is None:
            diagnosis.note(
                "bigquery.dataset",
                f"dbt dataset {dataset_id} does not exist yet: the first dbt build creates it",
            )


def _check_table_permissions(
    settings: Settings, client, present: dict[str, str], diagnosis: Diagnosis, timeout_s: float
) -> None:
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout

    for qualified, table_id in present.items():
        needed = _needed_by(TABLE_PERMISSIONS, qualified)
        if not needed:
            continue
        try:
            missing = layout.missing_table_permissions(client, table_id, sorted(needed), timeout_s)
        except layout.PermissionsNotCheckable as error:
            _not_checkable(diagnosis, "bigquery.iam", bool(settings.bigquery_endpoint), table_id, error)
            return
        if missing:
            diagnosis.problem(
                "bigquery.iam",
                f"the current credentials lack {_who_needs(needed, missing)} on {table_id}: "
                "grant roles/bigquery.dataEditor on its dataset to those processes' service account",
            )
    if present:
        diagnosis.checked.append("table permissions")


def _needed_by(needs: dict[str, dict[str, tuple[str, ...]]], resource: str) -> dict[str, list[str]]:
    """{permission: [processes that need it on `resource`]}."""
    needed: dict[str, list[str]] = defaultdict(list)
    for process, resources in needs.items():
        for permission in resources.get(resource, ()):
            needed[permission].append(process)
    return needed


def _who_needs(needed: dict[str, list[str]], missing: list[str]) -> str:
    return ", ".join(f"{permission} (needed by {', '.join(needed[permission])})" for permission in missing)


def _not_checkable(diagnosis: Diagnosis, check: str, emulator: bool, resource: str, error: Exception) -> None:
    # Emulators do not implement testIamPermissions (they have no IAM); real services do, so there a
    # refusal means the check could not be made, which is a problem rather than a pass.
    if emulator:
        diagnosis.note(check, f"permissions not checkable against an emulator ({error})")
    else:
        diagnosis.problem(check, f"testIamPermissions on {resource} failed: {error}; check the credentials")


def _diagnose_pubsub(
    settings: Settings, environ: Mapping[str, str], diagnosis: Diagnosis, timeout_s: float
) -> None:
    emulator_host = environ.get(PUBSUB_EMULATOR_ENV, "").strip()
    project = environ.get(PUBSUB_PROJECT_ENV, "").strip()
    if not project and settings.env == "prod":
        diagnosis.problem(
            "pubsub",
            f"{PUBSUB_PROJECT_ENV} is not set: the collector and the loader would use project "
            f"{LOCAL_PUBSUB_PROJECT!r}; set it to the production Pub/Sub project",
        )
        return
    if not project and not emulator_host:
        diagnosis.note(
            "pubsub",
            f"not checked: neither {PUBSUB_EMULATOR_ENV} nor {PUBSUB_PROJECT_ENV} is set (no live path here)",
        )
        return
    from cryptopipe_dagster.lib.pubsub.inspect import PubSubInspector, PubSubUnavailable

    pubsub = PubSubInspector(project or LOCAL_PUBSUB_PROJECT, emulator_host, timeout_s)
    try:
        with pubsub:
            existing = _check_pubsub_topology(pubsub, diagnosis)
            _check_pubsub_permissions(pubsub, existing, diagnosis)
    except PubSubUnavailable as error:
        where = f"the Pub/Sub emulator at {emulator_host}" if emulator_host else "Pub/Sub"
        hint = (
            f"check {PUBSUB_EMULATOR_ENV} and that the emulator runs"
            if emulator_host
            else "check the credentials"
        )
        diagnosis.problem("pubsub", f"cannot ask {where} for project {pubsub.project}: {error}; {hint}")


def _check_pubsub_topology(pubsub: PubSubInspector, diagnosis: Diagnosis) -> set[str]:
    """Topics and subscriptions of MARKET_DATA_TOPOLOGY; returns the paths of those that exist."""
    from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPOLOGY as topology

    hint = "create it (terraform apply; locally `cryptopipe live` creates the topology)"
    existing = set()
    for spec in topology.topics:
        path = pubsub.path("topics", spec.topic_id)
        if pubsub.get_topic(spec.topic_id) is None:
            diagnosis.problem("pubsub.topic", f"topic {path} does not exist: {hint}")
        else:
            existing.add(path)
    for spec in topology.subscriptions:
        path, topic = pubsub.path("subscriptions", spec.subscription_id), pubsub.path("topics", spec.topic_id)
        found = pubsub.get_subscription(spec.subscription_id)
        if found is None:
            diagnosis.problem(
                "pubsub.subscription", f"subscription {path} (on topic {topic}) does not exist: {hint}"
            )
            continue
        existing.add(path)
        if found.topic != topic:
            diagnosis.problem(
                "pubsub.subscription",
                f"{path} reads topic {found.topic or 'none'}, expected {topic}: "
                "a subscription cannot change topic; delete and recreate it",
            )
        dead_letter = spec.dead_letter
        expected = (
            (pubsub.path("topics", dead_letter.topic_id), dead_letter.max_delivery_attempts)
            if dead_letter
            else ("", 0)
        )
        policy = found.dead_letter_policy
        have = (policy.dead_letter_topic, policy.max_delivery_attempts if policy.dead_letter_topic else 0)
        if have != expected:
            diagnosis.problem(
                "pubsub.subscription",
                f"{path} dead-letter policy: expected {_dead_letter_text(expected)}, "
                f"found {_dead_letter_text(have)}; set it (terraform apply, "
                "or gcloud pubsub subscriptions update --dead-letter-topic ...)",
            )
    counts = f"{len(topology.topics)} topics, {len(topology.subscriptions)} subscriptions"
    diagnosis.checked.append(f"Pub/Sub {pubsub.project}: {counts}")
    return existing


def _dead_letter_text(policy: tuple[str, int]) -> str:
    topic, attempts = policy
    return f"{topic} after {attempts} attempts" if topic else "none"


def _check_pubsub_permissions(pubsub: PubSubInspector, existing: set[str], diagnosis: Diagnosis) -> None:
    from cryptopipe_dagster.lib.pubsub.inspect import PubSubNotCheckable

    checks = [
        ("topics", name, _needed_by(TOPIC_PERMISSIONS, name))
        for name in sorted({name for names in TOPIC_PERMISSIONS.values() for name in names})
    ] + [
        ("subscriptions", name, _needed_by(SUBSCRIPTION_PERMISSIONS, name))
        for name in sorted({name for names in SUBSCRIPTION_PERMISSIONS.values() for name in names})
    ]
    for kind, name, needed in checks:
        resource = pubsub.path(kind, name)
        if resource not in existing:  # reported as missing already
            continue
        try:
            missing = pubsub.missing_permissions(kind, name, sorted(needed))
        except PubSubNotCheckable as error:
            _not_checkable(diagnosis, "pubsub.iam", pubsub.emulator, resource, error)
            return
        if missing:
            diagnosis.problem(
                "pubsub.iam",
                f"the current credentials lack {_who_needs(needed, missing)} on {resource}: grant "
                "roles/pubsub.publisher (topic) or roles/pubsub.subscriber (subscription) to that process",
            )
