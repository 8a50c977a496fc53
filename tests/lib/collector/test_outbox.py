"""MarketOutbox end to end on real parts: simulator trades (sync ccxt) -> outbox -> Pub/Sub emulator.

Duplicates across transports and flushes stay off the wire, rejected records leave as dead letters,
and the checkpoint moves only over batches Pub/Sub confirmed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import ccxt
import pytest

from cryptopipe_dagster.lib.collector.checkpoint import CheckpointStore
from cryptopipe_dagster.lib.collector.metrics import CollectorMetrics
from cryptopipe_dagster.lib.collector.outbox import MarketOutbox
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, parse_market
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.publisher_client import PublisherSettings
from cryptopipe_dagster.lib.pubsub.puller import ack, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import LOADER_SUBSCRIPTION
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR, SEED
from tests.simulator.ws_helpers import START, SYMBOL

START_MS = ccxt.Exchange.parse8601(START)
SPEC = parse_market("kraken:BTC/USD")
LABELS = {"exchange": "kraken", "symbol": "BTC/USD"}


@pytest.fixture(scope="module")
def kraken_trades() -> list[dict]:
    """300 real ccxt trade dicts from the simulator's Kraken REST."""
    with SimulatorServer(DATA_DIR, seed=SEED, now="2019-10-17T09:30:00Z") as server:
        exchange = ccxt.kraken({"enableRateLimit": False, "timeout": 5000})
        point_exchange_at(exchange, server.base_url)
        trades = exchange.fetch_trades(SYMBOL, since=START_MS, limit=300)
    assert len(trades) == 300 and len({t["id"] for t in trades}) == 300
    return trades


class Harness:
    def __init__(self, project: str, tmp_path) -> None:
        self.settings = CollectorSettings(
            markets=(SPEC,), project_id=project, state_path=tmp_path / "checkpoint.json", batch_max_records=50
        )
        self.metrics = CollectorMetrics()
        self.checkpoint = CheckpointStore(self.settings.state_path)
        self.publisher = MarketDataPublisher(project, settings=PublisherSettings(max_latency_s=0.01))
        self.outbox = MarketOutbox(SPEC, self.settings, self.publisher, self.metrics, self.checkpoint)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.value(f"cryptopipe_collector_{name}_total", **LABELS, **labels)

    def confirm(self) -> None:
        self.publisher.flush(timeout_s=30)
        self.outbox.settle()
        assert self.outbox.in_flight == 0


@pytest.fixture
def harness(market_data_project: str, tmp_path) -> Iterator[Harness]:
    h = Harness(market_data_project, tmp_path)
    yield h
    h.publisher.close(30)


def pull_all(subscriber, project: str, expected_records: int, timeout_s: float = 15.0) -> dict[str, list]:
    """Every message until `expected_records` records arrived; frames by kind (acked)."""
    path = subscriber.subscription_path(project, LOADER_SUBSCRIPTION)
    by_kind: dict[str, list] = {}
    deadline, count = time.monotonic() + timeout_s, 0
    while count < expected_records and time.monotonic() < deadline:
        batches = pull_batch(subscriber, path, max_messages=100, timeout_s=3.0)
        for batch in batches:
            assert not batch.is_poison, batch.poison_reason
            assert batch.ordering_key == SPEC.key
            by_kind.setdefault(batch.attributes["kind"], []).append(batch.records)
            count += len(batch.records)
        if batches:
            ack(subscriber, path, [b.ack_id for b in batches])
    return by_kind


def test_duplicates_across_transports_and_flushes_stay_off_the_wire(
    harness: Harness, kraken_trades, subscriber, market_data_project
) -> None:
    outbox = harness.outbox
    outbox.add_trades(kraken_trades[:200], "ws")
    outbox.add_trades(kraken_trades[100:250], "rest")  # a REST fill overlapping the stream
    outbox.add_trades(kraken_trades[:10], "ws")  # a reconnect snapshot re-sending old trades
    assert outbox.buffered == 360 and outbox.due()  # over batch_max_records
    assert outbox.flush() == 0
    assert outbox.buffered == 0 and not outbox.due()
    outbox.add_trades(kraken_trades[240:300], "rest")  # the next flush: 10 already published
    outbox.flush()
    harness.confirm()

    assert harness.metric("records_received", kind="trades", transport="ws") == 210
    assert harness.metric("records_received", kind="trades", transport="rest") == 210
    assert harness.metric("records_published", kind="trades") == 300
    assert harness.metric("duplicates_dropped", kind="trades") == 120
    assert harness.metrics.total("cryptopipe_collector_dead_letters_total") == 0
    assert outbox.floor_ms == kraken_trades[0]["timestamp"]
    assert outbox.high_water_ms == kraken_trades[-1]["timestamp"]
    assert harness.checkpoint.get(SPEC.key, "trades") == kraken_trades[-1]["timestamp"]

    received = pull_all(subscriber, market_data_project, 300)
    assert set(received) == {"trades"}
    ids = [str(i) for frame in received["trades"] for i in frame["trade_id"]]
    assert sorted(ids) == sorted(str(t["id"]) for t in kraken_trades)  # each trade exactly once


def test_the_checkpoint_moves_only_over_confirmed_batches(harness: Harness, kraken_trades, tmp_path) -> None:
    outbox, checkpoint = harness.outbox, harness.checkpoint
    outbox.add_trades(kraken_trades[:100], "ws")
    outbox.flush()
    assert outbox.in_flight >= 1
    assert checkpoint.get(SPEC.key, "trades") is None  # published, not confirmed yet
    harness.confirm()
    assert checkpoint.get(SPEC.key, "trades") == kraken_trades[99]["timestamp"]
    assert harness.metric("batches_confirmed", kind="trades") >= 1
    assert harness.metrics.value("cryptopipe_collector_queue_depth", **LABELS) == 0
    checkpoint.save()

    # A restarted collector resumes from the checkpoint: its floor and high-water mark are there.
    restarted = MarketOutbox(
        SPEC,
        harness.settings,
        harness.publisher,
        CollectorMetrics(),
        CheckpointStore(tmp_path / "checkpoint.json"),
    )
    assert restarted.high_water_ms == restarted.floor_ms == kraken_trades[99]["timestamp"]


def test_rejected_trades_leave_as_dead_letters_without_moving_the_checkpoint(
    harness: Harness, kraken_trades, subscriber, market_data_project
) -> None:
    good = kraken_trades[:20]
    bad = [
        {**kraken_trades[20], "price": "not a number"},
        {**kraken_trades[21], "timestamp": None},
        {**kraken_trades[22], "amount": -1.0},
    ]
    harness.outbox.add_trades([*good, *bad], "ws")
    dead = harness.outbox.flush()
    harness.confirm()
    assert dead == 3
    assert harness.metrics.total("cryptopipe_collector_dead_letters_total") == 3
    assert harness.metric("records_published", kind="trades") == 20
    assert harness.metric("records_published", kind="dead_letters") == 3
    assert harness.checkpoint.get(SPEC.key, "trades") == good[-1]["timestamp"]
    received = pull_all(subscriber, market_data_project, 23)
    assert sum(len(frame) for frame in received["trades"]) == 20
    letters = [row for frame in received["dead_letters"] for row in frame.to_dict("records")]
    assert len(letters) == 3 and all(row["reason_code"] for row in letters)
    reasons = {row["reason_code"] for row in letters}
    for reason in reasons:
        assert harness.metric("dead_letters", reason=reason) >= 1


def test_a_buffer_is_due_by_size_or_by_age(harness: Harness, kraken_trades) -> None:
    outbox = harness.outbox
    assert not outbox.due() and outbox.flush() == 0  # nothing buffered: nothing to do
    outbox.add_trades([], "ws")
    assert not outbox.due()
    outbox.add_trades(kraken_trades[:5], "ws")
    assert not outbox.due()  # 5 < 50 records and younger than batch_max_age_s
    time.sleep(harness.settings.batch_max_age_s + 0.05)
    assert outbox.due()
    outbox.flush()
    outbox.add_trades(kraken_trades[5:55], "rest")
    assert outbox.due()  # 50 records: full
    outbox.flush()
    harness.confirm()
    assert harness.metric("records_published", kind="trades") == 55
