"""A collector on a background thread with its own event loop (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import threading

from cryptopipe_dagster.lib.collector.service import Collector, CollectorReport


class CollectorThread:
    """``with CollectorThread(collector) as running: ...; report = running.stop()``."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.report: CollectorReport | None = None
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="cryptopipe-collector", daemon=True)

    def start(self) -> CollectorThread:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self, timeout_s: float = 60.0) -> CollectorReport:
        """Ask the collector to stop (as SIGTERM does), wait for its flush; its report."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error
        if self.report is None:
            raise TimeoutError(f"collector did not stop within {timeout_s} s")
        return self.report

    def __enter__(self) -> CollectorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive():
            self.stop()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.report = self._loop.run_until_complete(self._run())
        except BaseException as error:  # noqa: BLE001 - handed to the caller by stop()
            self.error = error
        finally:
            self._started.set()
            self._loop.close()

    async def _run(self) -> CollectorReport:
        self._stop = asyncio.Event()
        self._started.set()
        return await self.collector.run(self._stop)
