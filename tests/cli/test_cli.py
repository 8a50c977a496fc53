"""The cryptopipe command: bad arguments are one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from cryptopipe_dagster.cli import app
from cryptopipe_dagster.cli.backfill import auto_days_per_run, day_chunks
from cryptopipe_dagster.lib.markets_config import BackfillSpec

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--exchange", "notanexchange", "--start", "2019-01-01", "--end", "2019-01-02"], "notanexchange"),
        (["--exchange", "binance", "--start", "2019-01-01", "--end", "2019-01-02"], "binance"),
        (
            [
                "--exchange",
                "bitstamp",
                "--symbols",
                "BTC-USD",
                "--start",
                "2019-01-01",
                "--end",
                "2019-01-02",
            ],
            "BTC-USD",
        ),
        (
            [
                "--exchange",
                "bitstamp",
                "--symbols",
                "DOGE/USD",
                "--start",
                "2019-01-01",
                "--end",
                "2019-01-02",
            ],
            "DOGE/USD",
        ),
        (
            ["--exchange", "bitstamp", "--timeframes", "2x", "--start", "2019-01-01", "--end", "2019-01-02"],
            "2x",
        ),
        (["--exchange", "bitstamp", "--start", "2019-02-30", "--end", "2019-03-02"], "2019-02-30"),
        (["--exchange", "bitstamp", "--start", "2019-03-02", "--end", "2019-03-01"], "before"),
        (["--exchange", "bitstamp", "--start", "2013-01-01", "--end", "2013-01-02"], "history_start"),
        (["--exchange", "bitstamp", "--start", "2019-01-01", "--end", "2999-01-01"], "not a closed UTC day"),
        (
            ["--exchange", "bitstamp", "--start", "2019-01-01", "--end", "2019-01-02", "--days-per-run", "0"],
            "days-per-run",
        ),
    ],
)
def test_backfill_rejects_bad_arguments_naming_the_value(args, named, cryptopipe_home):
    result = runner.invoke(app, ["backfill", *args], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output


def test_sim_rejects_bad_fault_spec(data_dir):
    result = runner.invoke(
        app, ["sim", "--data", str(data_dir), "--port", "0", "--faults", "meteor:0.5"], terminal_width=200
    )
    assert result.exit_code == 2 and "meteor" in result.output


def test_day_chunks_cover_the_range_exactly():
    chunks = day_chunks(dt.date(2019, 1, 1), dt.date(2019, 12, 31), 92)
    assert chunks[0][0] == dt.date(2019, 1, 1) and chunks[-1][1] == dt.date(2019, 12, 31)
    assert sum((last - first).days + 1 for first, last in chunks) == 365
    assert all(b[0] - a[1] == dt.timedelta(days=1) for a, b in zip(chunks, chunks[1:], strict=False))


@pytest.mark.parametrize(
    ("symbols", "timeframes", "days"),
    [
        (["BTC/USD", "ETH/USD", "LTC/USD"], ["1m"], 92),  # ~400k rows: a quarter
        (["BTC/USD", "ETH/USD", "LTC/USD"], ["1m", "1d"], 91),
        (["BTC/USD"], ["1m"], 276),
        (["BTC/USD"], ["1h"], 366),  # a quarter would be 2k rows: capped at a year
        (["BTC/USD", "ETH/USD", "LTC/USD"], ["1d"], 366),
    ],
)
def test_runs_are_sized_by_candles_not_by_a_fixed_day_count(symbols, timeframes, days):
    spec = BackfillSpec(
        "bitstamp", tuple(symbols), tuple(timeframes), dt.date(2015, 1, 1), dt.date(2020, 1, 1)
    )
    assert auto_days_per_run(spec) == days


def test_backfill_runs_through_dagster_and_resumes(simulator, cryptopipe_home, monkeypatch):
    monkeypatch.setenv("CRYPTOPIPE_EXCHANGE_API_URL", simulator.base_url)
    args = [
        "backfill",
        "--exchange",
        "bitstamp",
        "--symbols",
        "ETH/USD",
        "--timeframes",
        "1d",
        "--start",
        "2018-01-01",
        "--end",
        "2018-03-31",
        "--days-per-run",
        "40",
    ]
    first = runner.invoke(app, args, terminal_width=200)
    assert first.exit_code == 0, first.output
    assert "90/90" in first.output and "90 rows" in first.output
    again = runner.invoke(app, args, terminal_width=200)
    assert again.exit_code == 0 and "0 rows" in again.output

    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 6 and all(run.is_success for run in runs)
    assert {run.job_name for run in runs} == {"historical_candles_job"}


def test_backfill_over_an_outage_says_which_gaps_block_and_how_to_repair(
    simulator, cryptopipe_home, monkeypatch
):
    """Bitstamp's recorded 2019-03-20..31 outage: the rows around it load, the 12 missing days are open
    gaps (the production policy waits 24 h before confirming), and the command says so."""
    monkeypatch.setenv("CRYPTOPIPE_EXCHANGE_API_URL", simulator.base_url)
    args = ["backfill", "--exchange", "bitstamp", "--symbols", "BTC/USD", "--timeframes", "1d"]
    result = runner.invoke(app, [*args, "--start", "2019-03-18", "--end", "2019-04-02"], terminal_width=200)
    assert result.exit_code == 2  # the CLI's exit code for a condition the user has to act on
    assert "1 open gap(s)" in result.output and "cryptopipe gaps list" in result.output
    assert "Traceback" not in result.output
