"""The `payload_drift` fault through unmodified ccxt: a renamed or retyped field reaches the caller
as a value ccxt could not read, an added one changes nothing ccxt returns; the control endpoint
takes the drift settings and refuses bad ones."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.simulator.test_ccxt_faults import exchange  # noqa: F401 - the parametrized fixture

SINCE = 1_546_300_800_000  # 2019-01-01
SPANS = {"coinbaseexchange": ("BTC/USD", "1h"), "bitstamp": ("ETH/USD", "1d")}


def rows(client) -> list[list]:
    symbol, timeframe = SPANS[client.id]
    return client.fetch_ohlcv(symbol, timeframe, SINCE, 10)


@pytest.mark.parametrize("change", ["rename", "retype"])
def test_renamed_or_retyped_field_leaves_a_value_ccxt_cannot_read(exchange, fresh_sim, change) -> None:  # noqa: F811
    clean = rows(exchange)
    fresh_sim.set_faults("payload_drift@1", drift_change=change)
    drifted = rows(exchange)
    assert len(drifted) == len(clean) == 10
    assert all(None in row for row in drifted)  # every row: one position ccxt could not fill
    assert [row[0] for row in drifted] == [row[0] for row in clean]


def test_added_field_changes_nothing_ccxt_returns(exchange, fresh_sim) -> None:  # noqa: F811
    clean = rows(exchange)
    fresh_sim.set_faults("payload_drift@1", drift_change="add")
    assert rows(exchange) == clean


def test_share_drifts_only_part_of_the_rows(exchange, fresh_sim) -> None:  # noqa: F811
    fresh_sim.set_faults("payload_drift@1", drift_change="rename", drift_share=0.5)
    assert sum(None in row for row in rows(exchange)) == 5


def post_faults(base_url: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base_url}/_sim/faults",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def test_control_endpoint_sets_drift_settings(fresh_sim) -> None:
    body = {
        "spec": "payload_drift:1",
        "drift_change": "retype",
        "drift_fields": ["price"],
        "drift_share": 0.25,
    }
    settings = post_faults(fresh_sim.base_url, body)["settings"]
    assert (settings["drift_change"], settings["drift_fields"], settings["drift_share"]) == (
        "retype",
        ["price"],
        0.25,
    )


@pytest.mark.parametrize(
    "bad", [{"drift_change": "delete"}, {"drift_fields": "close"}, {"drift_share": 2}, {"drift_share": True}]
)
def test_control_endpoint_rejects_bad_drift_settings(fresh_sim, bad) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        post_faults(fresh_sim.base_url, {"spec": "payload_drift:1", **bad})
    assert raised.value.code == 400
