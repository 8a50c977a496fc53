"""Synchronous pull for a Dagster sensor: bounded in time, never raising on a bad message.

A sensor tick must stay well inside its 60 s limit, so `pull_batch` stops at `timeout_s` whatever
happens: a pull that finds nothing ends at the deadline (the RPC's DEADLINE_EXCEEDED is "no
messages", not an error), transient errors are retried only inside the budget, and follow-up pulls
(the service may return fewer messages than asked while more are waiting) wait at most
`follow_up_timeout_s` (0: none, for a caller that loops anyway). A message that cannot be decoded
comes back as a poison `ReceivedBatch` with a reason code, for the caller to dead-letter and ack;
it never aborts the other messages.

Ack only after the batch is durably landed (STYLE.md: ack after durable); nack to have Pub/Sub
redeliver with the subscription's backoff (and dead-letter after max_delivery_attempts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1
from google.pubsub_v1.types import ReceivedMessage

from cryptopipe_dagster.lib.errors import AckFailed, PullFailed, UndecodableMessage
from cryptopipe_dagster.lib.pubsub.codec import decode_batch

log = logging.getLogger("cryptopipe.pubsub.puller")

_TRANSIENT_PULL_ERRORS = (
    gexc.Aborted,
    gexc.InternalServerError,
    gexc.ServiceUnavailable,
    gexc.Unknown,
    gexc.ResourceExhausted,
)
# Acknowledge/ModifyAckDeadline requests are capped at 512 KiB; ack ids are a few hundred bytes.
ACK_IDS_PER_REQUEST = 1_000
MAX_ACK_DEADLINE_S = 600


@dataclass(frozen=True)
class ReceivedBatch:
    """One pulled message: its batch's records, or why they could not be read (poison)."""

    message_id: str
    ack_id: str
    attributes: dict[str, str]
    ordering_key: str
    publish_time: datetime  # UTC, set by Pub/Sub
    delivery_attempt: int | None  # 1, 2, ...; None when the subscription has no dead-letter policy
    data: bytes  # the payload as received, kept for dead-lettering a poison message
    records: pd.DataFrame | None
    poison_reason: str | None = None  # stable reason code (codec.decode_batch) when records is None
    poison_detail: str | None = None

    @property
    def is_poison(self) -> bool:
        """True when the payload could not be decoded into records."""
        return self.poison_reason is not None

    @property
    def batch_id(self) -> str | None:
        """The publisher's deterministic batch id, if the attributes carry one."""
        return self.attributes.get("batch_id")


def pull_batch(
    subscriber: pubsub_v1.SubscriberClient,
    subscription_path: str,
    max_messages: int,
    timeout_s: float,
    *,
    follow_up_timeout_s: float = 1.0,
) -> list[ReceivedBatch]:
    """Pull up to `max_messages` messages within `timeout_s` seconds and decode them.

    Returns [] when nothing arrives in time. Raises PullFailed only when the first pull fails
    for good (unknown subscription, permission, service down for the whole budget); a later pull
    failing returns what was already received.
    """
    deadline = time.monotonic() + timeout_s
    received: list[ReceivedMessage] = []
    wait_s = timeout_s
    while len(received) < max_messages:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            break
        try:
            messages = _pull_once(
                subscriber, subscription_path, max_messages - len(received), min(wait_s, remaining)
            )
        except PullFailed:
            if not received:
                raise
            log.warning(
                "pubsub_follow_up_pull_failed subscription=%s kept=%d", subscription_path, len(received)
            )
            break
        if not messages:
            break
        received.extend(messages)
        if follow_up_timeout_s <= 0:
            break
        wait_s = follow_up_timeout_s
    batches = [_to_batch(message) for message in received]
    poison = sum(batch.is_poison for batch in batches)
    if batches:
        log.info(
            "pubsub_pulled subscription=%s messages=%d poison=%d", subscription_path, len(batches), poison
        )
    return batches


def ack(subscriber: pubsub_v1.SubscriberClient, subscription_path: str, ack_ids: Sequence[str]) -> None:
    """Acknowledge: the messages are done (call only once their batch is durably landed)."""
    for chunk in _chunks(ack_ids):
        _call(
            subscriber.acknowledge,
            {"subscription": subscription_path, "ack_ids": chunk},
            "acknowledge",
            len(chunk),
        )


def nack(subscriber: pubsub_v1.SubscriberClient, subscription_path: str, ack_ids: Sequence[str]) -> None:
    """Negative-acknowledge: redeliver after the retry policy's backoff (counts as a delivery attempt)."""
    modify_ack_deadline(subscriber, subscription_path, ack_ids, 0)


def modify_ack_deadline(
    subscriber: pubsub_v1.SubscriberClient,
    subscription_path: str,
    ack_ids: Sequence[str],
    ack_deadline_s: int,
) -> None:
    """Set the messages' ack deadline to `ack_deadline_s` from now (0 = nack, up to 600 = extend)."""
    if not 0 <= ack_deadline_s <= MAX_ACK_DEADLINE_S:
        raise ValueError(f"ack_deadline_s {ack_deadline_s} outside 0..{MAX_ACK_DEADLINE_S}")
    for chunk in _chunks(ack_ids):
        request = {
            "subscription": subscription_path,
            "ack_ids": chunk,
            "ack_deadline_seconds": ack_deadline_s,
        }
        _call(subscriber.modify_ack_deadline, request, "modify_ack_deadline", len(chunk))


def _pull_once(
    subscriber: pubsub_v1.SubscriberClient, subscription_path: str, max_messages: int, wait_s: float
) -> list[ReceivedMessage]:
    retry = Retry(
        initial=0.1,
        maximum=1.0,
        multiplier=2.0,
        predicate=if_exception_type(*_TRANSIENT_PULL_ERRORS),
        timeout=wait_s,
    )
    try:
        response = subscriber.pull(
            request={"subscription": subscription_path, "max_messages": max_messages},
            retry=retry,
            timeout=wait_s,
        )
    except gexc.DeadlineExceeded:
        return []  # nothing arrived within the wait: an empty pull, not a failure
    except gexc.RetryError as error:
        if isinstance(error.cause, gexc.DeadlineExceeded):
            return []
        raise PullFailed(f"pull from {subscription_path} kept failing: {error.cause}") from error
    except gexc.GoogleAPICallError as error:
        raise PullFailed(f"pull from {subscription_path} failed: {error}") from error
    return list(response.received_messages)


def _to_batch(received: ReceivedMessage) -> ReceivedBatch:
    message = received.message
    attributes = dict(message.attributes)
    records: pd.DataFrame | None = None
    reason = detail = None
    try:
        records = decode_batch(message.data, attributes)
    except UndecodableMessage as error:
        reason, detail = error.reason_code, error.detail
    except Exception as error:  # a poison message must never take the tick down with it
        reason, detail = "decode_error", f"{type(error).__name__}: {error}"
    if reason is not None:
        log.warning(
            "pubsub_poison_message message_id=%s reason=%s detail=%s",
            message.message_id,
            reason,
            (detail or "")[:200],
        )
    return ReceivedBatch(
        message_id=message.message_id,
        ack_id=received.ack_id,
        attributes=attributes,
        ordering_key=message.ordering_key,
        publish_time=message.publish_time,
        delivery_attempt=received.delivery_attempt or None,
        data=bytes(message.data),
        records=records,
        poison_reason=reason,
        poison_detail=detail,
    )


def _chunks(ack_ids: Sequence[str]) -> list[list[str]]:
    ids = list(ack_ids)
    return [ids[start : start + ACK_IDS_PER_REQUEST] for start in range(0, len(ids), ACK_IDS_PER_REQUEST)]


def _call(method: Callable[..., object], request: dict[str, object], name: str, count: int) -> None:
    try:
        method(request=request)
    except gexc.GoogleAPICallError as error:
        raise AckFailed(f"{name} of {count} message(s) failed: {error}") from error
    except gexc.RetryError as error:
        raise AckFailed(f"{name} of {count} message(s) kept failing: {error.cause}") from error
