"""The `hidden_span` fault: a venue's transient hole, seen through unmodified ccxt."""

from __future__ import annotations

import pytest

from tests.simulator.test_ccxt_faults import exchange  # noqa: F401 - the parametrized fixture
from tests.simulator.ws_helpers import START

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
SINCE = 1_546_300_800_000  # 2019-01-01
SPANS = {"coinbaseexchange": ("BTC/USD", "1h", HOUR_MS), "bitstamp": ("ETH/USD", "1d", DAY_MS)}


def times(client, limit: int = 20) -> list[int]:
    symbol, timeframe, _step = SPANS[client.id]
    return [row[0] for row in client.fetch_ohlcv(symbol, timeframe, SINCE, limit)]


def test_span_is_hidden_for_the_first_k_requests_then_served(exchange, fresh_sim) -> None:  # noqa: F811
    step = SPANS[exchange.id][2]
    hidden = {SINCE + 5 * step, SINCE + 6 * step, SINCE + 7 * step}
    fresh_sim.set_faults(
        "hidden_span:1", hide_from_ms=SINCE + 5 * step, hide_to_ms=SINCE + 8 * step, hide_requests=2
    )
    first, second, third = times(exchange), times(exchange), times(exchange)
    assert not hidden & set(first) and not hidden & set(second)
    assert hidden <= set(third) and len(third) == 20
    assert set(first) == set(third) - hidden  # nothing else is touched


def test_requests_outside_the_span_do_not_use_up_the_hole(exchange, fresh_sim) -> None:  # noqa: F811
    step = SPANS[exchange.id][2]
    far = SINCE + 100 * step
    fresh_sim.set_faults("hidden_span:1", hide_from_ms=far, hide_to_ms=far + step, hide_requests=1)
    assert len(times(exchange)) == 20  # does not cover the span: served whole, not counted
    symbol, timeframe, _ = SPANS[exchange.id]
    covering = [row[0] for row in exchange.fetch_ohlcv(symbol, timeframe, far - 5 * step, 10)]
    assert far not in covering and len(covering) == 9
    again = [row[0] for row in exchange.fetch_ohlcv(symbol, timeframe, far - 5 * step, 10)]
    assert far in again


@pytest.mark.parametrize("bad", [{"hide_requests": -1}, {"hide_from_ms": "x"}])
def test_control_endpoint_rejects_bad_hide_settings(fresh_sim, bad) -> None:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{fresh_sim.base_url}/_sim/faults",
        data=json.dumps({"spec": "hidden_span:1", **bad}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400


TRADE_VENUES = ("coinbaseexchange", "bitstamp", "kraken")


@pytest.mark.parametrize("exchange_id", TRADE_VENUES)
def test_trade_pages_get_the_same_transient_hole(connect, fresh_sim, exchange_id) -> None:
    fresh_sim.set_now(START)
    client = connect(exchange_id)
    client.load_markets()
    whole = sorted({t["timestamp"] for t in client.fetch_trades("BTC/USD")})
    assert len(whole) > 4
    hide_from, hide_to = whole[1], whole[-2]  # a span inside the page
    hidden = {ts for ts in whole if hide_from <= ts < hide_to}
    fresh_sim.set_faults("hidden_span:1", hide_from_ms=hide_from, hide_to_ms=hide_to, hide_requests=1)
    first = {t["timestamp"] for t in client.fetch_trades("BTC/USD")}
    again = {t["timestamp"] for t in client.fetch_trades("BTC/USD")}
    assert hidden and not first & hidden and first == set(whole) - hidden
    assert again == set(whole)
