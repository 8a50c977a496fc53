"""fetch_trades_from against the exchange simulator over loopback, with unmodified async ccxt.

One replay (the clock frozen at START, `max` speed, 2500 trades per venue) feeds every test: once it
stopped, each venue's REST endpoints serve exactly up to the last emitted trade, so "the trades from
a time on" is the replay ledger's tail, which the fill must return for each venue's paging strategy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from cryptopipe_dagster.lib.collector.gap_fill import STRATEGIES, GapFill, fetch_trades_from
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR, SEED
from tests.simulator.ws_helpers import EXCHANGES, START, SYMBOL, pro, stopped, watch_until

START_MS = ccxt.Exchange.parse8601(START)
REPLAYED = 2_500  # > 2 pages of 1000, so Kraken and Coinbase must page
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(DATA_DIR, seed=SEED, now=START, stream_speed="max") as server:
        yield server


@pytest.fixture(scope="module")
def streamed(sim: SimulatorServer) -> dict[str, list[dict]]:
    """Replay REPLAYED trades of every venue to a ccxt.pro subscriber; the trades each one received."""
    sim.set_stream("max", START, stop_after=REPLAYED)

    async def drain(exchange_id: str) -> list[dict]:
        exchange = pro(exchange_id, sim.base_url)
        try:
            await watch_until(exchange, stopped(sim, exchange_id), timeout=30)
            # The last messages reach ccxt's cache without a pending watch; on a busy machine later.
            for _ in range(100):
                if len(exchange.trades[SYMBOL]) >= REPLAYED:
                    break
                await asyncio.sleep(0.1)
            return list(exchange.trades[SYMBOL])
        finally:
            await exchange.close()

    async def run() -> list[list[dict]]:
        return await asyncio.gather(*(drain(exchange_id) for exchange_id in EXCHANGES))

    received = dict(zip(EXCHANGES, asyncio.run(run()), strict=True))
    for exchange_id, trades in received.items():
        ledger = sim.emitted(exchange_id, SYMBOL)
        assert ledger["count"] == REPLAYED
        assert [int(t["id"]) for t in trades] == ledger["ids"]  # the stream saw the whole ledger
        assert trades[0]["timestamp"] >= START_MS
    return received


@pytest.fixture
def replay(sim: SimulatorServer, streamed: dict[str, list[dict]]) -> Iterator[dict[str, list[dict]]]:
    yield streamed
    sim.set_faults("")


def fill(sim: SimulatorServer, exchange_id: str, from_ms: int, **kwargs: int) -> GapFill:
    """fetch_trades_from with a fresh async ccxt client pointed at the simulator."""

    async def run() -> GapFill:
        exchange = getattr(ccxt_async, exchange_id)({"enableRateLimit": False, "timeout": 5000})
        point_exchange_at(exchange, sim.base_url)
        try:
            await exchange.load_markets()
            return await fetch_trades_from(exchange, SYMBOL, from_ms, **kwargs)
        finally:
            await exchange.close()

    return asyncio.run(run())


def expected_ids(trades: list[dict], from_ms: int) -> list[int]:
    # A fill keeps the whole second of from_ms: Bitstamp's REST times are whole seconds.
    return sorted(int(t["id"]) for t in trades if t["timestamp"] >= whole_second(from_ms))


def check_exact(result: GapFill, trades: list[dict], from_ms: int) -> None:
    ids = [int(t["id"]) for t in result.trades]
    assert len(ids) == len(set(ids)), "a fill returned a trade twice"
    assert sorted(ids) == expected_ids(trades, from_ms)
    assert all(t["symbol"] == SYMBOL and t["timestamp"] >= whole_second(from_ms) for t in result.trades)


def whole_second(ms: int) -> int:
    return ms - ms % 1000


def test_each_venue_has_its_strategy() -> None:
    assert STRATEGIES.get("kraken", "since") == "since"
    assert STRATEGIES["coinbaseexchange"] == "pages_back"
    assert STRATEGIES["bitstamp"] == "time_window"


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_fill_from_the_replay_start_is_the_whole_ledger(sim, replay, exchange_id) -> None:
    trades = replay[exchange_id]
    result = fill(sim, exchange_id, START_MS)
    check_exact(result, trades, START_MS)
    assert len(result.trades) == REPLAYED  # REST also serves trades before START: all dropped
    assert result.complete
    if exchange_id == "bitstamp":
        assert result.requests == 2  # the replay spans over an hour: the last hour, then the last day
    else:
        assert result.requests >= 3  # 2500 trades in pages of at most 1000


@pytest.mark.parametrize("exchange_id", EXCHANGES)
@pytest.mark.parametrize("position", [1, 1_234, 1_700, 2_400, REPLAYED - 1])
def test_fill_from_a_second_returns_the_ledger_tail(sim, replay, exchange_id, position) -> None:
    trades = replay[exchange_id]
    from_ms = whole_second(trades[position]["timestamp"])  # Bitstamp's REST times are whole seconds
    result = fill(sim, exchange_id, from_ms)
    check_exact(result, trades, from_ms)
    assert len(result.trades) >= REPLAYED - position and result.complete


@pytest.mark.parametrize("exchange_id", ["kraken", "coinbaseexchange"])
@pytest.mark.parametrize("position", [0, 999, 1_000, 1_001, 1_999, REPLAYED - 1])
def test_fill_from_a_millisecond_is_inclusive(sim, replay, exchange_id, position) -> None:
    # Kraken and Coinbase REST carry millisecond times: the boundary is exact, around page edges too.
    trades = replay[exchange_id]
    from_ms = trades[position]["timestamp"]
    result = fill(sim, exchange_id, from_ms)
    check_exact(result, trades, from_ms)
    assert int(trades[position]["id"]) in {int(t["id"]) for t in result.trades}


@pytest.mark.parametrize(
    ("exchange_id", "position"),
    [
        *(("coinbaseexchange", p) for p in (0, 999, 1_000, 1_001, 1_999, REPLAYED - 2)),
        ("kraken", 1_999),  # fewer than 1000 trades follow: one page is the whole answer
        ("kraken", REPLAYED - 2),
        # ccxt's Kraken asks from the whole second and drops what precedes `since` itself, so a
        # full page arrives short: the fill must page on anyway (it used to stop here).
        ("kraken", 0),
        ("kraken", 1_000),
    ],
)
def test_fill_from_just_after_a_trade_keeps_its_second_and_everything_after(
    sim, replay, exchange_id, position
) -> None:
    trades = replay[exchange_id]
    from_ms = trades[position]["timestamp"] + 1
    assert from_ms % 1000, "the boundary must fall inside a second for this test"
    result = fill(sim, exchange_id, from_ms)
    check_exact(result, trades, from_ms)
    assert len(result.trades) >= REPLAYED - position - 1 and result.complete


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_fill_after_the_last_trade_is_empty_and_complete(sim, replay, exchange_id) -> None:
    last = replay[exchange_id][-1]["timestamp"]
    result = fill(sim, exchange_id, whole_second(last) + 1000)
    assert result.trades == [] and result.complete


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_recent_gap_takes_one_request(sim, replay, exchange_id) -> None:
    trades = replay[exchange_id]
    from_ms = whole_second(trades[-100]["timestamp"])
    assert trades[-1]["timestamp"] - from_ms < 3_600_000  # within Bitstamp's last hour
    result = fill(sim, exchange_id, from_ms)
    check_exact(result, trades, from_ms)
    # Kraken pages until a page brings nothing new: one page of data, one to see it was the last.
    assert result.requests == (2 if STRATEGIES.get(exchange_id, "since") == "since" else 1)
    assert result.complete


def test_kraken_pages_forward_over_1000_trades(sim, replay) -> None:
    trades = replay["kraken"]
    from_ms = trades[0]["timestamp"]
    result = fill(sim, "kraken", from_ms)
    check_exact(result, trades, from_ms)
    assert len(result.trades) == REPLAYED and result.requests == 4  # 3 pages + one that adds nothing


def test_bitstamp_within_the_day_is_complete_after_two_requests(sim, replay) -> None:
    trades = replay["bitstamp"]
    newest = trades[-1]["timestamp"]
    from_ms = whole_second(newest - 2 * 3_600_000)  # older than the hour, inside the day
    result = fill(sim, "bitstamp", from_ms)
    check_exact(result, trades, from_ms)
    assert result.complete and result.requests == 2


@pytest.mark.parametrize("days", [1.5, 2, 30])
def test_bitstamp_older_than_a_day_is_incomplete(sim, replay, days) -> None:
    trades = replay["bitstamp"]
    newest = trades[-1]["timestamp"]
    from_ms = newest - int(days * DAY_MS)
    result = fill(sim, "bitstamp", from_ms)
    assert not result.complete and result.requests == 2
    times = [t["timestamp"] for t in result.trades]
    assert min(times) > from_ms and max(times) <= newest  # the last day only...
    assert result.unfilled == (from_ms, min(times))  # what is missing, for the gap ledger's evidence
    assert newest - min(times) <= DAY_MS
    served = {int(t["id"]) for t in result.trades}
    assert {int(t["id"]) for t in trades} <= served  # ...which still holds the whole (shorter) replay


def test_bitstamp_fill_from_a_millisecond_is_inclusive(sim, replay) -> None:
    trades = replay["bitstamp"]
    position = next(i for i in range(1_700, REPLAYED) if trades[i]["timestamp"] % 1000)
    from_ms = trades[position]["timestamp"]  # e.g. a checkpoint: the newest confirmed streamed trade
    result = fill(sim, "bitstamp", from_ms)
    assert int(trades[position]["id"]) in {int(t["id"]) for t in result.trades}
    check_exact(result, trades, from_ms)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_transient_server_errors_are_retried_and_counted(sim, replay, exchange_id) -> None:
    trades = replay[exchange_id]
    clean = fill(sim, exchange_id, START_MS)
    sim.set_faults("server_error@1,rate_limit@3", retry_after_s=0)
    faulted = fill(sim, exchange_id, START_MS)
    check_exact(faulted, trades, START_MS)
    assert faulted.complete
    assert faulted.requests == clean.requests + 2  # each failed attempt counts as a request


def test_persistent_errors_raise_after_the_attempts(sim, replay) -> None:
    sim.set_faults("server_error:1.0")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        fill(sim, "kraken", START_MS, attempts=3)
