"""`make chaos`'s bounded subset: one scenario per fault family through the real live path
(simulator, collector, Pub/Sub emulator, market_data_sensor, DuckDB), each against the ledger."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cryptopipe_dagster.chaos.run import run_scenario
from cryptopipe_dagster.chaos.scenarios import BY_NAME
from cryptopipe_dagster.chaos.suite import passed, write_report
from cryptopipe_dagster.cli import app

SUBSET = ("first_start_stall", "ws_disconnect_storm", "rest_429_storm", "rest_truncated_malformed_pages")


@pytest.mark.parametrize("name", SUBSET)
def test_scenario_ends_with_nothing_lost_or_duplicated(
    name, data_dir, pubsub_emulator, pubsub_project, tmp_path
):
    row = run_scenario(
        BY_NAME[name], 7, data_dir, tmp_path / name, pubsub_emulator.host, trades=80, timeout_s=150
    )
    assert not row["timed_out"], row["detail"]
    assert row["expected"] == 3 * 80 == row["loaded"]
    assert (row["lost"], row["duplicated"], row["extra"]) == (0, 0, 0), row["per_exchange"]
    assert row["reconnects"] > 0  # the faults happened
    report = json.loads(write_report([row], tmp_path).read_text())
    assert passed(report) and report[0]["scenario"] == name


def test_a_scenario_that_lost_trades_fails_the_suite() -> None:
    row = {"lost": 1, "duplicated": 0, "extra": 0, "timed_out": False}
    assert not passed([row]) and not passed([{**row, "lost": 0, "timed_out": True}])


def test_an_unknown_scenario_is_one_clear_error() -> None:
    result = CliRunner().invoke(app, ["chaos", "--only", "ws_nonsense"], terminal_width=200)
    assert result.exit_code == 2 and "ws_nonsense" in result.output and "Traceback" not in result.output
