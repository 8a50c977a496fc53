"""`cryptopipe gaps list|repair` on each warehouse (a DuckDB file, the BigQuery emulator), repairing
against the simulator: the recorded Bitstamp outage ends confirmed; output fits 80 columns."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cryptopipe_dagster.cli import app
from cryptopipe_dagster.lib.exchanges.clients import create_exchange
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillTarget, backfill_candles, exchange_now
from cryptopipe_dagster.lib.historical.gap_ledger import GapPolicy
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import Warehouse, open_warehouse

runner = CliRunner()
T0 = pd.Timestamp("2026-12-01 12:00", tz="UTC")
H = pd.Timedelta(hours=1)


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path, monkeypatch, simulator) -> Warehouse:
    """A warehouse whose ledger holds the Bitstamp BTC/USD outage (open, one attempt made)."""
    monkeypatch.setenv("CRYPTOPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(tmp_path / "home" / "warehouse.duckdb"))
    monkeypatch.setenv("CRYPTOPIPE_EXCHANGE_API_URL", simulator.base_url)
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS", "2")
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_AFTER_S", "3600")
    if request.param == "bigquery":
        request.getfixturevalue("bigquery_env")  # the CLI reads the same variables
    store = open_warehouse(load_settings())
    client = create_exchange("bitstamp", exchange_api_url=simulator.base_url, rate_limit=False)
    target = BackfillTarget(
        "bitstamp",
        "BTC/USD",
        "1d",
        pd.Timestamp("2019-03-10", tz="UTC"),
        pd.Timestamp("2019-04-10", tz="UTC"),
    )
    backfill_candles(
        client, store, target, now=exchange_now(client), gap_policy=GapPolicy.from_env(), ledger_now=T0
    )
    return store


def fits(output: str) -> bool:
    return all(len(line) <= 80 for line in output.splitlines())


def test_list_then_repair_until_confirmed(warehouse: Warehouse) -> None:
    listed = runner.invoke(app, ["gaps", "list", "--state", "open"], env={"COLUMNS": "80"})
    assert listed.exit_code == 0, listed.output
    assert (
        "bitstamp" in listed.output
        and "BTC/USD 1d" in listed.output
        and "2019-03-20 00:00" in listed.output
        and "12d" in listed.output
    )
    assert "1x no data" in listed.output and fits(listed.output)

    early = runner.invoke(app, ["gaps", "repair", "--now", (T0 + 5 * pd.Timedelta(minutes=1)).isoformat()])
    assert early.exit_code == 0 and "attempted=0" in early.output  # backoff: not due yet
    second = runner.invoke(app, ["gaps", "repair", "--now", (T0 + 2 * H).isoformat()], env={"COLUMNS": "80"})
    assert second.exit_code == 0, second.output
    assert "confirmed=1" in second.output and fits(second.output)

    confirmed = runner.invoke(
        app, ["gaps", "list", "--state", "confirmed_exchange_gap", "--exchange", "bitstamp"]
    )
    assert confirmed.exit_code == 0 and "confirmed" in confirmed.output and "2x no data" in confirmed.output
    assert "confirmed_exchange_gap=1" in confirmed.output
    gap = warehouse.list_gaps(exchange="bitstamp").iloc[0]
    assert gap.state == "confirmed_exchange_gap" and gap.attempts == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gaps", "list", "--state", "closed"], "invalid state 'closed'"),
        (["gaps", "list", "--limit", "0"], "invalid limit 0"),
        (["gaps", "repair", "--now", "yesterday-ish"], "invalid --now 'yesterday-ish'"),
    ],
)
def test_bad_options_name_the_value(warehouse: Warehouse, args, message) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output
