import dagster as dg

from cryptopipe_dagster.defs.quality import candle_checks


def test_definitions_load_with_assets_checks_job_and_schedule():
    from cryptopipe_dagster.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    repository = definitions.get_repository_def()
    assert dg.AssetKey(["raw", "candles"]) in repository.asset_graph.get_all_asset_keys()
    check_names = {key.name for key in repository.asset_graph.asset_check_keys}
    assert set(candle_checks.CHECK_SPECS_DESCRIPTIONS) <= check_names
    assert definitions.resolve_job_def("historical_candles_job") is not None
    schedule = definitions.resolve_schedule_def("daily_market_data_job_schedule")
    assert schedule.cron_schedule == "10 0 * * *"
    assert set(repository.get_top_level_resources()) >= {"warehouse", "exchanges"}
