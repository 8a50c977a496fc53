"""Daily ingest of yesterday's closed candles, then the dbt rollups and indicators over them."""

import dagster as dg

from cryptopipe_dagster.defs.historical.assets import raw_candles
from cryptopipe_dagster.lib.settings import load_settings

daily_market_data_job = dg.define_asset_job(
    "daily_market_data_job",
    selection=dg.AssetSelection.assets(raw_candles).downstream(),
    description="Yesterday for every exchange: raw/candles, then every dbt model and test downstream.",
)

# Runs 10 minutes after midnight UTC so yesterday's last candle is closed on every exchange.
# Stopped by default locally (the simulator has no "yesterday"); running in prod.
daily_market_data_schedule = dg.build_schedule_from_partitioned_job(
    daily_market_data_job,
    hour_of_day=0,
    minute_of_hour=10,
    default_status=dg.DefaultScheduleStatus.RUNNING
    if load_settings().env == "prod"
    else dg.DefaultScheduleStatus.STOPPED,
)
