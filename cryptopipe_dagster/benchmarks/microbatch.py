"""microbatch_latency: pull a micro-batch from the Pub/Sub emulator -> land -> validate -> MERGE ->
queryable, p50/p95/p99 over >= 50 batches, with and without the emulator's own pull time.

A micro-batch is 10,000 trade records in 10 messages of 1,000 (the collector's message size under
load), published beforehand so the measurement starts at the pull. The loading code is the live
loader's (lib/streaming/loader.py: load_pending, what market_data_sensor runs) on a DuckDB file that
grows batch by batch. Baseline per_row_txn: the same pull and landing, then each record validated
alone and MERGEd in its own transaction (its per-record cost measured on a sample, times 10,000).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
from google.cloud import pubsub_v1

from cryptopipe_dagster.benchmarks.harness import Record, latency_records, say
from cryptopipe_dagster.benchmarks.trade_data import build_input, seed_trades
from cryptopipe_dagster.lib.edge.normalize_trades import normalize_trades_table
from cryptopipe_dagster.lib.edge.schemas import TradeSchema
from cryptopipe_dagster.lib.edge.validation import validate_frame
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.puller import ack, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import LOADER_SUBSCRIPTION, ensure_topology
from cryptopipe_dagster.lib.streaming.loader import load_pending
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.lib.warehouse.duckdb_landing import DuckDBLanding

NAME = "microbatch_latency"
RECORDS = 10_000
MESSAGES = 10
WARMUP = 3
PER_ROW_SAMPLE = 300
PROJECT = "cryptopipe-bench"


def _canonical_frames(data_dir: Path, batches: int) -> list[pd.DataFrame]:
    """batches x MESSAGES TradeSchema frames of RECORDS / MESSAGES distinct trades each."""
    total = batches * RECORDS
    # 5% of the generated records are duplicates and 0.1% invalid: generate enough distinct ones.
    table = build_input(seed_trades(data_dir), int(total / 0.94) + 1_000, with_dicts=False).table
    valid = normalize_trades_table(
        table, exchange="kraken", source="ws", now=pd.Timestamp("2030-01-01", tz="UTC")
    ).valid
    if len(valid) < total:
        raise AssertionError(f"{NAME}: only {len(valid)} distinct trades for {total}")
    valid = valid.iloc[:total]
    size = RECORDS // MESSAGES
    return [valid.iloc[i : i + size].reset_index(drop=True) for i in range(0, total, size)]


def _per_row_seconds(frame: pd.DataFrame, work: Path) -> float:
    store = DuckDBWarehouse(work / "per_row.duckdb")
    store.ensure_schema()
    sample = frame.iloc[:PER_ROW_SAMPLE]
    started = time.perf_counter()
    for i in range(len(sample)):
        valid, _dead = validate_frame(sample.iloc[i : i + 1], TradeSchema, dataset="trades", source="pubsub")
        store.merge_trades(valid)
    return (time.perf_counter() - started) / len(sample)


def run(data_dir: Path, batches: int = 50) -> list[Record]:
    total = batches + WARMUP
    say(f"{NAME}: building {total} batches of {RECORDS:,} records")
    frames = _canonical_frames(data_dir, total)
    with tempfile.TemporaryDirectory(prefix="cryptopipe-bench-") as tmp, PubSubEmulator() as emulator:
        work = Path(tmp)
        ensure_topology(PROJECT)
        say(f"{NAME}: publishing {len(frames):,} messages to the emulator at {emulator.host}")
        with MarketDataPublisher(PROJECT) as publisher:
            for frame in frames:
                publisher.publish(frame, "trades")
            publisher.flush(300)
        per_row = _per_row_seconds(frames[0], work)
        say(f"{NAME}: per-row validate + transaction: {per_row * 1000:.2f} ms per record")
        store = DuckDBWarehouse(work / "warehouse.duckdb")
        store.ensure_schema()
        landing = DuckDBLanding(store.path)
        subscription = f"projects/{PROJECT}/subscriptions/{LOADER_SUBSCRIPTION}"
        total_s, after_pull_s, pull_s, stages = [], [], [], []
        with pubsub_v1.SubscriberClient() as subscriber:
            for i in range(total):
                started = time.perf_counter()
                received = []
                while len(received) < MESSAGES:
                    received += pull_batch(
                        subscriber, subscription, MESSAGES - len(received), 10.0, follow_up_timeout_s=0.05
                    )
                pulled = time.perf_counter()
                landing.land(received)
                ack(subscriber, subscription, [m.ack_id for m in received])
                landed = time.perf_counter()
                counts = load_pending(landing, store, "trades")
                loaded = time.perf_counter()
                visible = store.query_df("select count(*) as n from raw.trades", {})["n"].iloc[0]
                done = time.perf_counter()
                if counts.rows != RECORDS:
                    raise AssertionError(f"{NAME}: batch {i} loaded {counts.rows} rows")
                if i < WARMUP:
                    continue
                total_s.append(done - started)
                after_pull_s.append(done - pulled)
                pull_s.append(pulled - started)
                stages.append((pulled - started, landed - pulled, loaded - landed, done - loaded))
                if (i - WARMUP + 1) % 10 == 0:
                    say(
                        f"{NAME}: {i - WARMUP + 1}/{batches} batches, last {1000 * (done - started):.0f} ms, "
                        f"{int(visible):,} rows queryable"
                    )
    baseline_total = [p + stage[1] + RECORDS * per_row for p, stage in zip(pull_s, stages, strict=True)]
    baseline_after_pull = [stage[1] + RECORDS * per_row for stage in stages]
    means = pd.DataFrame(stages, columns=["pull", "land_ack", "validate_merge", "query"]).mean() * 1000
    details = {
        "records_per_batch": RECORDS,
        "messages_per_batch": MESSAGES,
        "batches": batches,
        "mean_stage_ms": {k: round(v, 1) for k, v in means.items()},
        "baseline_note": f"per-record cost measured on {PER_ROW_SAMPLE} records, x {RECORDS:,}",
    }
    say(f"{NAME}: mean stages (ms): {details['mean_stage_ms']}")
    excluding = {**details, "scope": "excluding the emulator's pull"}
    including = {**details, "scope": "including the emulator's pull"}
    return latency_records(NAME, RECORDS, after_pull_s, "per_row_txn", baseline_after_pull, excluding) + (
        latency_records(NAME, RECORDS, total_s, "per_row_txn", baseline_total, including, suffix="_with_pull")
    )
