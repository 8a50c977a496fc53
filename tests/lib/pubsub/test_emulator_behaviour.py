"""What the emulator does with ordering + dead letter on one subscription (evidence for topology.py).

Pinned so that an emulator upgrade that changes it fails here and the decision gets revisited:
on an *ordered* subscription with a dead-letter policy, the emulator (0.8.20) delivers a nacked
message max_delivery_attempts times (delivery_attempt 1..5) and then drops it: nothing reaches the
dead-letter topic. The same settings without ordering dead-letter correctly (test_dead_letter.py).
GCP itself supports the combination, but MARKET_DATA_TOPOLOGY cannot rely on behaviour the local
stack silently loses messages on, so it keeps the loader unordered.
"""

from __future__ import annotations

import time

from cryptopipe_dagster.lib.pubsub.codec import encode_batch
from cryptopipe_dagster.lib.pubsub.puller import nack, pull_batch
from tests.lib.pubsub.frames import trades_frame


def test_ordered_subscription_drops_instead_of_dead_lettering(pubsub_project, subscriber, admin_publisher):
    topic, dlq = (admin_publisher.topic_path(pubsub_project, name) for name in ("ordered-src", "ordered-dlq"))
    for name in (topic, dlq):
        admin_publisher.create_topic(name=name)
    source = subscriber.subscription_path(pubsub_project, "ordered-src-sub")
    audit = subscriber.subscription_path(pubsub_project, "ordered-dlq-audit")
    # Created directly: Topology refuses this combination on purpose.
    subscriber.create_subscription(
        request={
            "name": source,
            "topic": topic,
            "ack_deadline_seconds": 10,
            "enable_message_ordering": True,
            "dead_letter_policy": {"dead_letter_topic": dlq, "max_delivery_attempts": 5},
        }
    )
    subscriber.create_subscription(request={"name": audit, "topic": dlq})
    batch = encode_batch(trades_frame(n=2), "trades")
    admin_publisher.publish(topic, batch.data, **batch.attributes).result(timeout=10)

    attempts = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # An empty pull on an ordered subscription blocks until the RPC deadline: keep it short.
        received = pull_batch(subscriber, source, max_messages=10, timeout_s=1.5, follow_up_timeout_s=0.2)
        if not received and len(attempts) >= 5:
            break
        for message in received:
            attempts.append(message.delivery_attempt)
            nack(subscriber, source, [message.ack_id])
    assert attempts == [1, 2, 3, 4, 5]
    # Unordered, the next pull on the source would now forward it (test_dead_letter.py); ordered,
    # it is gone: neither the source nor the dead-letter topic ever delivers it again.
    for _ in range(2):
        assert pull_batch(subscriber, source, max_messages=10, timeout_s=1.5) == []
    assert pull_batch(subscriber, audit, max_messages=10, timeout_s=2.0) == []
