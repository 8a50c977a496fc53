"""`cryptopipe collect` as a user runs it: a process with /metrics, JSON logs, SIGTERM flush."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1
from typer.testing import CliRunner

from cryptopipe_dagster.cli import app
from cryptopipe_dagster.lib.pubsub.emulator import free_loopback_port
from cryptopipe_dagster.lib.pubsub.puller import pull_batch
from cryptopipe_dagster.lib.pubsub.topology import LOADER_SUBSCRIPTION
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR, SEED
from tests.waiting import wait_for

START = "2019-10-17T05:00:00Z"
runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--markets", "coinbaseexchange"], "coinbaseexchange"),
        (["--markets", "notanexchange:BTC/USD"], "notanexchange"),
        (["--markets", "kraken:BTC-USD-X"], "BTC-USD-X"),
        (["--markets", "kraken:BTC/USD", "--candles", "bitstamp:BTC/USD"], "bitstamp:BTC/USD"),
        (["--markets", "coinbaseexchange:BTC/USD", "--candles", "coinbaseexchange:BTC/USD"], "watchOHLCV"),
        (["--markets", "kraken:BTC/USD", "--duration", "-1"], "--duration"),
        (["--markets", "kraken:BTC/USD", "--stall-timeout", "0"], "stall_timeout_s"),
    ],
)
def test_bad_arguments_are_one_clear_line(args, named, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CRYPTOPIPE_HOME", str(tmp_path))
    result = runner.invoke(app, ["collect", *args])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and named in result.output and "Traceback" not in result.output


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(DATA_DIR, seed=SEED, now=START, stream_speed=60, stream_start=START) as server:
        yield server


def test_collect_serves_metrics_logs_json_and_flushes_on_sigterm(
    sim, market_data_project, pubsub_emulator, tmp_path
):
    metrics_port = free_loopback_port()
    env = {
        **os.environ,
        "CRYPTOPIPE_HOME": str(tmp_path),
        "CRYPTOPIPE_EXCHANGE_API_URL": sim.base_url,
        "CRYPTOPIPE_PUBSUB_PROJECT": market_data_project,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cryptopipe_dagster.cli",
            "collect",
            "--markets",
            "kraken:BTC/USD,bitstamp:BTC/USD",
            "--candles",
            "kraken:BTC/USD",
            "--metrics-port",
            str(metrics_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        metrics = _wait_for_published(metrics_port, timeout_s=60)
        assert 'cryptopipe_collector_records_received_total{exchange="kraken",kind="trades"' in metrics
        assert "cryptopipe_collector_queue_depth" in metrics and "cryptopipe_collector_reconnects" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    report = json.loads(stdout[stdout.index("{") :])
    assert report["records_published"] > 0 and report["unpublished_batches"] == 0
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    names = {e.get("event") for e in events}
    assert {"collector_started", "collector_stopped"} <= names and all("level" in e for e in events)
    checkpoint = json.loads((tmp_path / "collector" / "checkpoint.json").read_text())
    assert (
        checkpoint["kraken:BTC/USD"]["trades_ts_ms"] == report["checkpoint"]["kraken:BTC/USD"]["trades_ts_ms"]
    )
    # Everything counted as confirmed is in the subscription: the SIGTERM flush lost nothing.
    with pubsub_v1.SubscriberClient() as subscriber:
        path = f"projects/{market_data_project}/subscriptions/{LOADER_SUBSCRIPTION}"
        messages = []
        while batch := pull_batch(subscriber, path, 1000, 3.0):
            messages += batch
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in batch])
    assert len({m.batch_id for m in messages}) == report["batches_confirmed"]


def _wait_for_published(port: int, timeout_s: float) -> str:
    """The /metrics text once it shows confirmed trade and candle batches."""
    seen = {"text": ""}

    def published() -> bool:
        try:
            seen["text"] = (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            )
        except OSError:
            return False
        return (
            "cryptopipe_collector_batches_confirmed_total{" in seen["text"]
            and 'kind="candles"' in seen["text"]
        )

    assert wait_for(published, timeout_s), (
        f"no confirmed batches within {timeout_s} s:\n{seen['text'][-2000:]}"
    )
    return seen["text"]
