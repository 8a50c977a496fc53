"""gap_repair_job: re-fetch open gaps of the ledger (ops.gaps) that are due, on a schedule.

The schedule asks the ledger first and requests a run only when some open gap is due, so a quiet
ledger costs one small query per tick and no run.
"""

import json

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.historical.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    daily_exchange_partitions,
)
from cryptopipe_dagster.defs.quality.candle_checks import markdown_table, partition_check_evaluations
from cryptopipe_dagster.defs.resources import ExchangeResource, WarehouseResource
from cryptopipe_dagster.lib.historical.gap_ledger import CANDLES_KIND, OPEN, GapPolicy, evidence_summary
from cryptopipe_dagster.lib.historical.gap_repair import repair_due_gaps
from cryptopipe_dagster.lib.settings import load_settings

_POLICY = GapPolicy.from_env()  # defaults of the run config (CRYPTOPIPE_GAP_* at code load)


class GapRepairConfig(dg.Config):
    """Run config of a repair pass; the defaults come from GapPolicy (CRYPTOPIPE_GAP_* overrides)."""

    now: str = ""  # ISO instant to repair as of (tests, replays); empty: the wall clock
    exchange: str = ""  # only this exchange's gaps; empty: every exchange
    confirm_attempts: int = _POLICY.confirm_attempts
    confirm_after_s: float = _POLICY.confirm_after.total_seconds()
    first_backoff_s: float = _POLICY.first_backoff.total_seconds()
    max_backoff_s: float = _POLICY.max_backoff.total_seconds()

    def policy(self) -> GapPolicy:
        return GapPolicy(
            confirm_attempts=self.confirm_attempts,
            confirm_after=pd.Timedelta(seconds=self.confirm_after_s),
            first_backoff=pd.Timedelta(seconds=self.first_backoff_s),
            max_backoff=pd.Timedelta(seconds=self.max_backoff_s),
        )

    def instant(self) -> pd.Timestamp:
        return pd.Timestamp(self.now, tz="UTC") if self.now else pd.Timestamp.now(tz="UTC")


def filled_partitions(gaps: list[dict]) -> dict[dg.MultiPartitionKey, int]:
    """raw/candles partitions (day x exchange) whose candles the attempts filled, with how many:
    reported as materializations so what is downstream of them (dbt marts) brings itself up to date."""
    exchanges = set(
        daily_exchange_partitions.get_partitions_def_for_dimension(EXCHANGE_DIMENSION).get_partition_keys()
    )
    filled: dict[dg.MultiPartitionKey, int] = {}
    for gap in gaps:
        count = int(json.loads(gap["evidence"])[-1].get("filled", 0))
        if count <= 0 or gap["exchange"] not in exchanges:
            continue
        last = pd.Timestamp(gap["span_end"]) - pd.Timedelta(1, "ns")
        for day in pd.date_range(pd.Timestamp(gap["span_start"]).normalize(), last.normalize(), freq="D"):
            key = dg.MultiPartitionKey(
                {DATE_DIMENSION: day.strftime("%Y-%m-%d"), EXCHANGE_DIMENSION: gap["exchange"]}
            )
            filled[key] = filled.get(key, 0) + count
    return filled


@dg.op(
    description="One repair attempt at every open candle gap that is due (next_attempt <= now); the "
    "raw/candles partitions it filled are reported as materializations."
)
def repair_due_candle_gaps(
    context: dg.OpExecutionContext,
    config: GapRepairConfig,
    warehouse: WarehouseResource,
    exchanges: ExchangeResource,
):
    store = warehouse.get_warehouse()
    report = repair_due_gaps(
        store,
        exchanges.client,
        now=config.instant(),
        policy=config.policy(),
        retry=exchanges.retry_policy(),
        exchange=config.exchange or None,
    )
    attempted = pd.DataFrame(report.gaps)
    if not attempted.empty:
        attempted = attempted.assign(evidence=attempted["evidence"].map(evidence_summary))[
            ["exchange", "symbol", "timeframe", "span_start", "span_end", "state", "attempts", "evidence"]
        ]
    context.log.info(
        f"gap_repair attempted={report.attempted} repaired={report.repaired} "
        f"confirmed={report.confirmed} still_open={report.still_open}"
    )
    for partition, count in filled_partitions(report.gaps).items():
        yield dg.AssetMaterialization(
            asset_key=["raw", "candles"],
            partition=partition,
            description="candles filled by gap_repair_job",
            metadata={"gap_candles_repaired": count},
        )
        yield from partition_check_evaluations(store, str(partition))
    yield dg.Output(
        None,
        metadata={
            "attempted": report.attempted,
            "repaired": report.repaired,
            "confirmed_exchange_gaps": report.confirmed,
            "still_open": report.still_open,
            "candles_filled": report.candles_filled,
            "gaps": dg.MetadataValue.md(markdown_table(attempted)),
        },
    )


@dg.job(description="Re-fetch due open gaps of ops.gaps; repaired or confirmed, or backed off.")
def gap_repair_job():
    repair_due_candle_gaps()


@dg.schedule(
    job=gap_repair_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    # On by itself in prod; locally off (the simulator's demo and tests drive repairs explicitly):
    # turn it on in the UI, or run `cryptopipe gaps repair`.
    default_status=dg.DefaultScheduleStatus.RUNNING
    if load_settings().env == "prod"
    else dg.DefaultScheduleStatus.STOPPED,
    description="Every 15 minutes: a repair run when the gap ledger has open gaps that are due.",
)
def gap_repair_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    now = pd.Timestamp(context.scheduled_execution_time or pd.Timestamp.now(tz="UTC"))
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    due = warehouse.get_warehouse().list_gaps(state=OPEN, kind=CANDLES_KIND, due_at=now)
    if due.empty:
        return dg.SkipReason(f"no open gap due at {now.isoformat()}")
    return dg.RunRequest(
        run_key=f"gap_repair_{now.isoformat()}",
        run_config={"ops": {"repair_due_candle_gaps": {"config": {"now": now.isoformat()}}}},
        tags={"gaps_due": str(len(due))},
    )
