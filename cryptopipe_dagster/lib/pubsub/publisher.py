"""`MarketDataPublisher`: micro-batches to the ``market-data`` topic, never silently dropped.

Two layers of retry. The client library retries transient RPC errors itself (with ordering keys
enabled it does so without a deadline). What it gives up on (a paused ordering key, a batch
cancelled because an earlier one of its market failed, NOT_FOUND while a topic is being created,
a retry deadline without ordering) comes back to us: after a full-jitter exponential backoff the
batch's ordering key is resumed (``resume_publish``) and the market's failed batches are
re-published in their original order. Only after `republish_attempts` attempts, or on an error
no retry can fix (invalid argument, permission, too large), does the batch fail. Nothing is
dropped: a failed batch fails its future and is listed, with its payload, by the next `flush()`
in a `PublishFailed`, which the caller can persist or hand back to `publish_encoded`.

Each market is an ordering key (``exchange:symbol``); see topology.py for why the loader's
subscription is nevertheless unordered.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import pandas as pd
import pyarrow as pa
from google.api_core import exceptions as gexc
from google.api_core.retry import exponential_sleep_generator
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError

from cryptopipe_dagster.lib.errors import PublisherClosed, PublishFailed
from cryptopipe_dagster.lib.pubsub.codec import EncodedBatch, RecordKind, encode_batch
from cryptopipe_dagster.lib.pubsub.publisher_client import PublisherSettings, make_publisher_client
from cryptopipe_dagster.lib.pubsub.retry_queue import RetryQueue
from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPIC

log = logging.getLogger("cryptopipe.pubsub.publisher")

# Errors a re-publish cannot fix: fail the batch at once instead of spending its attempts.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    gexc.InvalidArgument,
    gexc.PermissionDenied,
    gexc.Unauthenticated,
    MessageTooLargeError,
)


@dataclass(frozen=True)
class PublishFailure:
    """A batch that was not published: its payload, how often it was tried and why it failed."""

    batch: EncodedBatch
    attempts: int
    reason: str  # "error" or "timeout" (still outstanding when flush gave up)
    error: BaseException | None

    @property
    def batch_id(self) -> str:
        """The failed batch's deterministic id."""
        return self.batch.batch_id


@dataclass
class PublishStats:
    """Counters for run metadata."""

    published: int = 0  # batches confirmed by Pub/Sub
    attempt_errors: int = 0  # failed publish attempts, retried or final
    republished: int = 0  # re-publish attempts
    failed: int = 0  # batches given up on (reported by flush)


@dataclass
class _Pending:
    seq: int
    batch: EncodedBatch
    future: Future[str]
    backoff: Iterator[float]
    attempts: int = 0
    last_error: BaseException | None = field(default=None)
    settled: bool = False


class MarketDataPublisher:
    """Publishes one message per market micro-batch; ``with MarketDataPublisher(project) as p: ...``."""

    def __init__(
        self,
        project_id: str,
        topic_id: str = MARKET_DATA_TOPIC,
        settings: PublisherSettings | None = None,
    ) -> None:
        self.settings = settings or PublisherSettings()
        self.topic_path = f"projects/{project_id}/topics/{topic_id}"
        self._client = make_publisher_client(self.settings)
        self._ordering = self.settings.enable_message_ordering
        # Serializes client.publish calls; re-entrant because a re-publish holds it from resume_publish
        # through the last re-published batch, so no new batch of the market can slip in between.
        self._publish_lock = threading.RLock()
        self._state = threading.Condition()  # guards the fields below; notified when a batch settles
        self._outstanding: dict[int, _Pending] = {}
        self._failures: list[PublishFailure] = []
        self._stats = PublishStats()
        self._closed = False
        self._seq = itertools.count()
        self._retries: RetryQueue[_Pending] = RetryQueue(self._republish)

    def publish(self, records: pd.DataFrame | pa.Table, kind: RecordKind) -> Future[str]:
        """Encode one market's records (codec.encode_batch) and publish; the future yields the message id.

        InvalidBatch if the records cannot form a message; PublisherClosed after close().
        Blocks while flow control's outstanding limits are reached.
        """
        return self.publish_encoded(encode_batch(records, kind))

    def publish_encoded(self, batch: EncodedBatch) -> Future[str]:
        """Publish an already encoded batch (e.g. one listed by a PublishFailed)."""
        if self._closed:
            raise PublisherClosed(
                f"publisher of {self.topic_path} is closed; batch {batch.batch_id} not sent"
            )
        backoff = exponential_sleep_generator(
            self.settings.republish_initial_backoff_s, self.settings.republish_max_backoff_s
        )
        pending = _Pending(seq=next(self._seq), batch=batch, future=Future(), backoff=backoff)
        with self._state:
            self._outstanding[pending.seq] = pending
        self._submit(pending)
        return pending.future

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every batch published so far has succeeded or failed for good.

        Raises PublishFailed listing the batches that failed since the last flush, and those still
        outstanding after `timeout_s` (reason "timeout"; they stay tracked and may yet succeed).
        """
        deadline = time.monotonic() + timeout_s
        with self._state:
            while self._outstanding and (remaining := deadline - time.monotonic()) > 0:
                self._state.wait(remaining)
            failures, self._failures = self._failures, []
            timed_out = [
                PublishFailure(p.batch, p.attempts, "timeout", p.last_error)
                for p in self._outstanding.values()
            ]
        if failures or timed_out:
            raise PublishFailed(failures + timed_out)

    def close(self, timeout_s: float = 60.0) -> None:
        """Refuse new batches, flush (PublishFailed as in flush) and stop the client."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout_s)
        finally:
            for pending in self._retries.stop():
                self._settle(
                    pending, PublisherClosed(f"closed before batch {pending.batch.batch_id} was re-published")
                )
            self._client.stop()
            with self._state:
                abandoned = list(self._outstanding.values())
            for pending in abandoned:  # flush timed out on these; unblock whoever waits on them
                self._settle(
                    pending, PublisherClosed(f"closed with batch {pending.batch.batch_id} outstanding")
                )

    def stats(self) -> PublishStats:
        """A snapshot of the counters."""
        with self._state:
            return replace(self._stats)

    def __enter__(self) -> MarketDataPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _submit(self, pending: _Pending) -> None:
        pending.attempts += 1
        ordering_key = pending.batch.ordering_key if self._ordering else ""
        try:
            with self._publish_lock:
                client_future = self._client.publish(
                    self.topic_path, pending.batch.data, ordering_key=ordering_key, **pending.batch.attributes
                )
        except (RuntimeError, ValueError) as error:  # stopped client, oversized message
            self._settle(pending, error)
            return
        # Runs on the client's thread; synchronously if the future already failed (paused key).
        client_future.add_done_callback(lambda done: self._on_attempt_done(pending, done))

    def _on_attempt_done(self, pending: _Pending, done: Future[str]) -> None:
        error = done.exception()
        if error is None:
            self._settle(pending, None, done.result())
            return
        pending.last_error = error
        with self._state:
            self._stats.attempt_errors += 1
        if isinstance(error, PERMANENT_ERRORS) or pending.attempts >= self.settings.republish_attempts:
            self._settle(pending, error)
            return
        group = pending.batch.ordering_key if self._ordering else str(pending.seq)
        try:
            self._retries.schedule(pending, seq=pending.seq, group=group, delay_s=next(pending.backoff))
        except RuntimeError:  # closing: the retry queue is gone
            self._settle(pending, error)

    def _republish(self, pendings: list[_Pending]) -> None:
        key = pendings[0].batch.ordering_key
        with self._publish_lock:
            if self._ordering:
                # RuntimeError/ValueError: the key is not paused (or unknown), nothing to resume.
                with contextlib.suppress(RuntimeError, ValueError):
                    self._client.resume_publish(self.topic_path, key)
            for pending in pendings:
                log.warning(
                    "pubsub_republish topic=%s ordering_key=%s batch_id=%s attempt=%d error=%s",
                    self.topic_path,
                    key,
                    pending.batch.batch_id,
                    pending.attempts + 1,
                    type(pending.last_error).__name__,
                )
                with self._state:
                    self._stats.republished += 1
                self._submit(pending)

    def _settle(self, pending: _Pending, error: BaseException | None, message_id: str | None = None) -> None:
        with self._state:  # claim it: close() and a late client callback may race to settle
            if pending.settled:
                return
            pending.settled = True
        # The future is resolved outside our locks (its callbacks are the caller's code) but before
        # the batch leaves `_outstanding`, so a flush that returns has every future resolved.
        if error is None:
            pending.future.set_result(message_id or "")
        else:
            pending.future.set_exception(error)
            log.error(
                "pubsub_publish_failed topic=%s batch_id=%s attempts=%d error=%s",
                self.topic_path,
                pending.batch.batch_id,
                pending.attempts,
                f"{type(error).__name__}: {error}",
            )
        with self._state:
            self._outstanding.pop(pending.seq, None)
            if error is None:
                self._stats.published += 1
            else:
                self._failures.append(PublishFailure(pending.batch, pending.attempts, "error", error))
                self._stats.failed += 1
            self._state.notify_all()
