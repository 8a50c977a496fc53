"""The production dead-letter policy on the emulator: 5 nacks and the batch lands on the DLQ topic."""

from __future__ import annotations

import time

from pandas.testing import assert_frame_equal

from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.puller import ack, nack, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import (
    DEAD_LETTER_AUDIT_SUBSCRIPTION,
    LOADER_SUBSCRIPTION,
    MARKET_DATA_TOPOLOGY,
)
from tests.lib.pubsub.frames import candles_frame

MAX_ATTEMPTS = MARKET_DATA_TOPOLOGY.subscription(LOADER_SUBSCRIPTION).dead_letter.max_delivery_attempts


def test_batch_nacked_max_delivery_attempts_times_is_dead_lettered(market_data_project, subscriber):
    frame = candles_frame(n=6)
    with MarketDataPublisher(market_data_project) as publisher:
        message_id = publisher.publish(frame, "candles").result(timeout=30)
    loader = subscriber.subscription_path(market_data_project, LOADER_SUBSCRIPTION)
    audit = subscriber.subscription_path(market_data_project, DEAD_LETTER_AUDIT_SUBSCRIPTION)

    attempts = []
    deadline = time.monotonic() + 45  # the real 1 s..60 s backoff: ~15 s to the dead letter
    while len(attempts) < MAX_ATTEMPTS and time.monotonic() < deadline:
        for batch in pull_batch(subscriber, loader, max_messages=10, timeout_s=10.0, follow_up_timeout_s=0.2):
            assert batch.message_id == message_id
            attempts.append(batch.delivery_attempt)
            nack(subscriber, loader, [batch.ack_id])  # e.g. the warehouse refused the batch
    assert attempts == list(range(1, MAX_ATTEMPTS + 1))

    # The emulator forwards lazily: once the message is due again, the next pull on the source
    # subscription moves it to the dead-letter topic instead of delivering it a sixth time.
    dead_letters = []
    while not dead_letters and time.monotonic() < deadline:
        assert pull_batch(subscriber, loader, max_messages=10, timeout_s=2.0, follow_up_timeout_s=0.2) == []
        dead_letters = pull_batch(subscriber, audit, max_messages=10, timeout_s=2.0, follow_up_timeout_s=0.2)
    [dead] = dead_letters
    # Pub/Sub republishes the message itself: payload and our attributes intact, plus its own.
    assert dead.attributes["CloudPubSubDeadLetterSourceSubscription"] == LOADER_SUBSCRIPTION
    assert dead.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(MAX_ATTEMPTS)
    assert dead.attributes["kind"] == "candles" and dead.ordering_key == "coinbaseexchange:BTC/USD"
    assert not dead.is_poison
    assert_frame_equal(dead.records, frame)
    ack(subscriber, audit, [dead.ack_id])
    assert pull_batch(subscriber, loader, max_messages=10, timeout_s=2.0) == []  # gone from the loader
