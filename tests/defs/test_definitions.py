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


def test_the_daily_schedule_runs_in_prod_only_when_doctor_passes(tmp_path, monkeypatch):
    from cryptopipe_dagster.defs.historical.schedules import daily_schedule_status
    from cryptopipe_dagster.lib.doctor import Diagnosis
    from cryptopipe_dagster.lib.settings import load_settings

    local = load_settings({"CRYPTOPIPE_HOME": str(tmp_path)})
    assert daily_schedule_status(local) == dg.DefaultScheduleStatus.STOPPED
    # Prod with nothing provisioned or reachable (no credentials, no network here): doctor fails.
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    prod = load_settings(
        {
            "CRYPTOPIPE_ENV": "prod",
            "CRYPTOPIPE_GCP_PROJECT": "cryptopipe-nowhere",
            "CRYPTOPIPE_HOME": str(tmp_path),
        }
    )
    assert daily_schedule_status(prod) == dg.DefaultScheduleStatus.STOPPED
    # The same settings once every check passes (what doctor returns in a provisioned project).
    assert daily_schedule_status(prod, lambda *_, **__: Diagnosis()) == dg.DefaultScheduleStatus.RUNNING
