"""Fault specs parse strictly, decide deterministically, and new kinds plug into the registry."""

from __future__ import annotations

import pytest
import requests
from aiohttp import web

from cryptopipe_dagster.simulator.faults import (
    FAULT_HANDLERS,
    FaultPlan,
    FaultRule,
    fault_kinds,
    parse_fault_spec,
    register_fault,
)
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR

BUILTIN = {
    "rate_limit",
    "ip_ban",
    "server_error",
    "slow",
    "truncated",
    "truncated_body",
    "malformed",
    "duplicate_rows",
}


def test_builtin_kinds_are_registered() -> None:
    assert set(fault_kinds()) >= BUILTIN


def test_spec_parses_probabilities_and_exact_requests() -> None:
    plan = parse_fault_spec(" rate_limit:0.05, server_error:0.02,slow@3 ,ip_ban:0.001,truncated@1")
    assert plan.rules == (
        FaultRule("rate_limit", probability=0.05),
        FaultRule("server_error", probability=0.02),
        FaultRule("slow", at_request=3),
        FaultRule("ip_ban", probability=0.001),
        FaultRule("truncated", at_request=1),
    )
    assert parse_fault_spec("").rules == ()


@pytest.mark.parametrize(
    "token",
    ["rate_limit", "rate_limit:2", "rate_limit:x", "nope:0.1", "slow@0", "slow@-1", "slow@x", "slow@1:2"],
)
def test_bad_token_is_named(token: str) -> None:
    with pytest.raises(ValueError, match=token.replace("@", ".").replace(":", ".")):
        parse_fault_spec(f"server_error:0.1,{token}")


def test_decisions_are_a_function_of_seed_and_request_number() -> None:
    plan = parse_fault_spec("rate_limit:0.2,server_error:0.2,slow@7")
    first = [plan.decide(seed=11, request_number=n)[0] for n in range(1, 401)]
    assert first == [plan.decide(seed=11, request_number=n)[0] for n in range(1, 401)]
    assert first != [plan.decide(seed=12, request_number=n)[0] for n in range(1, 401)]
    assert first[6] == "slow"
    rate = first.count("rate_limit") / len(first)
    assert 0.12 < rate < 0.28
    assert 0.1 < first.count("server_error") / len(first) < 0.25  # after rate_limit had its chance


def test_exact_rule_wins_and_no_rule_means_no_fault() -> None:
    plan = FaultPlan((FaultRule("rate_limit", probability=1.0), FaultRule("slow", at_request=2)))
    assert [plan.decide(0, n)[0] for n in (1, 2, 3)] == ["rate_limit", "slow", "rate_limit"]
    assert FaultPlan().decide(0, 1)[0] is None


def test_a_new_kind_plugs_in_through_the_registry() -> None:
    @register_fault("teapot_test")
    async def teapot(ctx, produce) -> web.Response:
        return web.Response(status=299, text=str(ctx.rng.random()))

    try:
        with SimulatorServer(DATA_DIR, seed=5, faults="teapot_test@2") as server:
            url = f"{server.base_url}/coinbaseexchange/products/BTC-USD/candles?granularity=86400"
            statuses = [requests.get(url, timeout=5).status_code for _ in range(3)]
            assert statuses == [200, 299, 200]
            assert server.stats()["faults"] == {"teapot_test": 1}
    finally:
        FAULT_HANDLERS.pop("teapot_test")
