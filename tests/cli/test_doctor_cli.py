"""`cryptopipe doctor`: exit 0 with an "ok" line, or exit 2 with one line per problem; no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from cryptopipe_dagster.cli import app
from cryptopipe_dagster.lib.pubsub.emulator import free_loopback_port
from cryptopipe_dagster.lib.warehouse.tables import LANDING_TABLES, TABLES
from tests.lib.test_doctor import dataset_id, provision_bigquery

runner = CliRunner()


def test_a_provisioned_environment_exits_0_with_an_ok_summary(bigquery_env, market_data_project, monkeypatch):
    monkeypatch.setenv("CRYPTOPIPE_PUBSUB_PROJECT", market_data_project)
    provision_bigquery(bigquery_env)

    result = runner.invoke(app, ["doctor", "--timeout", "10"])

    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last == (
        # no "table permissions" part: the emulator cannot say (a note says so)
        f"ok: BigQuery cryptopipe-test: {len(TABLES) + len(LANDING_TABLES)} tables in 2 datasets; "
        f"Pub/Sub {market_data_project}: 2 topics, 2 subscriptions"
    )
    assert "problem:" not in result.output
    assert "note: bigquery.iam: permissions not checkable against an emulator" in result.output


def test_a_missing_dataset_exits_2_with_one_problem_line(bigquery_env, market_data_project, monkeypatch):
    monkeypatch.setenv("CRYPTOPIPE_PUBSUB_PROJECT", market_data_project)
    provision_bigquery(bigquery_env, skip_dataset="raw")

    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 2, result.output
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert problems == [
        f"problem: bigquery.dataset: dataset {dataset_id(bigquery_env, 'raw')} does not exist "
        "(it holds raw.candles, raw.trades): create it in US with its tables (terraform apply)"
    ]
    assert result.output.strip().splitlines()[-1] == "1 problem found"


def test_a_bad_setting_is_one_error_line(cryptopipe_home, monkeypatch):
    monkeypatch.setenv("CRYPTOPIPE_WAREHOUSE", "oracle")

    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 2
    assert (
        result.output.strip() == "error: CRYPTOPIPE_WAREHOUSE='oracle' is not one of ('duckdb', 'bigquery')"
    )


def test_unreachable_services_exit_2_without_a_traceback(cryptopipe_home):
    closed = free_loopback_port()  # nothing listens there
    env = {
        **os.environ,
        "CRYPTOPIPE_WAREHOUSE": "bigquery",
        "CRYPTOPIPE_GCP_PROJECT": "cryptopipe-test",
        "CRYPTOPIPE_BIGQUERY_ENDPOINT": f"http://127.0.0.1:{closed}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{closed}",
        "COLUMNS": "400",  # rich wraps at the terminal width otherwise
    }

    result = subprocess.run(
        [sys.executable, "-m", "cryptopipe_dagster.cli", "doctor", "--timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert [line.split(":")[1].strip() for line in problems] == ["bigquery", "pubsub"]


def test_a_local_duckdb_warehouse_is_checked_by_default(cryptopipe_home, monkeypatch):
    for name in (
        "CRYPTOPIPE_WAREHOUSE",
        "PUBSUB_EMULATOR_HOST",
        "CRYPTOPIPE_PUBSUB_PROJECT",
        "CRYPTOPIPE_ENV",
    ):
        monkeypatch.delenv(name, raising=False)

    result = runner.invoke(app, ["doctor"])

    assert result.exit_code == 2
    assert "problem: duckdb: warehouse file " in result.output
    assert not (cryptopipe_home / "warehouse.duckdb").exists()
