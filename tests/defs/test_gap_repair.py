"""The gap ledger through Dagster: raw/candles finds a transient hole (open, the completeness check
fails), the schedule requests a repair run, gap_repair_job repairs it and the table equals the
recording; the recorded Bitstamp outage ends confirmed and the check passes, listing it."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from cryptopipe_dagster.defs.historical.assets import raw_candles
from cryptopipe_dagster.defs.historical.partitions import partition_range_tags
from cryptopipe_dagster.defs.quality import candle_checks
from cryptopipe_dagster.defs.quality.gap_repair import gap_repair_job, gap_repair_schedule
from cryptopipe_dagster.defs.resources import ExchangeResource, warehouse_resource
from cryptopipe_dagster.lib.historical.gap_ledger import CONFIRMED, OPEN, REPAIRED
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import open_warehouse
from cryptopipe_dagster.simulator.recordings import load_recording

OP = "raw__candles"
DAY = pd.Timedelta(days=1)
HIDE_FROM, HIDE_TO = pd.Timestamp("2019-01-05 06:00", tz="UTC"), pd.Timestamp("2019-01-05 09:00", tz="UTC")


@pytest.fixture(params=["duckdb", "bigquery"])
def settings(request, cryptopipe_home, monkeypatch, tmp_path):
    if request.param == "bigquery":
        return request.getfixturevalue("bigquery_env")
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    return load_settings()


def resources_for(simulator, settings) -> dict:
    return {
        "warehouse": warehouse_resource(settings),
        "exchanges": ExchangeResource(
            exchange_api_url=simulator.base_url, rate_limit=False, base_delay_s=0.01, max_delay_s=0.05
        ),
    }


def completeness(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == candle_checks.COMPLETENESS)


def scheduled_run(resources: dict, at: pd.Timestamp) -> dg.RunRequest | dg.SkipReason:
    context = dg.build_schedule_context(
        scheduled_execution_time=at.to_pydatetime(), resources={"warehouse": resources["warehouse"]}
    )
    return gap_repair_schedule(context)


def test_transient_hole_found_open_then_repaired_by_the_scheduled_run(faulty_simulator, settings, data_dir):
    resources = resources_for(faulty_simulator, settings)
    faulty_simulator.set_faults(
        "hidden_span:1",
        hide_from_ms=HIDE_FROM.value // 1_000_000,
        hide_to_ms=HIDE_TO.value // 1_000_000,
        hide_requests=2,  # the backfill's page and its in-run repair attempt
    )
    partition = dg.MultiPartitionKey({"date": "2019-01-05", "exchange": "coinbaseexchange"})
    config = {"ops": {OP: {"config": {"symbols": ["BTC/USD"], "timeframes": ["1h"]}}}}
    found = dg.materialize(
        [raw_candles], resources=resources, partition_key=partition, run_config=config, raise_on_error=False
    )
    assert not found.success  # completeness is a blocking check: downstream waits for the repair
    check = completeness(found)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "2019-01-05 06:00:00" in check.metadata["gaps"].value and check.metadata["open_gaps"].value == 1
    store = open_warehouse(settings)
    (gap,) = store.list_gaps().itertuples()
    assert (gap.span_start, gap.span_end, gap.state) == (HIDE_FROM, HIDE_TO, OPEN)

    assert isinstance(scheduled_run(resources, gap.next_attempt - pd.Timedelta(minutes=1)), dg.SkipReason)
    request = scheduled_run(resources, gap.next_attempt)
    assert isinstance(request, dg.RunRequest) and request.tags["gaps_due"] == "1"
    run = gap_repair_job.execute_in_process(run_config=request.run_config, resources=resources)
    assert run.success
    output = next(e for e in run.all_events if e.event_type_value == "STEP_OUTPUT")
    assert output.step_output_data.metadata["repaired"].value == 1
    # The filled partition is reported, so what depends on raw/candles brings itself up to date.
    (reported,) = run.asset_materializations_for_node("repair_due_candle_gaps")
    assert reported.asset_key == dg.AssetKey(["raw", "candles"]) and reported.partition == partition
    assert reported.metadata["gap_candles_repaired"].value == 3
    # ...with its blocking checks, so the UI's latest materialization of raw/candles has results.
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert set(checks) == {candle_checks.UNIQUE_KEYS, candle_checks.SCHEMA}
    assert all(c.passed and c.partition == partition for c in checks.values())
    (gap,) = store.list_gaps().itertuples()
    assert gap.state == REPAIRED and gap.attempts == 2

    recording = load_recording(data_dir / "coinbase_btcusd_1h.csv")
    expected = recording[
        (recording.ts >= pd.Timestamp("2019-01-05", tz="UTC"))
        & (recording.ts < pd.Timestamp("2019-01-06", tz="UTC"))
    ]
    got = store.candles_in_window(
        ["coinbaseexchange"], pd.Timestamp("2019-01-05", tz="UTC"), pd.Timestamp("2019-01-06", tz="UTC")
    )
    got = got[(got.symbol == "BTC/USD") & (got.timeframe == "1h")]
    columns = ["ts", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(
        got[columns].reset_index(drop=True).assign(ts=lambda f: f.ts.dt.tz_convert("UTC")),
        expected[columns].reset_index(drop=True),
        check_dtype=False,
    )
    again = dg.materialize(
        [raw_candles],
        resources=resources,
        partition_key=partition,
        run_config={"ops": {OP: {"config": {"symbols": ["BTC/USD"], "timeframes": ["1h"], "refetch": True}}}},
    )
    assert completeness(again).passed


def test_confirmed_outage_is_listed_and_passes(simulator, settings):
    resources = resources_for(simulator, settings)
    tags = partition_range_tags("2019-03-15", "2019-04-05", "bitstamp")
    config = {"ops": {OP: {"config": {"symbols": ["BTC/USD"], "timeframes": ["1d"]}}}}
    first = dg.materialize(
        [raw_candles], resources=resources, tags=tags, run_config=config, raise_on_error=False
    )
    assert not completeness(first).passed
    store = open_warehouse(settings)
    now = store.list_gaps().next_attempt.max()
    repair = {"confirm_attempts": 2, "confirm_after_s": 3600.0}
    for step in range(3):  # attempts 2 and 3, an hour apart: confirmed
        at = now + step * pd.Timedelta(hours=2)
        run_config = {"ops": {"repair_due_candle_gaps": {"config": {"now": at.isoformat(), **repair}}}}
        assert gap_repair_job.execute_in_process(run_config=run_config, resources=resources).success
    (gap,) = store.list_gaps().itertuples()
    assert gap.state == CONFIRMED and gap.span_start == pd.Timestamp("2019-03-20", tz="UTC")
    again = dg.materialize(
        [raw_candles],
        resources=resources,
        tags=tags,
        run_config={"ops": {OP: {"config": {**config["ops"][OP]["config"], "refetch": True}}}},
    )
    check = completeness(again)
    assert check.passed and check.metadata["confirmed_exchange_gaps"].value == 1
    assert CONFIRMED in check.metadata["gaps"].value and check.metadata["missing_candles"].value == 12


def test_with_the_demos_policy_a_run_over_the_outage_confirms_it_and_succeeds(
    simulator, settings, monkeypatch
):
    # What `cryptopipe demo` sets (cli/runner.py): its exchange is a recording.
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS", "1")
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_AFTER_S", "0")
    resources = resources_for(simulator, settings)
    tags = partition_range_tags("2019-03-15", "2019-04-05", "bitstamp")
    result = dg.materialize(
        [raw_candles],
        resources=resources,
        tags=tags,
        run_config={"ops": {OP: {"config": {"timeframes": ["1d"]}}}},
    )
    assert result.success
    check = completeness(result)
    assert check.passed and check.metadata["confirmed_exchange_gaps"].value == 3
    assert set(open_warehouse(settings).list_gaps().state) == {CONFIRMED}
