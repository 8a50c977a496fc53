"""Publish -> pull round trips on the emulator: attributes, ordering keys, decode, ack, redelivery."""

from __future__ import annotations

import time
from datetime import UTC

from pandas.testing import assert_frame_equal

from cryptopipe_dagster.lib.pubsub.codec import CONTENT_TYPE, SCHEMA_VERSION, encode_batch
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.puller import ack, modify_ack_deadline, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import (
    LOADER_SUBSCRIPTION,
    RetryPolicySpec,
    SubscriptionSpec,
    TopicSpec,
    Topology,
    ensure_topology,
)
from tests.lib.pubsub.frames import candles_frame, trades_frame


def _pull_all(subscriber, path, expected, timeout_s=15.0):
    """Pull until `expected` messages arrived (the emulator may spread them over several pulls)."""
    received, deadline = [], time.monotonic() + timeout_s
    while len(received) < expected and time.monotonic() < deadline:
        received += pull_batch(subscriber, path, max_messages=expected - len(received), timeout_s=5.0)
    return received


def test_round_trip_with_attributes_ordering_key_and_records(market_data_project, subscriber):
    published = {
        "trades-1": (trades_frame("binance", "BTC/USDT", n=40), "trades"),
        "trades-2": (trades_frame("binance", "BTC/USDT", n=40, first_id=40), "trades"),
        "candles": (candles_frame("coinbaseexchange", "BTC/USD"), "candles"),
    }
    with MarketDataPublisher(market_data_project) as publisher:
        futures = {name: publisher.publish(frame, kind) for name, (frame, kind) in published.items()}
        publisher.flush(timeout_s=30)
        message_ids = {name: future.result(timeout=0) for name, future in futures.items()}
        assert publisher.stats().published == 3

    path = subscriber.subscription_path(market_data_project, LOADER_SUBSCRIPTION)
    received = {batch.message_id: batch for batch in _pull_all(subscriber, path, expected=3)}
    assert set(received) == set(message_ids.values())
    for name, (frame, kind) in published.items():
        batch = received[message_ids[name]]
        expected = encode_batch(frame, kind)
        assert not batch.is_poison
        assert batch.attributes == expected.attributes
        assert batch.attributes["schema_version"] == SCHEMA_VERSION
        assert batch.attributes["content_type"] == CONTENT_TYPE
        assert batch.ordering_key == f"{frame['exchange'].iloc[0]}:{frame['symbol'].iloc[0]}"
        assert batch.delivery_attempt == 1  # the loader subscription has a dead-letter policy
        assert batch.publish_time.tzinfo is not None and batch.publish_time.utcoffset() == UTC.utcoffset(None)
        assert_frame_equal(batch.records, frame)

    ack(subscriber, path, [batch.ack_id for batch in received.values()])
    assert pull_batch(subscriber, path, max_messages=10, timeout_s=3.0) == []


def test_empty_pull_stays_inside_its_budget(market_data_project, subscriber):
    path = subscriber.subscription_path(market_data_project, LOADER_SUBSCRIPTION)
    started = time.monotonic()
    assert pull_batch(subscriber, path, max_messages=100, timeout_s=1.5) == []
    assert time.monotonic() - started < 3.0


def test_unacked_message_is_redelivered_after_the_ack_deadline(pubsub_project, subscriber):
    short = Topology(
        topics=(TopicSpec("short-deadline"),),
        subscriptions=(
            SubscriptionSpec(
                "short-deadline-sub",
                "short-deadline",
                ack_deadline_s=2,  # the emulator accepts < 10 s; GCP's minimum is 10
                message_retention_s=600,
                retry_policy=RetryPolicySpec(0, 1),
            ),
        ),
    )
    ensure_topology(pubsub_project, short)
    with MarketDataPublisher(pubsub_project, "short-deadline") as publisher:
        publisher.publish(trades_frame(n=3), "trades")
    path = subscriber.subscription_path(pubsub_project, "short-deadline-sub")
    [first] = _pull_all(subscriber, path, expected=1)
    pulled_at = time.monotonic()
    [again] = _pull_all(subscriber, path, expected=1)  # not acked: comes back once 2 s have passed
    assert again.message_id == first.message_id and again.ack_id != first.ack_id
    assert time.monotonic() - pulled_at >= 1.5
    ack(subscriber, path, [again.ack_id])


def test_shortened_ack_deadline_redelivers_with_next_attempt(market_data_project, subscriber):
    with MarketDataPublisher(market_data_project) as publisher:
        publisher.publish(candles_frame(n=2), "candles")
    path = subscriber.subscription_path(market_data_project, LOADER_SUBSCRIPTION)
    [first] = _pull_all(subscriber, path, expected=1)
    modify_ack_deadline(subscriber, path, [first.ack_id], 1)
    [again] = _pull_all(subscriber, path, expected=1)
    assert (again.message_id, again.delivery_attempt) == (first.message_id, 2)
    ack(subscriber, path, [again.ack_id])


def test_poison_messages_are_reported_not_raised(market_data_project, subscriber, admin_publisher):
    topic = admin_publisher.topic_path(market_data_project, "market-data")
    good = encode_batch(trades_frame(n=5), "trades")
    admin_publisher.publish(topic, good.data, **good.attributes).result(timeout=10)
    admin_publisher.publish(topic, b"\x00garbage", **good.attributes).result(timeout=10)
    admin_publisher.publish(topic, b'{"json": "lines"}').result(timeout=10)

    path = subscriber.subscription_path(market_data_project, LOADER_SUBSCRIPTION)
    received = _pull_all(subscriber, path, expected=3)
    reasons = sorted(batch.poison_reason or "ok" for batch in received)
    assert reasons == ["missing_attribute", "ok", "undecodable_payload"]
    for batch in received:
        assert (batch.records is None) == batch.is_poison
        assert batch.data  # the raw payload is kept for the dead-letter table
    ack(subscriber, path, [batch.ack_id for batch in received])
