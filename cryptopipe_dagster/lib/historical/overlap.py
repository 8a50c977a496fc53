"""Fetch and process at the same time: the backfill's normalize + load run on one worker thread
while the calling thread fetches the next pages.

Order is kept (one worker, first in first out), so a checkpoint is still written only after the
rows it covers, and a failure on either side stops the backfill with what was loaded recorded.
The overlap pays on two cores because the worker's time is mostly in code that releases the GIL
(Arrow, Polars, NumPy, DuckDB, the BigQuery client) while the fetch thread parses JSON in ccxt.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType


class OrderedWorker:
    """Runs submitted calls in order on one thread; at most `depth` wait, so memory stays bounded.

    inline: run each call in the caller's thread instead (no overlap; a profiler that samples one
    thread then sees every call). busy_s: seconds spent in the calls so far."""

    def __init__(self, depth: int = 2, name: str = "cryptopipe-load", *, inline: bool = False) -> None:
        self._depth = depth
        self._inline = inline
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._futures: deque[Future] = deque()
        self.busy_s = 0.0  # written only by the one thread that runs the calls

    def submit(self, function: Callable[..., object], *args: object) -> None:
        """Queue `function(*args)`; waits while `depth` calls are queued; re-raises a failed one."""
        if self._inline:
            self._timed(function, *args)
            return
        while self._futures and (self._futures[0].done() or len(self._futures) >= self._depth):
            self._futures.popleft().result()
        self._futures.append(self._pool.submit(self._timed, function, *args))

    def _timed(self, function: Callable[..., object], *args: object) -> None:
        started = time.perf_counter()
        try:
            function(*args)
        finally:
            self.busy_s += time.perf_counter() - started

    def drain(self) -> None:
        """Wait for every queued call; the first failure is raised."""
        while self._futures:
            self._futures.popleft().result()

    def __enter__(self) -> OrderedWorker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.drain()
            else:  # the fetch failed: finish the queued loads (their rows are durable), keep its error
                for future in self._futures:
                    future.exception()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=False)
