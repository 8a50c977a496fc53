"""market_data_sensor: pull, land durably, then ack; one run request per group of landed batches."""

import base64
import json
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.assets import (
    LIVE_CANDLES_OP,
    RAW_TRADES_OP,
    live_candles_job,
    microbatch_job,
)
from cryptopipe_dagster.defs.streaming.resources import PubSubResource
from cryptopipe_dagster.lib.dead_letters import build_dead_letters
from cryptopipe_dagster.lib.landing import LandingArea, MicrobatchGroup
from cryptopipe_dagster.lib.pubsub.puller import ReceivedBatch, ack, pull_batch
from cryptopipe_dagster.lib.schemas import DATASETS

# The kind each loader job handles, with the op its config goes to.
LOADERS = {"trades": (microbatch_job, RAW_TRADES_OP), "candles": (live_candles_job, LIVE_CANDLES_OP)}
EDGE_DEAD_LETTERS = "dead_letters"  # records the collector rejected: written straight to ops.dead_letters


def poison_dead_letters(poison: Sequence[ReceivedBatch], now: pd.Timestamp) -> pd.DataFrame:
    """One dead letter per undecodable message (reason = its poison_reason), payload kept as base64."""
    frames = []
    for dataset in DATASETS:
        part = [b for b in poison if _dataset_of(b) == dataset]
        if not part:
            continue
        frames.append(
            build_dead_letters(
                dataset=dataset,
                exchange=[b.attributes.get("exchange", "") for b in part],
                symbol=[b.attributes.get("symbol") for b in part],
                source="pubsub",
                reason_code=[b.poison_reason or "decode_error" for b in part],
                check_name=["pubsub:decode_batch"] * len(part),
                error_detail=[b.poison_detail or "" for b in part],
                raw_payload=[_raw_message_json(b) for b in part],
                first_seen_at=now,
            )
        )
    return pd.concat(frames, ignore_index=True)


def _dataset_of(batch: ReceivedBatch) -> str:
    # An unreadable kind attribute is filed under trades, the kind most messages carry.
    kind = batch.attributes.get("kind", "")
    return kind if kind in DATASETS else "trades"


def _raw_message_json(batch: ReceivedBatch) -> str:
    payload = {"attributes": batch.attributes, "data_base64": base64.b64encode(batch.data).decode()}
    return json.dumps(payload, sort_keys=True)


def pull_land_ack(pubsub: PubSubResource, landing: LandingArea, store) -> dict[str, int]:
    """One pull; decoded batches landed, edge dead letters and poison written (all durable) before the ack."""
    with pubsub.subscriber() as subscriber:
        batches = pull_batch(subscriber, pubsub.subscription_path, pubsub.max_messages, pubsub.pull_timeout_s)
        poison = [b for b in batches if b.is_poison]
        edge = [b for b in batches if not b.is_poison and b.attributes.get("kind") == EDGE_DEAD_LETTERS]
        good = [b for b in batches if not b.is_poison and b.attributes.get("kind") != EDGE_DEAD_LETTERS]
        now = pd.Timestamp.now(tz="UTC")
        new_ids = landing.land(good, now) if good else []
        dead = [poison_dead_letters(poison, now)] if poison else []
        dead += [b.records for b in edge if b.records is not None]
        # Dead letter ids are deterministic: a redelivered batch writes nothing new.
        dead_written = store.write_dead_letters(pd.concat(dead, ignore_index=True)) if dead else 0
        if batches:  # only now is every pulled message durable somewhere
            ack(subscriber, pubsub.subscription_path, [b.ack_id for b in batches])
    return {
        "pulled": len(batches),
        "landed": len(new_ids),
        "poison": len(poison),
        "edge_dead_letter_batches": len(edge),
        "dead_written": dead_written,
    }


def run_request(group: MicrobatchGroup) -> dg.RunRequest:
    """The run of one group; its run key is the group id, so Dagster launches it once."""
    job, op_name = LOADERS[group.kind]
    return dg.RunRequest(
        run_key=group.group_id,
        job_name=job.name,
        run_config={"ops": {op_name: {"config": {"batch_ids": list(group.batch_ids)}}}},
        tags={"cryptopipe/microbatch_group": group.group_id, "cryptopipe/batches": str(len(group.batch_ids))},
    )


def _cursor_seq(cursor: str | None) -> int:
    try:
        return int(json.loads(cursor)["group_seq"]) if cursor else 0
    except (ValueError, KeyError, TypeError):
        return 0


@dg.sensor(
    jobs=[microbatch_job, live_candles_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Pulls market-data micro-batches, lands them in ops.landed_batches, writes the collector's "
    "dead letters, acks, and requests one loader run per group of landed batches (run key = group id).",
)
def market_data_sensor(
    context: dg.SensorEvaluationContext, pubsub: PubSubResource, warehouse: WarehouseResource
):
    store = warehouse.get_warehouse()
    landing = LandingArea(store.path)
    counts = pull_land_ack(pubsub, landing, store)
    for kind in LOADERS:
        landing.assign_groups(kind, pubsub.max_batches_per_run)
    after = _cursor_seq(context.cursor)
    # Groups past the cursor; a lost cursor re-yields older unloaded groups under the same run keys,
    # which Dagster skips (run keys are unique per sensor).
    groups = [g for g in landing.pending_groups(after_seq=after) if g.kind in LOADERS]
    context.log.info("market_data_sensor %s groups=%d", counts, len(groups))
    for group in groups:
        yield run_request(group)
    if groups:
        context.update_cursor(json.dumps({"group_seq": groups[-1].group_seq}))
    elif not counts["pulled"]:
        yield dg.SkipReason("no messages and no new groups")
