"""The Pub/Sub topics and subscriptions as data; `ensure_topology` creates the missing ones.

`MARKET_DATA_TOPOLOGY` must equal ``terraform/pubsub.tf`` resource for resource (names, ack deadline,
retention, retry backoffs, dead-letter topic and attempts, ordering flag);
``tests/lib/pubsub/test_terraform_parity.py`` reads both. Terraform owns prod; `ensure_topology`
builds the same thing on the emulator (and can fill gaps on GCP, without the IAM bindings that
dead-lettering needs there: those are Terraform's).

Why ``market-data-loader`` is not an ordered subscription although publishers set ordering keys:
- Dead-lettering is what keeps a poison batch from being lost or blocking the stream, and the
  emulator (0.8.20, checked by tests/lib/pubsub/test_emulator_behaviour.py) does not dead-letter on
  an ordered subscription: after ``max_delivery_attempts`` it silently drops the message. A local
  stack that loses what prod would dead-letter is worse than no ordering.
- On real Pub/Sub, ordering + dead letter coexist, but a poison batch then holds back every later
  batch of its market until its 5 attempts (with backoff) are spent: head-of-line blocking.
- The loader does not need arrival order: it MERGEs on deterministic keys and orders by event time.
(The emulator dead-letters lazily: a message nacked for the last time moves to the dead-letter
topic on the first pull of its subscription after its backoff, not on its own. A sensor that keeps
pulling never notices; a test must pull the source once more before looking at the dead letters.)
Publishers still use ordering keys (see publisher.py): it keeps each market's batches in order on
the topic for any ordered consumer added later, and pauses a market on a failed publish instead of
letting its next batch overtake it. `Topology` refuses ordering + dead letter on one subscription so
nobody flips the flag and starts losing messages locally.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

from cryptopipe_dagster.lib.errors import TopologyError

log = logging.getLogger("cryptopipe.pubsub.topology")

DAY_S = 86_400


@dataclass(frozen=True)
class TopicSpec:
    """A topic; `message_retention_s` is topic-level retention (seek/replay), None for none."""

    topic_id: str
    message_retention_s: int | None = None


@dataclass(frozen=True)
class RetryPolicySpec:
    """Exponential redelivery backoff after a nack or an expired ack deadline."""

    minimum_backoff_s: int
    maximum_backoff_s: int


@dataclass(frozen=True)
class DeadLetterSpec:
    """Where a message goes after `max_delivery_attempts` deliveries (5..100)."""

    topic_id: str
    max_delivery_attempts: int


@dataclass(frozen=True)
class SubscriptionSpec:
    """A pull subscription that never expires and does not retain acked messages."""

    subscription_id: str
    topic_id: str
    ack_deadline_s: int
    message_retention_s: int
    retry_policy: RetryPolicySpec | None = None
    dead_letter: DeadLetterSpec | None = None
    enable_message_ordering: bool = False


@dataclass(frozen=True)
class Topology:
    """Topics and subscriptions; validated on construction."""

    topics: tuple[TopicSpec, ...]
    subscriptions: tuple[SubscriptionSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        topic_ids = {topic.topic_id for topic in self.topics}
        for sub in self.subscriptions:
            if sub.topic_id not in topic_ids:
                raise TopologyError(f"subscription {sub.subscription_id!r}: unknown topic {sub.topic_id!r}")
            if sub.dead_letter is None:
                continue
            if sub.dead_letter.topic_id not in topic_ids:
                raise TopologyError(
                    f"subscription {sub.subscription_id!r}: "
                    f"unknown dead-letter topic {sub.dead_letter.topic_id!r}"
                )
            if not 5 <= sub.dead_letter.max_delivery_attempts <= 100:
                raise TopologyError(
                    f"subscription {sub.subscription_id!r}: max_delivery_attempts "
                    f"{sub.dead_letter.max_delivery_attempts} outside 5..100"
                )
            if sub.enable_message_ordering:
                raise TopologyError(
                    f"subscription {sub.subscription_id!r}: ordering + dead letter is refused "
                    "(the emulator drops instead of dead-lettering; see topology.py)"
                )

    def topic(self, topic_id: str) -> TopicSpec:
        """The topic named `topic_id` (KeyError if absent)."""
        return {topic.topic_id: topic for topic in self.topics}[topic_id]

    def subscription(self, subscription_id: str) -> SubscriptionSpec:
        """The subscription named `subscription_id` (KeyError if absent)."""
        return {sub.subscription_id: sub for sub in self.subscriptions}[subscription_id]


MARKET_DATA_TOPIC = "market-data"
DEAD_LETTER_TOPIC = "market-data-dead-letter"
LOADER_SUBSCRIPTION = "market-data-loader"
DEAD_LETTER_AUDIT_SUBSCRIPTION = "market-data-dead-letter-audit"

MARKET_DATA_TOPOLOGY = Topology(
    topics=(
        # One day on the topic: a loader bug can be replayed by seeking a fresh subscription.
        TopicSpec(MARKET_DATA_TOPIC, message_retention_s=DAY_S),
        # Dead letters are rare and precious: keep a week on the topic itself.
        TopicSpec(DEAD_LETTER_TOPIC, message_retention_s=7 * DAY_S),
    ),
    subscriptions=(
        SubscriptionSpec(
            LOADER_SUBSCRIPTION,
            MARKET_DATA_TOPIC,
            # A sensor tick pulls, lands and acks well inside a minute.
            ack_deadline_s=60,
            message_retention_s=7 * DAY_S,
            retry_policy=RetryPolicySpec(minimum_backoff_s=1, maximum_backoff_s=60),
            dead_letter=DeadLetterSpec(DEAD_LETTER_TOPIC, max_delivery_attempts=5),
            enable_message_ordering=False,  # see the module docstring
        ),
        SubscriptionSpec(
            DEAD_LETTER_AUDIT_SUBSCRIPTION,
            DEAD_LETTER_TOPIC,
            ack_deadline_s=60,
            # 7 days is the emulator's maximum (GCP allows 31): longer would diverge from prod.
            message_retention_s=7 * DAY_S,
            retry_policy=RetryPolicySpec(minimum_backoff_s=10, maximum_backoff_s=600),
        ),
    ),
)


@dataclass
class EnsureResult:
    """Full resource names `ensure_topology` created, and those that already existed."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def ensure_topology(
    project_id: str,
    topology: Topology = MARKET_DATA_TOPOLOGY,
    *,
    kms_key_name: str | None = None,
    labels: dict[str, str] | None = None,
) -> EnsureResult:
    """Create the topics, then the subscriptions, that do not exist yet; existing ones are left alone.

    Uses the emulator when PUBSUB_EMULATOR_HOST is set, GCP otherwise. `kms_key_name` (CMEK) is
    applied to created topics; the emulator ignores it. Existing resources are not compared or
    updated: on GCP Terraform is the authority, and a local emulator always starts empty.
    """
    result = EnsureResult()
    with pubsub_v1.PublisherClient() as publisher:
        for topic in topology.topics:
            request = _topic_request(
                publisher.topic_path(project_id, topic.topic_id), topic, kms_key_name, labels
            )
            _create(lambda r=request: publisher.create_topic(request=r), request["name"], result)
    with pubsub_v1.SubscriberClient() as subscriber:
        for sub in topology.subscriptions:
            request = _subscription_request(project_id, sub, labels)
            _create(lambda r=request: subscriber.create_subscription(request=r), request["name"], result)
    log.info(
        "pubsub_topology_ensured project=%s created=%d existing=%d",
        project_id,
        len(result.created),
        len(result.existing),
    )
    return result


def _create(call: Callable[[], object], name: str, result: EnsureResult) -> None:
    try:
        call()
        result.created.append(name)
    except gexc.AlreadyExists:
        result.existing.append(name)


def _duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def _topic_request(
    name: str, topic: TopicSpec, kms_key_name: str | None, labels: dict[str, str] | None
) -> dict[str, object]:
    request: dict[str, object] = {"name": name, "labels": labels or {}}
    if topic.message_retention_s is not None:
        request["message_retention_duration"] = _duration(topic.message_retention_s)
    if kms_key_name:
        request["kms_key_name"] = kms_key_name
    return request


def _subscription_request(
    project_id: str, sub: SubscriptionSpec, labels: dict[str, str] | None
) -> dict[str, object]:
    request: dict[str, object] = {
        "name": f"projects/{project_id}/subscriptions/{sub.subscription_id}",
        "topic": f"projects/{project_id}/topics/{sub.topic_id}",
        "ack_deadline_seconds": sub.ack_deadline_s,
        "message_retention_duration": _duration(sub.message_retention_s),
        "retain_acked_messages": False,
        "enable_message_ordering": sub.enable_message_ordering,
        "expiration_policy": {},  # present but without ttl: never expires (default is 31 idle days)
        "labels": labels or {},
    }
    if sub.retry_policy is not None:
        request["retry_policy"] = {
            "minimum_backoff": _duration(sub.retry_policy.minimum_backoff_s),
            "maximum_backoff": _duration(sub.retry_policy.maximum_backoff_s),
        }
    if sub.dead_letter is not None:
        request["dead_letter_policy"] = {
            "dead_letter_topic": f"projects/{project_id}/topics/{sub.dead_letter.topic_id}",
            "max_delivery_attempts": sub.dead_letter.max_delivery_attempts,
        }
    return request
