"""Daily ingest of yesterday's closed candles, then the dbt rollups and indicators over them."""

import logging
from collections.abc import Callable

import dagster as dg

from cryptopipe_dagster.defs.historical.assets import raw_candles
from cryptopipe_dagster.lib.doctor import Diagnosis, diagnose
from cryptopipe_dagster.lib.settings import Settings, load_settings

log = logging.getLogger("cryptopipe.schedules")
DOCTOR_TIMEOUT_S = 5.0

daily_market_data_job = dg.define_asset_job(
    "daily_market_data_job",
    selection=dg.AssetSelection.assets(raw_candles).downstream(),
    description="Yesterday for every exchange: raw/candles, then every dbt model and test downstream.",
)


def daily_schedule_status(
    settings: Settings, check: Callable[..., Diagnosis] = diagnose
) -> dg.DefaultScheduleStatus:
    """RUNNING in prod when `cryptopipe doctor`'s checks pass (datasets, tables, topics, rights), so
    a half-provisioned environment does not fail a run every day; STOPPED otherwise, and locally
    (the simulator has no "yesterday"). The problems are logged where the code location loads."""
    if settings.env != "prod":
        return dg.DefaultScheduleStatus.STOPPED
    diagnosis = check(settings, timeout_s=DOCTOR_TIMEOUT_S)
    if not diagnosis.ok:
        for problem in diagnosis.problems:
            log.warning("daily_market_data_schedule stays off: %s", problem)
        return dg.DefaultScheduleStatus.STOPPED
    return dg.DefaultScheduleStatus.RUNNING


# Runs 10 minutes after midnight UTC so yesterday's last candle is closed on every exchange.
daily_market_data_schedule = dg.build_schedule_from_partitioned_job(
    daily_market_data_job,
    hour_of_day=0,
    minute_of_hour=10,
    default_status=daily_schedule_status(load_settings()),
)
