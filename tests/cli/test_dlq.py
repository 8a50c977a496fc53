"""`cryptopipe dlq list|replay` on each warehouse (a DuckDB file, the BigQuery emulator): fixed dead
letters load once, others stay."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cryptopipe_dagster.cli import app
from cryptopipe_dagster.lib.edge.dlq_replay import replay_dead_letters
from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import Warehouse, open_warehouse

runner = CliRunner()
NOW = pd.Timestamp("2024-01-02T00:00:00Z")
TS = int(pd.Timestamp("2024-01-01T00:00:00Z").timestamp() * 1000)
HOUR = 3_600_000
EXCHANGE, SYMBOL, TIMEFRAME = "coinbaseexchange", "BTC/USD", "1h"


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path, monkeypatch) -> Warehouse:
    """A warehouse holding two candle dead letters: ohlc_inconsistent and non_numeric_value."""
    monkeypatch.setenv("CRYPTOPIPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(tmp_path / "home" / "warehouse.duckdb"))
    if request.param == "bigquery":
        request.getfixturevalue("bigquery_env")  # the CLI reads the same variables
    store = open_warehouse(load_settings())
    rows = [
        [TS, 100.0, 90.0, 95.0, 98.0, 1.5],  # high < low
        [TS + HOUR, "abc", 110.0, 90.0, 100.0, 2.0],  # a string value
    ]
    batch = normalize_ohlcv(rows, exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, now=NOW)
    assert batch.valid.empty
    assert sorted(batch.dead_letters["reason_code"]) == ["non_numeric_value", "ohlc_inconsistent"]
    assert store.write_dead_letters(batch.dead_letters) == 2
    return store


def _fix_ohlc_payload(store: Warehouse) -> str:
    """Simulate a corrected record: rewrite the ohlc_inconsistent payload in place to a valid row."""
    (dead_id,) = store.dead_letters(reason_code="ohlc_inconsistent")["dead_letter_id"]
    fixed = json.dumps([TS, 100.0, 105.0, 95.0, 98.0, 1.5])
    p = store.dialect.param
    sql = (
        f"UPDATE {store.table_ref('ops.dead_letters')} SET raw_payload = {p('fixed')} "
        f"WHERE dead_letter_id = {p('id')}"
    )
    assert store._execute_count(sql, {"fixed": fixed, "id": str(dead_id)}) == 1
    return dead_id


def _candles(store: Warehouse) -> pd.DataFrame:
    everything = (pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
    return store.candles_in_window(None, *everything)


def _candle_count(store: Warehouse) -> int:
    return len(_candles(store))


def _snapshot(store: Warehouse) -> tuple:
    letters = store.dead_letters(limit=None).sort_values("dead_letter_id")
    return _candle_count(store), letters[["dead_letter_id", "replayed_at"]].astype(str).values.tolist()


def test_replay_loads_only_the_fixed_record_once(warehouse):
    fixed_id = _fix_ohlc_payload(warehouse)

    stats = replay_dead_letters(warehouse, dataset="candles", now=NOW)
    assert (stats.considered, stats.loaded, stats.still_invalid) == (2, 1, 1)
    assert stats.still_invalid_reasons == {"non_numeric_value": 1}

    candles = _candles(warehouse)
    assert len(candles) == 1
    assert candles[["open", "high", "low", "close"]].iloc[0].tolist() == [100.0, 105.0, 95.0, 98.0]
    assert candles["source"].iloc[0] == "replay"
    letters = warehouse.dead_letters(limit=None)
    assert len(letters) == 2  # the still-invalid one was rewritten under the same id: no duplicate
    replayed = letters.loc[letters["replayed_at"].notna(), "dead_letter_id"].tolist()
    assert replayed == [fixed_id]

    again = replay_dead_letters(warehouse, dataset="candles", now=NOW)
    assert (again.considered, again.loaded, again.still_invalid) == (1, 0, 1)
    assert _candle_count(warehouse) == 1
    assert len(warehouse.dead_letters(limit=None)) == 2


def test_dry_run_changes_nothing(warehouse):
    _fix_ohlc_payload(warehouse)
    before = _snapshot(warehouse)
    result = runner.invoke(app, ["dlq", "replay", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "considered=2 loaded=1 still_invalid=1" in result.output
    assert _snapshot(warehouse) == before


def test_cli_replay_then_replay_again(warehouse):
    _fix_ohlc_payload(warehouse)
    first = runner.invoke(app, ["dlq", "replay", "--dataset", "candles", "--exchange", EXCHANGE])
    assert first.exit_code == 0, first.output
    assert "considered=2 loaded=1 still_invalid=1" in first.output
    after_first = _snapshot(warehouse)

    second = runner.invoke(app, ["dlq", "replay"])
    assert second.exit_code == 0, second.output
    assert "loaded=0" in second.output
    assert _snapshot(warehouse) == after_first

    only_other = runner.invoke(app, ["dlq", "replay", "--reason", "ohlc_inconsistent"])
    assert "considered=0 loaded=0 still_invalid=0" in only_other.output


def test_list_shows_dead_letters_and_filters(warehouse):
    result = runner.invoke(app, ["dlq", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "ohlc_inconsistent" in result.output and "non_numeric_value" in result.output
    assert "by reason" in result.output

    only = runner.invoke(app, ["dlq", "list", "--reason", "ohlc_inconsistent"], env={"COLUMNS": "250"})
    assert only.exit_code == 0, only.output
    assert "ohlc_inconsistent" in only.output and "non_numeric_value" not in only.output

    none = runner.invoke(app, ["dlq", "list", "--dataset", "trades"], env={"COLUMNS": "250"})
    assert none.exit_code == 0 and "(0 of 0)" in none.output

    _fix_ohlc_payload(warehouse)
    runner.invoke(app, ["dlq", "replay"])
    replayed = runner.invoke(app, ["dlq", "list", "--replayed"], env={"COLUMNS": "250"})
    assert "(1 of 1)" in replayed.output and "ohlc_inconsistent" in replayed.output
    pending = runner.invoke(app, ["dlq", "list", "--not-replayed"], env={"COLUMNS": "250"})
    assert "(1 of 1)" in pending.output and "non_numeric_value" in pending.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["dlq", "list", "--dataset", "bogus"], "bogus"),
        (["dlq", "replay", "--dataset", "bogus"], "bogus"),
        (["dlq", "list", "--reason", "no_such_reason"], "'no_such_reason'"),
        (["dlq", "list", "--limit", "0"], "invalid limit 0"),
    ],
)
def test_bad_option_values_exit_2_naming_the_value(warehouse, args, named):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and named in result.output
    assert "Traceback" not in result.output
