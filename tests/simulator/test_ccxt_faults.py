"""How unmodified ccxt surfaces each injected fault — the contract the retry policy is built on."""

from __future__ import annotations

import ccxt
import pytest

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR

EXCHANGES = {"coinbaseexchange": ("BTC/USD", "1h"), "bitstamp": ("ETH/USD", "1d")}
SINCE = 1_546_300_800_000  # 2019-01-01


def fetch(exchange: ccxt.Exchange, limit: int = 20) -> list:
    symbol, timeframe = EXCHANGES[exchange.id]
    return exchange.fetch_ohlcv(symbol, timeframe, SINCE, limit)


@pytest.fixture(params=sorted(EXCHANGES))
def exchange(request, connect, fresh_sim) -> ccxt.Exchange:
    exchange = connect(request.param)
    exchange.load_markets()
    return exchange


@pytest.mark.parametrize(
    ("spec", "error", "status"),
    [
        ("rate_limit@1", ccxt.RateLimitExceeded, 429),
        ("ip_ban@1", ccxt.DDoSProtection, 418),
        ("server_error@1", ccxt.ExchangeNotAvailable, None),
    ],
)
def test_http_faults_map_to_ccxt_errors(exchange, fresh_sim, spec, error, status) -> None:
    fresh_sim.set_faults(spec, retry_after_s=7)
    with pytest.raises(error) as raised:
        fetch(exchange)
    assert isinstance(raised.value, ccxt.NetworkError)  # every one of them is retryable in ccxt's tree
    if status is not None:
        assert f" {status} " in str(raised.value)
        assert exchange.last_response_headers["Retry-After"] == "7"
    assert fetch(exchange)  # only the first data request was faulted


def test_slow_answer_times_out_the_client(exchange, fresh_sim) -> None:
    fresh_sim.set_faults("slow@1", slow_seconds=1.0)
    exchange.timeout = 250
    with pytest.raises(ccxt.RequestTimeout):
        fetch(exchange)
    exchange.timeout = 5000
    fresh_sim.set_faults("slow@1", slow_seconds=0.3)
    assert fetch(exchange)  # a patient client just waits


def test_truncated_body_is_a_network_error(exchange, fresh_sim) -> None:
    fresh_sim.set_faults("truncated@1")
    with pytest.raises(ccxt.NetworkError):
        fetch(exchange)
    assert len(fetch(exchange)) == 20


def test_truncated_but_well_framed_json_passes_silently(exchange, fresh_sim) -> None:
    """ccxt swallows unparsable JSON on a 200: an empty page comes back, no exception."""
    fresh_sim.set_faults("truncated_body@1")
    assert fetch(exchange) == []


def test_malformed_rows_reach_the_caller(exchange, fresh_sim) -> None:
    clean = fetch(exchange)
    outcomes = set()
    for n in range(1, 9):
        fresh_sim.set_faults(f"malformed@{n}")
        for _ in range(n - 1):
            fetch(exchange)
        page = fetch(exchange)  # ccxt raises nothing: validation is the pipeline's job
        outcomes.add("changed" if page != clean else "same")
    assert "changed" in outcomes


def test_duplicate_rows_repeat_inside_the_page(exchange, fresh_sim) -> None:
    fresh_sim.set_faults("duplicate_rows@1")
    page = fetch(exchange, limit=50)
    stamps = [row[0] for row in page]
    assert len(stamps) > len(set(stamps)) and min(stamps) == SINCE  # ccxt drops the overlap before `since`


def test_duplicate_rows_overlap_the_previous_page_on_the_wire(connect, fresh_sim) -> None:
    start = SINCE // 1000
    fresh_sim.set_faults("duplicate_rows@1,duplicate_rows@2")
    coinbase, bitstamp = connect("coinbaseexchange"), connect("bitstamp")
    candles = coinbase.publicGetProductsIdCandles({"id": "BTC-USD", "granularity": 3600, "start": start})
    ohlc = bitstamp.publicGetOhlcPair({"pair": "ethusd", "step": 86400, "limit": 10, "start": start})["data"][
        "ohlc"
    ]
    for stamps in ([row[0] for row in candles], [int(row["timestamp"]) for row in ohlc]):
        assert min(stamps) < start  # the tail of the page before
        assert len(stamps) > len(set(stamps))


def test_markets_endpoints_are_exempt_unless_included(connect, fresh_sim) -> None:
    fresh_sim.set_faults("server_error:1.0")
    for exchange_id in EXCHANGES:
        exchange = connect(exchange_id)
        exchange.load_markets()
        with pytest.raises(ccxt.ExchangeNotAvailable):
            fetch(exchange)
    fresh_sim.set_faults("server_error:1.0", include_markets=True)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        connect("coinbaseexchange").load_markets()


def outcome_sequence(base_url: str, exchange_id: str, requests: int = 25) -> list[str]:
    exchange = getattr(ccxt, exchange_id)({"enableRateLimit": False, "timeout": 5000})
    point_exchange_at(exchange, base_url)
    exchange.load_markets()
    outcomes = []
    for _ in range(requests):
        try:
            fetch(exchange, limit=3)
            outcomes.append("ok")
        except ccxt.BaseError as error:
            outcomes.append(type(error).__name__)
    return outcomes


def test_same_seed_same_fault_sequence(sim) -> None:
    spec = "rate_limit:0.2,server_error:0.2,ip_ban:0.1"
    with (
        SimulatorServer(DATA_DIR, seed=99, faults=spec) as first,
        SimulatorServer(DATA_DIR, seed=99) as second,
    ):
        second.set_faults(spec)
        a = outcome_sequence(first.base_url, "bitstamp")
        b = outcome_sequence(second.base_url, "bitstamp")
        assert a == b and len(set(a)) >= 3
        first.set_faults(spec)  # replacing the plan restarts the request count
        assert outcome_sequence(first.base_url, "bitstamp") == a
        stats = first.stats()
        assert stats["data_requests"] == 50 and sum(stats["faults"].values()) == 2 * (25 - a.count("ok"))
    with SimulatorServer(DATA_DIR, seed=100, faults=spec) as other:
        assert outcome_sequence(other.base_url, "bitstamp") != a
