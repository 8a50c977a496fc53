"""Daily ingest of yesterday's closed candles for every configured exchange."""

from __future__ import annotations

import dagster as dg

from cryptopipe_dagster.defs.historical.assets import historical_candles_job
from cryptopipe_dagster.lib.settings import load_settings

# Runs 10 minutes after midnight UTC so yesterday's last candle is closed on every exchange.
# Stopped by default locally (the simulator has no "yesterday"); running in prod.
daily_candles_schedule = dg.build_schedule_from_partitioned_job(
    historical_candles_job,
    hour_of_day=0,
    minute_of_hour=10,
    default_status=dg.DefaultScheduleStatus.RUNNING
    if load_settings().env == "prod"
    else dg.DefaultScheduleStatus.STOPPED,
)
