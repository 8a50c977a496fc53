"""ensure_topology creates the production topology on the emulator, idempotently and as declared."""

from __future__ import annotations

import pytest

from cryptopipe_dagster.lib.errors import TopologyError
from cryptopipe_dagster.lib.pubsub.topology import (
    MARKET_DATA_TOPOLOGY,
    DeadLetterSpec,
    SubscriptionSpec,
    TopicSpec,
    Topology,
    ensure_topology,
)


def test_ensure_topology_is_idempotent(pubsub_project):
    names = 2 + 2  # topics + subscriptions
    first = ensure_topology(pubsub_project)
    assert (len(first.created), first.existing) == (names, [])
    second = ensure_topology(pubsub_project)
    assert (second.created, sorted(second.existing)) == ([], sorted(first.created))


def test_created_subscriptions_match_the_declaration(pubsub_project, subscriber, admin_publisher):
    ensure_topology(pubsub_project)
    for spec in MARKET_DATA_TOPOLOGY.topics:
        topic = admin_publisher.get_topic(topic=admin_publisher.topic_path(pubsub_project, spec.topic_id))
        assert topic.message_retention_duration.total_seconds() == spec.message_retention_s
    for spec in MARKET_DATA_TOPOLOGY.subscriptions:
        sub = subscriber.get_subscription(
            subscription=subscriber.subscription_path(pubsub_project, spec.subscription_id)
        )
        assert sub.topic.endswith(f"/topics/{spec.topic_id}")
        assert sub.ack_deadline_seconds == spec.ack_deadline_s
        assert sub.message_retention_duration.total_seconds() == spec.message_retention_s
        assert sub.enable_message_ordering is spec.enable_message_ordering
        assert sub.retry_policy.minimum_backoff.total_seconds() == spec.retry_policy.minimum_backoff_s
        assert sub.retry_policy.maximum_backoff.total_seconds() == spec.retry_policy.maximum_backoff_s
        if spec.dead_letter is None:
            assert not sub.dead_letter_policy.dead_letter_topic
        else:
            assert sub.dead_letter_policy.dead_letter_topic.endswith(f"/topics/{spec.dead_letter.topic_id}")
            assert sub.dead_letter_policy.max_delivery_attempts == spec.dead_letter.max_delivery_attempts


def test_ordering_with_dead_letter_is_refused():
    with pytest.raises(TopologyError, match="ordering \\+ dead letter"):
        Topology(
            topics=(TopicSpec("a-topic"), TopicSpec("a-dlq")),
            subscriptions=(
                SubscriptionSpec(
                    "a-sub",
                    "a-topic",
                    ack_deadline_s=10,
                    message_retention_s=600,
                    dead_letter=DeadLetterSpec("a-dlq", 5),
                    enable_message_ordering=True,
                ),
            ),
        )


def test_unknown_topics_are_refused():
    with pytest.raises(TopologyError, match="unknown topic"):
        Topology(topics=(), subscriptions=(SubscriptionSpec("s-sub", "nowhere", 10, 600),))
    with pytest.raises(TopologyError, match="unknown dead-letter topic"):
        Topology(
            topics=(TopicSpec("a-topic"),),
            subscriptions=(
                SubscriptionSpec("s-sub", "a-topic", 10, 600, dead_letter=DeadLetterSpec("gone", 5)),
            ),
        )
