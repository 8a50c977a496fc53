"""`diagnose`: against the BigQuery and Pub/Sub emulators and real DuckDB files, no mocks."""

from __future__ import annotations

import pytest
from google.cloud import bigquery, pubsub_v1

from cryptopipe_dagster.lib.doctor import Diagnosis, diagnose
from cryptopipe_dagster.lib.pubsub.emulator import free_loopback_port
from cryptopipe_dagster.lib.pubsub.topology import LOADER_SUBSCRIPTION, MARKET_DATA_TOPIC
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse.bigquery_client import bigquery_client, dataset_name
from cryptopipe_dagster.lib.warehouse.bigquery_tables import bigquery_table
from cryptopipe_dagster.lib.warehouse.duckdb import DuckDBWarehouse
from cryptopipe_dagster.lib.warehouse.tables import CANDLES, LANDING_TABLES, TABLES, TableSpec


def dataset_id(settings: Settings, logical: str) -> str:
    return f"{settings.gcp_project}.{dataset_name(settings.bq_dataset_prefix, logical)}"


def provision_bigquery(
    settings: Settings, skip_dataset: str | None = None, replace: dict[str, bigquery.Table] | None = None
) -> None:
    """Datasets and every table as production has them (bigquery_table), but without `skip_dataset`
    and with the tables of `replace` ({"raw.candles": table}) created as given instead."""
    specs: list[TableSpec] = [*TABLES.values(), *LANDING_TABLES.values()]
    with bigquery_client(settings) as client:
        for logical in sorted({spec.dataset for spec in specs} - {skip_dataset}):
            client.create_dataset(bigquery.Dataset(dataset_id(settings, logical)))
        for spec in specs:
            if spec.dataset == skip_dataset:
                continue
            table_id = f"{dataset_id(settings, spec.dataset)}.{spec.name}"
            client.create_table((replace or {}).get(spec.qualified) or bigquery_table(spec, table_id))


def bigquery_inventory(settings: Settings) -> dict[str, list[str]]:
    """Every dataset of this test's prefix with its tables."""
    with bigquery_client(settings) as client:
        datasets = [
            d.dataset_id
            for d in client.list_datasets()
            if d.dataset_id.startswith(settings.bq_dataset_prefix)
        ]
        return {name: sorted(t.table_id for t in client.list_tables(name)) for name in sorted(datasets)}


def pubsub_inventory(project: str) -> tuple[list[str], list[str]]:
    with pubsub_v1.PublisherClient() as publisher, pubsub_v1.SubscriberClient() as subscriber:
        topics = sorted(t.name for t in publisher.list_topics(request={"project": f"projects/{project}"}))
        subs = sorted(
            s.name for s in subscriber.list_subscriptions(request={"project": f"projects/{project}"})
        )
    return topics, subs


@pytest.fixture
def environment(bigquery_env: Settings, market_data_project: str, monkeypatch) -> Settings:
    """BigQuery on the emulator (nothing created yet) and the Pub/Sub topology on its emulator."""
    monkeypatch.setenv("CRYPTOPIPE_PUBSUB_PROJECT", market_data_project)
    return bigquery_env


def lines(diagnosis: Diagnosis) -> list[str]:
    return [str(problem) for problem in diagnosis.problems]


def test_a_fully_provisioned_environment_has_no_problem(environment):
    provision_bigquery(environment)

    diagnosis = diagnose(environment, timeout_s=10)

    assert lines(diagnosis) == []
    assert diagnosis.ok
    tables = len(TABLES) + len(LANDING_TABLES)  # every spec'd table, whoever adds one
    assert diagnosis.summary().startswith(f"ok: BigQuery cryptopipe-test: {tables} tables in 2 datasets")
    notes = " | ".join(str(note) for note in diagnosis.notes)
    # What the emulators cannot tell is said, not passed over in silence.
    assert "bigquery.iam: permissions not checkable against an emulator" in notes
    assert "pubsub.iam: permissions not checkable against an emulator" in notes
    assert "require_partition_filter of raw.candles" in notes
    assert f"dbt dataset {dataset_id(environment, 'marts')} does not exist yet" in notes


def test_a_missing_dataset_is_one_line_naming_it(environment):
    provision_bigquery(environment, skip_dataset="ops")

    diagnosis = diagnose(environment, timeout_s=10)

    assert len(diagnosis.problems) == 1, lines(diagnosis)
    line = lines(diagnosis)[0]
    assert line.startswith(f"bigquery.dataset: dataset {dataset_id(environment, 'ops')} does not exist")
    assert "ops.landed_batches" in line and "create it in US" in line


@pytest.mark.parametrize(
    ("partitioning", "found"),
    [
        (bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field="ts"), "DAY on ts"),
        (None, "not partitioned"),
    ],
    ids=["on-another-column", "not-partitioned"],
)
def test_a_table_partitioned_wrongly_names_table_expected_and_found(environment, partitioning, found):
    table_id = f"{dataset_id(environment, 'raw')}.candles"
    wrong = bigquery_table(CANDLES, table_id)
    wrong.time_partitioning = partitioning
    provision_bigquery(environment, replace={"raw.candles": wrong})

    diagnosis = diagnose(environment, timeout_s=10)

    assert lines(diagnosis) == [
        f"bigquery.table: {table_id} partitioning: expected DAY on candle_date, found {found}; "
        "BigQuery cannot change partitioning in place: recreate the table (copy its rows first)"
    ]


def test_wrong_columns_and_clustering_are_one_line_each(environment):
    table_id = f"{dataset_id(environment, 'raw')}.candles"
    wrong = bigquery_table(CANDLES, table_id)
    wrong.schema = [field for field in wrong.schema if field.name != "volume"]
    wrong.clustering_fields = ["symbol"]
    provision_bigquery(environment, replace={"raw.candles": wrong})

    problems = lines(diagnose(environment, timeout_s=10))

    assert len(problems) == 2, problems
    assert problems[0].startswith(
        f"bigquery.table: {table_id} columns: expected volume FLOAT64 REQUIRED, found absent"
    )
    assert problems[1].startswith(
        f"bigquery.table: {table_id} clustering: expected exchange, symbol, timeframe"
    )


def test_a_missing_subscription_is_one_line(environment, market_data_project, subscriber):
    provision_bigquery(environment)
    path = f"projects/{market_data_project}/subscriptions/{LOADER_SUBSCRIPTION}"
    subscriber.delete_subscription(request={"subscription": path})

    problems = lines(diagnose(environment, timeout_s=10))

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"pubsub.subscription: subscription {path} (on topic ")
    assert "does not exist" in problems[0]


def test_a_subscription_without_its_dead_letter_policy_is_a_problem(
    environment, market_data_project, subscriber
):
    provision_bigquery(environment)
    path = f"projects/{market_data_project}/subscriptions/{LOADER_SUBSCRIPTION}"
    subscriber.delete_subscription(request={"subscription": path})
    topic = f"projects/{market_data_project}/topics/{MARKET_DATA_TOPIC}"
    subscriber.create_subscription(request={"name": path, "topic": topic})

    problems = lines(diagnose(environment, timeout_s=10))

    assert len(problems) == 1, problems
    assert f"{path} dead-letter policy: expected projects/{market_data_project}/topics/" in problems[0]
    assert "found none" in problems[0]


def test_doctor_writes_nothing(environment, market_data_project, subscriber):
    provision_bigquery(environment, skip_dataset="raw")  # something to be tempted to create
    subscriber.delete_subscription(
        request={"subscription": f"projects/{market_data_project}/subscriptions/{LOADER_SUBSCRIPTION}"}
    )
    before = bigquery_inventory(environment), pubsub_inventory(market_data_project)

    assert not diagnose(environment, timeout_s=10).ok

    assert (bigquery_inventory(environment), pubsub_inventory(market_data_project)) == before
    assert dataset_name(environment.bq_dataset_prefix, "raw") not in before[0]


def test_unreachable_services_are_one_line_each(cryptopipe_home, monkeypatch):
    closed = free_loopback_port()  # nothing listens there
    monkeypatch.setenv("CRYPTOPIPE_WAREHOUSE", "bigquery")
    monkeypatch.setenv("CRYPTOPIPE_GCP_PROJECT", "cryptopipe-test")
    monkeypatch.setenv("CRYPTOPIPE_BIGQUERY_ENDPOINT", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{closed}")
    monkeypatch.delenv("CRYPTOPIPE_PUBSUB_PROJECT", raising=False)

    problems = lines(diagnose(load_settings(), timeout_s=2))

    assert len(problems) == 2, problems
    assert problems[0].startswith(
        f"bigquery: cannot ask http://127.0.0.1:{closed} for project cryptopipe-test"
    )
    assert problems[1].startswith(f"pubsub: cannot ask the Pub/Sub emulator at 127.0.0.1:{closed}")
    assert all("\n" not in line for line in problems)


@pytest.fixture
def duckdb_env(cryptopipe_home, monkeypatch) -> Settings:
    """The local default: DuckDB warehouse, no Pub/Sub configured."""
    for name in (
        "CRYPTOPIPE_WAREHOUSE",
        "PUBSUB_EMULATOR_HOST",
        "CRYPTOPIPE_PUBSUB_PROJECT",
        "CRYPTOPIPE_ENV",
    ):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


def test_a_missing_duckdb_file_is_a_problem_and_is_not_created(duckdb_env):
    diagnosis = diagnose(duckdb_env)

    assert lines(diagnosis) == [
        f"duckdb: warehouse file {duckdb_env.duckdb_path} does not exist: the first pipeline run creates it "
        "(cryptopipe demo, cryptopipe backfill), or set CRYPTOPIPE_DUCKDB_PATH to the existing file"
    ]
    assert not duckdb_env.duckdb_path.exists()
    assert not duckdb_env.duckdb_path.parent.exists()


def test_a_duckdb_file_with_the_schema_is_ok(duckdb_env):
    DuckDBWarehouse(duckdb_env.duckdb_path).ensure_schema()
    before = duckdb_env.duckdb_path.read_bytes()

    diagnosis = diagnose(duckdb_env)

    assert diagnosis.ok, lines(diagnosis)
    assert diagnosis.summary() == f"ok: DuckDB {duckdb_env.duckdb_path}: {len(TABLES)} tables"
    assert any(str(note).startswith("pubsub: not checked") for note in diagnosis.notes)
    assert duckdb_env.duckdb_path.read_bytes() == before


def test_a_duckdb_table_with_a_missing_column_is_a_problem(duckdb_env):
    import duckdb

    DuckDBWarehouse(duckdb_env.duckdb_path).ensure_schema()
    with duckdb.connect(str(duckdb_env.duckdb_path)) as connection:
        connection.execute("ALTER TABLE raw.trades DROP COLUMN side")

    problems = lines(diagnose(duckdb_env))

    assert len(problems) == 1, problems
    assert problems[0].startswith("duckdb.table: raw.trades column side in ")
    assert "expected VARCHAR NOT NULL, found absent" in problems[0]


def test_pubsub_without_credentials_is_one_problem_naming_the_project(duckdb_env, monkeypatch, tmp_path):
    # No emulator: the real client is built, and finds no credentials before any network call.
    absent = tmp_path / "absent.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(absent))
    monkeypatch.setenv("CRYPTOPIPE_PUBSUB_PROJECT", "some-project")

    problems = [line for line in lines(diagnose(duckdb_env, timeout_s=2)) if line.startswith("pubsub")]

    assert problems == [
        f"pubsub: cannot ask Pub/Sub for project some-project: File {absent} was not found.; "
        "check the credentials"
    ]


def test_the_permission_lists_name_real_tables_topics_and_subscriptions():
    from cryptopipe_dagster.lib.doctor import SUBSCRIPTION_PERMISSIONS, TABLE_PERMISSIONS, TOPIC_PERMISSIONS
    from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPOLOGY

    tables = {name for needs in TABLE_PERMISSIONS.values() for name in needs}
    topics = {name for needs in TOPIC_PERMISSIONS.values() for name in needs}
    subscriptions = {name for needs in SUBSCRIPTION_PERMISSIONS.values() for name in needs}
    assert tables <= {*TABLES, *LANDING_TABLES}
    assert topics <= {topic.topic_id for topic in MARKET_DATA_TOPOLOGY.topics}
    assert subscriptions <= {sub.subscription_id for sub in MARKET_DATA_TOPOLOGY.subscriptions}
