"""What a user sees in the UI: start dagster-webserver on the demo's instance, ask its GraphQL API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from cryptopipe_dagster.cli.simulator_process import free_port
from cryptopipe_dagster.defs.quality import candle_checks
from tests.waiting import ui_is_up, wait_for

# The session's demo run (fixture demo_home) lands on the first test: up to ~7 min on 2 busy cores.
pytestmark = pytest.mark.timeout(1800)

QUERY = """
query {
  assetNodes {
    assetKey { path }
    partitionKeysByDimension { name type partitionKeys }
    partitionStats { numMaterialized numPartitions numFailed }
    assetChecksOrError {
      ... on AssetChecks {
        checks { name executionForLatestMaterialization { status evaluation { success severity } } }
      }
    }
  }
}
"""


@pytest.fixture
def webserver(demo_home):
    port = free_port()
    env = {**os.environ, "CRYPTOPIPE_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    env.pop("CRYPTOPIPE_DUCKDB_PATH", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        wait_for(lambda: process.poll() is not None or ui_is_up(port), 180)
        if process.poll() is not None:
            pytest.fail(f"webserver exited: {process.stderr.read()[-3000:]}")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)


def test_graphql_shows_assets_partitions_and_check_results(webserver):
    response = requests.post(webserver, json={"query": QUERY}, timeout=120)
    response.raise_for_status()
    nodes = {tuple(n["assetKey"]["path"]): n for n in response.json()["data"]["assetNodes"]}
    candles = nodes[("raw", "candles")]
    dimensions = {d["name"]: d for d in candles["partitionKeysByDimension"]}
    assert set(dimensions) == {"date", "exchange"}
    assert dimensions["exchange"]["partitionKeys"] == ["bitstamp", "coinbaseexchange", "kraken"]
    assert dimensions["date"]["partitionKeys"][0] == "2014-11-28"
    assert candles["partitionStats"]["numMaterialized"] > 2000
    assert candles["partitionStats"]["numFailed"] == 0
    checks = {c["name"]: c for c in candles["assetChecksOrError"]["checks"]}
    assert set(candle_checks.CHECK_SPECS_DESCRIPTIONS) <= set(checks)
    for name in (candle_checks.UNIQUE_KEYS, candle_checks.SCHEMA):
        latest = checks[name]["executionForLatestMaterialization"]
        assert latest is not None and latest["evaluation"]["success"] is True
