"""Pub/Sub layer: topology (mirrors terraform/pubsub.tf), micro-batch codec, publisher, puller, emulator."""

from cryptopipe_dagster.lib.pubsub.codec import (
    CONTENT_TYPE,
    SCHEMA_VERSION,
    EncodedBatch,
    RecordKind,
    decode_batch,
    encode_batch,
    market_ordering_key,
)
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher, PublishFailure, PublishStats
from cryptopipe_dagster.lib.pubsub.publisher_client import PublisherSettings
from cryptopipe_dagster.lib.pubsub.puller import ReceivedBatch, ack, modify_ack_deadline, nack, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import (
    DEAD_LETTER_AUDIT_SUBSCRIPTION,
    DEAD_LETTER_TOPIC,
    LOADER_SUBSCRIPTION,
    MARKET_DATA_TOPIC,
    MARKET_DATA_TOPOLOGY,
    DeadLetterSpec,
    EnsureResult,
    RetryPolicySpec,
    SubscriptionSpec,
    TopicSpec,
    Topology,
    ensure_topology,
)

__all__ = [
    "CONTENT_TYPE",
    "DEAD_LETTER_AUDIT_SUBSCRIPTION",
    "DEAD_LETTER_TOPIC",
    "LOADER_SUBSCRIPTION",
    "MARKET_DATA_TOPIC",
    "MARKET_DATA_TOPOLOGY",
    "SCHEMA_VERSION",
    "DeadLetterSpec",
    "EncodedBatch",
    "EnsureResult",
    "MarketDataPublisher",
    "PubSubEmulator",
    "PublishFailure",
    "PublishStats",
    "PublisherSettings",
    "ReceivedBatch",
    "RecordKind",
    "RetryPolicySpec",
    "SubscriptionSpec",
    "TopicSpec",
    "Topology",
    "ack",
    "decode_batch",
    "encode_batch",
    "ensure_topology",
    "market_ordering_key",
    "modify_ack_deadline",
    "nack",
    "pull_batch",
]
