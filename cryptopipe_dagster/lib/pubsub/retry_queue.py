"""A delay queue that re-publishes failed batches in publish order, one ordering key at a time.

Why not tenacity: tenacity wraps a blocking call, while a publish is a future that fails on the
client's commit thread; what is needed is "call this again later, after the earlier batches of the
same market". Backoff intervals still come from a library (google.api_core's full-jitter
exponential generator, used by the publisher).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
log = logging.getLogger("cryptopipe.pubsub.retry_queue")


@dataclass(order=True)
class _Entry(Generic[Item]):
    due: float
    seq: int
    group: str = field(compare=False)
    item: Item = field(compare=False)


class RetryQueue(Generic[Item]):
    """Runs `handler(items)` on a worker thread once an item is due.

    All queued items of the due item's group (ordering key) are handed over together, sorted by
    their `seq`, even those not due yet: a later batch of a market must not be re-published before
    an earlier one that happened to draw a longer backoff.
    """

    def __init__(self, handler: Callable[[list[Item]], None], name: str = "pubsub-retry") -> None:
        self._handler = handler
        self._heap: list[_Entry[Item]] = []
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, item: Item, *, seq: int, group: str, delay_s: float) -> None:
        """Queue `item` to be handled after `delay_s` seconds."""
        with self._condition:
            if self._stopped:
                raise RuntimeError("retry queue stopped")
            heapq.heappush(self._heap, _Entry(time.monotonic() + delay_s, seq, group, item))
            self._condition.notify()

    def __len__(self) -> int:
        with self._condition:
            return len(self._heap)

    def stop(self) -> list[Item]:
        """Stop the worker; return the items still queued (never handled)."""
        with self._condition:
            self._stopped = True
            leftovers = [entry.item for entry in sorted(self._heap, key=lambda e: e.seq)]
            self._heap.clear()
            self._condition.notify()
        self._thread.join(timeout=5)
        return leftovers

    def _run(self) -> None:
        while True:
            batch = self._next_due()
            if batch is None:
                return
            try:
                self._handler(batch)
            except Exception:  # keep the worker alive; the items stay outstanding and flush reports them
                log.exception("pubsub_retry_handler_failed items=%d", len(batch))

    def _next_due(self) -> list[Item] | None:
        with self._condition:
            while not self._stopped:
                wait_s = self._heap[0].due - time.monotonic() if self._heap else None
                if wait_s is not None and wait_s <= 0:
                    break
                self._condition.wait(timeout=wait_s)
            if self._stopped:
                return None
            group = self._heap[0].group
            taken = [entry for entry in self._heap if entry.group == group]
            self._heap = [entry for entry in self._heap if entry.group != group]
            heapq.heapify(self._heap)
        return [entry.item for entry in sorted(taken, key=lambda e: e.seq)]
