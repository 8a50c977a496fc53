"""The live loader: pull -> land -> ack -> load, in a loop, inside one bounded call.

market_data_sensor runs one `StreamLoader.run` per tick: for `budget_s` seconds it pulls whatever
the collectors published, lands it durably, acks it, and MERGEs every landed batch at once. Loading
where the pull happens (no Dagster run per micro-batch) is what lets the live path keep up: the work
per batch is milliseconds, while launching a run costs a process (or a pod) and seconds. A landed
batch is queryable one MERGE later, and the number of runs no longer grows with the rate.

Ack after durable: a message is acked only once its batch is landed (or its rejects are in
ops.dead_letters). A crash anywhere means redelivery and, at worst, a no-op MERGE.

The local warehouse is one DuckDB file with one writer process at a time. The loop holds the file
only while landing and loading (never while waiting on Pub/Sub), so a dbt or backfill run can take
it in between; when another process holds it for long, the loop stops early without acking (the
messages come back) rather than running into the tick's time limit.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from cryptopipe_dagster.lib.edge.dead_letters import build_dead_letters
from cryptopipe_dagster.lib.edge.fingerprint_store import store_carried_shapes
from cryptopipe_dagster.lib.edge.schemas import DATASETS
from cryptopipe_dagster.lib.errors import WarehouseBusy
from cryptopipe_dagster.lib.pubsub.puller import ReceivedBatch, ack, pull_batch
from cryptopipe_dagster.lib.streaming.loader import KINDS, LoadCounts, load_pending
from cryptopipe_dagster.lib.warehouse.base import Warehouse
from cryptopipe_dagster.lib.warehouse.landing import LandingArea

log = logging.getLogger("cryptopipe.streaming.loader")
LEDGER_RETENTION = pd.Timedelta(days=2)
EDGE_DEAD_LETTERS = "dead_letters"  # records the collector rejected: written straight to ops.dead_letters


@dataclass
class TickReport:
    """What one `StreamLoader.run` did."""

    pulled: int = 0
    landed: int = 0
    poison: int = 0
    edge_dead_letter_batches: int = 0
    dead_written: int = 0
    iterations: int = 0
    seconds: float = 0.0
    stopped_early: str | None = None  # why the loop ended before its budget, if it did
    loads: dict[str, LoadCounts] = field(default_factory=lambda: {kind: LoadCounts() for kind in KINDS})
    publish_to_load_ms: list[float] = field(default_factory=list)  # one per loaded batch

    @property
    def rows(self) -> int:
        """Rows MERGEd over every kind."""
        return sum(counts.rows for counts in self.loads.values())

    def counters(self) -> dict[str, int]:
        """The Pub/Sub side as flat numbers."""
        return {
            "pulled": self.pulled,
            "landed": self.landed,
            "poison": self.poison,
            "edge_dead_letter_batches": self.edge_dead_letter_batches,
            "dead_written": self.dead_written,
        }


class StreamLoader:
    """Pull, land, ack and load until a time budget runs out (one sensor tick)."""

    def __init__(
        self,
        subscriber,
        subscription_path: str,
        landing: LandingArea,
        warehouse: Warehouse,
        *,
        max_messages: int = 1_000,
        pull_wait_s: float = 0.5,
        max_batches_per_load: int = 5_000,
        idle_poll_s: float = 0.1,
        load_interval_s: float = 0.0,
    ) -> None:
        self.subscriber = subscriber
        self.subscription_path = subscription_path
        self.landing = landing
        self.warehouse = warehouse
        self.max_messages = max_messages
        self.pull_wait_s = pull_wait_s
        self.max_batches_per_load = max_batches_per_load
        self.idle_poll_s = idle_poll_s
        # 0: load after every landing (DuckDB: a MERGE costs milliseconds). BigQuery groups the
        # landed batches for a few seconds: one MERGE per kind per interval, whatever the rate.
        self.load_interval_s = load_interval_s
        self._last_load = float("-inf")
        self._waiting = False  # landed since the last load

    def run(self, budget_s: float, on_iteration: Callable[[TickReport], None] | None = None) -> TickReport:
        """Loop for about `budget_s` seconds (at least one iteration); returns what was done."""
        started = time.monotonic()
        deadline = started + budget_s
        report = TickReport()
        try:
            # The ledger is for recent figures (freshness, backlog): keep it from growing for ever.
            self.landing.prune_ledger(pd.Timestamp.now(tz="UTC") - LEDGER_RETENTION)
            self._load_landed(report)  # what a crashed or busy tick left behind
            while True:
                report.iterations += 1
                remaining = deadline - time.monotonic()
                batches = pull_batch(
                    self.subscriber,
                    self.subscription_path,
                    self.max_messages,
                    max(0.05, min(self.pull_wait_s, remaining)),
                    follow_up_timeout_s=0.0,
                )
                due = time.monotonic() - self._last_load >= self.load_interval_s
                if batches:
                    # One connection each for the whole iteration, not one per statement.
                    with self.landing, self.warehouse:
                        self._land_and_ack(batches, report)
                        self._waiting = True
                        if due:
                            self._load_landed(report)
                elif due and self._waiting:
                    self._load_landed(report)
                else:
                    # A pull may answer "nothing" at once (the emulator does): poll, don't spin.
                    time.sleep(max(0.0, min(self.idle_poll_s, deadline - time.monotonic())))
                if on_iteration is not None:
                    on_iteration(report)
                if time.monotonic() >= deadline:
                    if self._waiting:
                        self._load_landed(report)  # the next tick need not start behind
                    break
        except WarehouseBusy as error:
            # Not acked: Pub/Sub redelivers after the ack deadline; the next tick starts with a probe.
            report.stopped_early = f"warehouse busy: {error}"
            log.warning("stream_loader_warehouse_busy detail=%s", error)
        report.seconds = time.monotonic() - started
        return report

    def _land_and_ack(self, batches: Sequence[ReceivedBatch], report: TickReport) -> None:
        poison = [b for b in batches if b.is_poison]
        edge = [b for b in batches if not b.is_poison and b.attributes.get("kind") == EDGE_DEAD_LETTERS]
        good = [b for b in batches if not b.is_poison and b.attributes.get("kind") != EDGE_DEAD_LETTERS]
        now = pd.Timestamp.now(tz="UTC")
        landed = self.landing.land(good, now) if good else []
        dead = [poison_dead_letters(poison, now)] if poison else []
        dead += [b.records for b in edge if b.records is not None]
        # Dead letter ids are deterministic: a redelivered batch writes nothing new.
        written = self.warehouse.write_dead_letters(pd.concat(dead, ignore_index=True)) if dead else 0
        # Payload shapes the collector saw first (schema drift) ride along as an attribute.
        store_carried_shapes(self.warehouse, [b.attributes for b in (*good, *edge)])
        ack(self.subscriber, self.subscription_path, [b.ack_id for b in batches])  # all durable now
        report.pulled += len(batches)
        report.landed += len(landed)
        report.poison += len(poison)
        report.edge_dead_letter_batches += len(edge)
        report.dead_written += written

    def _load_landed(self, report: TickReport) -> None:
        self._last_load = time.monotonic()
        self._waiting = False
        for kind in KINDS:
            counts = load_pending(self.landing, self.warehouse, kind, self.max_batches_per_load)
            if counts.batches:
                report.loads[kind].add(counts)
                report.publish_to_load_ms.extend(counts.publish_to_load_ms)


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
