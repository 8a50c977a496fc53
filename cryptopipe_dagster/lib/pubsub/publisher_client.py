"""The google-cloud-pubsub PublisherClient as the publisher uses it: batching, flow control, RPC retry.

Batching: up to `max_messages` batches / `max_bytes` per publish request, sent after
`max_latency_s` at the latest. Flow control BLOCKs publish() once too much is outstanding, so a
stalled Pub/Sub slows the collector down instead of filling its memory. The RPC retry covers the
codes the library itself documents as transient; with message ordering enabled the library
stretches its deadline to infinity (a market's later batches must wait for the earlier one anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1

# The codes google-cloud-pubsub's own default publish retry treats as transient.
_TRANSIENT_RPC_ERRORS = (
    gexc.Aborted,
    gexc.Cancelled,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.ServiceUnavailable,
    gexc.Unknown,
)


@dataclass(frozen=True)
class PublisherSettings:
    """Client batching, flow control and retry knobs (defaults suit second-scale micro-batches)."""

    max_messages: int = 100  # batches per publish request
    max_bytes: int = 5_000_000  # per publish request; the service caps requests at 10 MB
    max_latency_s: float = 0.05  # how long a request waits to fill up
    flow_control_max_messages: int = 1_000  # outstanding batches before publish() blocks
    flow_control_max_bytes: int = 200_000_000  # outstanding bytes before publish() blocks
    rpc_timeout_s: float = 60.0  # per publish RPC attempt
    rpc_retry_deadline_s: float = 600.0  # client retry budget (ignored by the client with ordering)
    republish_attempts: int = 5  # our attempts per batch, the first publish included
    republish_initial_backoff_s: float = 0.5
    republish_max_backoff_s: float = 30.0
    enable_message_ordering: bool = True
    api_endpoint: str | None = None  # e.g. a locational endpoint, which keeps ordering keys in one region


def make_publisher_client(settings: PublisherSettings) -> pubsub_v1.PublisherClient:
    """A PublisherClient with `settings`' batching, blocking flow control and RPC retry."""
    retry = Retry(
        initial=0.1,
        maximum=10.0,
        multiplier=2.0,
        predicate=if_exception_type(*_TRANSIENT_RPC_ERRORS),
        timeout=settings.rpc_retry_deadline_s,
    )
    options = pubsub_v1.types.PublisherOptions(
        enable_message_ordering=settings.enable_message_ordering,
        flow_control=pubsub_v1.types.PublishFlowControl(
            message_limit=settings.flow_control_max_messages,
            byte_limit=settings.flow_control_max_bytes,
            limit_exceeded_behavior=pubsub_v1.types.LimitExceededBehavior.BLOCK,
        ),
        retry=retry,
        timeout=settings.rpc_timeout_s,
    )
    batching = pubsub_v1.types.BatchSettings(
        max_bytes=settings.max_bytes, max_latency=settings.max_latency_s, max_messages=settings.max_messages
    )
    client_options = {"api_endpoint": settings.api_endpoint} if settings.api_endpoint else None
    return pubsub_v1.PublisherClient(
        batch_settings=batching, publisher_options=options, client_options=client_options
    )
