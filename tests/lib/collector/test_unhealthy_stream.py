"""A stream that fails the same way again and again is a bug, not weather: it is marked unhealthy
(metric, one ERROR log with the stack) and retried slowly while the other markets carry on; and
cancelling the collector is never swallowed. Real collector, simulator and Pub/Sub emulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from cryptopipe_dagster.lib.collector import Collector, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.collector.streams import RepeatedError, Watch

GOOD, BROKEN = "kraken:BTC/USD", "kraken:DOGE/JPY"  # the simulator does not list DOGE/JPY


def _sample(collector: Collector, name: str, market: str, **labels: str) -> float | None:
    exchange, symbol = market.split(":")
    return collector.metrics.registry.get_sample_value(
        name, {"exchange": exchange, "symbol": symbol, **labels}
    )


def test_a_stream_failing_the_same_way_is_marked_unhealthy_and_the_others_carry_on(
    streaming_simulator, market_data_project, caplog
) -> None:
    settings = CollectorSettings(
        markets=(parse_market(GOOD), parse_market(BROKEN)),
        project_id=market_data_project,
        exchange_api_url=streaming_simulator.base_url,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.1,
        unhealthy_after=3,
        unhealthy_retry_s=60.0,
    )
    collector = Collector(settings, metrics_port=0)
    caplog.set_level(logging.INFO, logger="cryptopipe.collector")
    with CollectorThread(collector) as running:
        deadline = time.monotonic() + 60
        while not (
            _sample(collector, "cryptopipe_collector_stream_unhealthy", BROKEN, stream="trades") == 1
            and (
                _sample(
                    collector,
                    "cryptopipe_collector_records_received_total",
                    GOOD,
                    kind="trades",
                    transport="ws",
                )
                or 0
            )
            > 0
        ):
            assert time.monotonic() < deadline, "no unhealthy mark, or no trades on the healthy market"
            time.sleep(0.2)
        # The age is read at scrape time: it grows on the market that never delivers.
        age = "cryptopipe_collector_last_message_age_seconds"
        before = _sample(collector, age, BROKEN)
        time.sleep(1.0)  # a busy loop would also reconnect many more times in this second
        assert _sample(collector, age, BROKEN) >= before + 0.9
        report = running.stop()

    events = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    unhealthy = [e for e in events if e.get("event") == "stream_unhealthy"]
    assert len(unhealthy) == 1 and unhealthy[0]["market"] == BROKEN
    assert "BadSymbol" in unhealthy[0]["detail"] and "Traceback" in unhealthy[0]["stack"]
    reconnects = [e for e in events if e.get("event") == "reconnect" and e.get("market") == BROKEN]
    assert len(reconnects) == 3 and reconnects[-1]["delay_s"] == 60.0  # then it waits: retried slowly
    assert _sample(collector, "cryptopipe_collector_stream_unhealthy", GOOD, stream="trades") == 0
    assert report.records_published > 0 and report.unpublished_batches == 0


def test_the_streak_is_identical_errors_in_a_row() -> None:
    repeated = RepeatedError(3)
    assert [repeated.record("ValueError: x", received=False) for _ in range(3)] == [False, False, True]
    assert not repeated.record("ValueError: y", received=False)  # another error starts over
    assert not repeated.record(None, received=False)  # weather (stall, disconnect) is no streak
    for _ in range(2):
        repeated.record("ValueError: x", received=False)
    assert not repeated.record("ValueError: x", received=True)  # it got data: no streak


def test_cancelling_a_session_while_its_watch_winds_down_is_not_swallowed() -> None:
    """The session ends and waits for its pending watch call to finish cancelling; the collector
    is stopped (its task cancelled) right then: that cancellation must end the session."""
    reached: list[str] = []

    async def slow_to_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.5)  # e.g. closing a socket

    async def session() -> None:
        async with Watch(slow_to_cancel) as watch:
            await watch.next(0.01)  # the call is now pending
        reached.append("after the watch")  # only without a cancellation
        await asyncio.sleep(30)

    async def main() -> bool:
        task = asyncio.create_task(session())
        await asyncio.sleep(0.1)  # the session is inside the watch's exit, waiting for the call
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        return task.cancelled()

    assert asyncio.run(main()) and reached == []
