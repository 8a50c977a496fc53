"""Publish failures are retried, re-ordered per market, and reported by flush: never dropped."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc

from cryptopipe_dagster.lib.errors import PublisherClosed, PublishFailed
from cryptopipe_dagster.lib.pubsub.codec import encode_batch
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.publisher_client import PublisherSettings
from cryptopipe_dagster.lib.pubsub.puller import ack, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import (
    MARKET_DATA_TOPIC,
    SubscriptionSpec,
    TopicSpec,
    Topology,
    ensure_topology,
)
from tests.lib.pubsub.frames import trades_frame


def _wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


FAST_RETRIES = PublisherSettings(
    republish_attempts=3, republish_initial_backoff_s=0.05, republish_max_backoff_s=0.2
)


def test_flush_raises_listing_batches_sent_to_a_deleted_topic(market_data_project, admin_publisher):
    admin_publisher.delete_topic(topic=admin_publisher.topic_path(market_data_project, MARKET_DATA_TOPIC))
    frames = [trades_frame(n=5, first_id=i * 5) for i in range(3)]
    publisher = MarketDataPublisher(market_data_project, settings=FAST_RETRIES)
    futures = [publisher.publish(frame, "trades") for frame in frames]

    with pytest.raises(PublishFailed) as caught:
        publisher.flush(timeout_s=30)
    failures = caught.value.failures
    assert sorted(f.batch_id for f in failures) == sorted(encode_batch(f, "trades").batch_id for f in frames)
    assert all(f.reason == "error" and f.attempts == FAST_RETRIES.republish_attempts for f in failures)
    assert any(isinstance(f.error, gexc.NotFound) for f in failures)
    assert all(future.exception(timeout=0) is not None for future in futures)
    assert failures[0].batch.data  # the payload travels with the failure: the caller can keep it
    assert publisher.stats().failed == 3

    publisher.flush(timeout_s=1)  # reported once: the next flush starts clean
    publisher.close()
    with pytest.raises(PublisherClosed):
        publisher.publish(frames[0], "trades")


def test_paused_market_is_resumed_and_republished_in_order(pubsub_project, subscriber):
    topology = Topology(
        topics=(TopicSpec("late-topic"),),
        # Ordered (allowed without a dead letter) so the delivery order proves the publish order.
        subscriptions=(SubscriptionSpec("late-sub", "late-topic", 60, 600, enable_message_ordering=True),),
    )
    settings = PublisherSettings(
        republish_attempts=6, republish_initial_backoff_s=0.3, republish_max_backoff_s=1.0
    )
    publisher = MarketDataPublisher(pubsub_project, "late-topic", settings=settings)
    frames = [trades_frame(n=4, first_id=i * 4) for i in range(4)]
    futures = [publisher.publish(frame, "trades") for frame in frames]  # the topic does not exist yet
    _wait_until(lambda: publisher.stats().attempt_errors >= 1)  # NOT_FOUND: the market's key is paused
    ensure_topology(pubsub_project, topology)  # the topic appears while the batches wait to be retried

    publisher.close(timeout_s=30)
    assert all(future.done() and future.exception() is None for future in futures)
    assert publisher.stats().republished >= 4

    path = subscriber.subscription_path(pubsub_project, "late-sub")
    received = []
    while len(received) < 4:
        batch = pull_batch(subscriber, path, max_messages=4, timeout_s=5.0, follow_up_timeout_s=0.5)
        assert batch, "republished batches did not arrive"
        received += batch
    assert [b.batch_id for b in received] == [encode_batch(f, "trades").batch_id for f in frames]
    ack(subscriber, path, [b.ack_id for b in received])
