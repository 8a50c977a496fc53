"""`cryptopipe dev` (make dev): the UI and the simulator come up, and every process it started
(dagster dev, webserver, daemon, code server, gRPC server, run workers, simulator) is gone within
seconds of SIGINT or SIGTERM, even with a run in flight, which kept the code servers alive for a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest
import requests

from cryptopipe_dagster.cli.simulator_process import free_port, simulator_is_up
from tests.waiting import ui_is_up, wait_for

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status stepStats { status } } } }"
# graceful stop (8 s at most) + linger + SIGTERM + SIGKILL waits, with slack for a busy machine
STOPPED_WITHIN_S = 30
# after cryptopipe dev exits: it only exits once its tree is gone, this is slack for the check
SURVIVOR_GRACE_S = 3


def start_dev(ui_port: int, sim_port: int, *, ignore_sigint: bool) -> subprocess.Popen:
    env = {**os.environ}
    env.pop("CRYPTOPIPE_EXCHANGE_API_URL", None)
    command = [sys.executable, "-m", "cryptopipe_dagster.cli", "dev", "--port", str(ui_port)]
    return subprocess.Popen(
        [*command, "--sim-port", str(sim_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # As a background shell job: SIGINT ignored, which children would inherit.
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
    )


def graphql(ui_port: int, query: str, variables: dict) -> dict:
    response = requests.post(
        f"http://127.0.0.1:{ui_port}/graphql", json={"query": query, "variables": variables}, timeout=120
    )
    response.raise_for_status()
    return response.json()["data"]


def start_long_run(ui_port: int) -> None:
    """Launch a year of coinbaseexchange candles and wait until its step executes: a run in flight
    is what kept the code server and its gRPC server alive after dagster dev had stopped (a run
    still importing the definitions stops at once, so it would prove nothing)."""
    tags = [
        {"key": "dagster/asset_partition_range_start", "value": "2019-01-01|coinbaseexchange"},
        {"key": "dagster/asset_partition_range_end", "value": "2019-12-31|coinbaseexchange"},
    ]
    selector = {
        "repositoryLocationName": "cryptopipe",
        "repositoryName": "__repository__",
        "jobName": "historical_candles_job",
    }
    params = {"selector": selector, "runConfigData": "{}", "executionMetadata": {"tags": tags}}
    launched = graphql(ui_port, LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    run: dict = {}

    def step_running_or_run_over() -> bool:
        run.update(graphql(ui_port, RUN_STATUS, {"id": run_id})["runOrError"])
        steps = [step["status"] for step in run["stepStats"]]
        return "IN_PROGRESS" in steps or run["status"] in ("SUCCESS", "FAILURE", "CANCELED")

    assert wait_for(step_running_or_run_over, 180), run
    assert run["status"] == "STARTED", f"the run should still be running: {run}"


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running; a zombie has exited (it only waits for init to reap it)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def command_lines(processes: list[psutil.Process]) -> list[str]:
    lines = []
    for process in processes:
        try:
            lines.append(f"{process.pid} {' '.join(process.cmdline())[:140]}")
        except psutil.NoSuchProcess:
            lines.append(f"{process.pid} (exited)")
    return lines


@pytest.mark.parametrize(
    ("stop_signal", "ignore_sigint"),
    [(signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["sigterm-in-background-job", "ctrl-c-to-foreground-group"],
)
def test_dev_starts_ui_and_simulator_and_stops_everything(cryptopipe_home, stop_signal, ignore_sigint):
    ui_port, sim_port = free_port(), free_port()
    process = start_dev(ui_port, sim_port, ignore_sigint=ignore_sigint)
    tree: list[psutil.Process] = []
    try:
        assert wait_for(lambda: ui_is_up(ui_port), 180), "Dagster UI did not come up"
        assert simulator_is_up(f"http://127.0.0.1:{sim_port}")
        start_long_run(ui_port)
        tree = psutil.Process(process.pid).children(recursive=True)
        recorded = "\n".join(command_lines(tree))
        assert "code-server start" in recorded and "api grpc" in recorded, recorded
        if stop_signal == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: cryptopipe dev and its simulator get it
        else:
            process.send_signal(stop_signal)
        process.wait(timeout=STOPPED_WITHIN_S)
        wait_for(lambda: not running(tree), SURVIVOR_GRACE_S)
        survivors = running(tree)
        assert not survivors, "outlived cryptopipe dev:\n" + "\n".join(command_lines(survivors))
        assert not ui_is_up(ui_port), "Dagster UI still answers after the stop"
        assert not simulator_is_up(f"http://127.0.0.1:{sim_port}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for leftover in running(tree):  # never leave a failed test's servers to the next test
            leftover.kill()
