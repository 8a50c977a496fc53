"""The Dagster daemon as a deployment runs it, for the demo, the freshness benchmark and tests.

As on Kubernetes: the project's code server (`dagster api grpc`) runs as a process of its own, and
`dagster-daemon run` on the local instance reaches it through a `grpc_server` workspace entry;
market_data_sensor is turned on with the same command the README gives users (`dagster sensor
start`). Sensor ticks and the runs the daemon launches then execute in that code server.

Why not let the daemon spawn the code server (as `workspace.yaml` would): a daemon-spawned server
shuts itself down when it misses the daemon's heartbeats for 20 s (a constant in Dagster), and
the daemon misses them when declarative automation evaluates thousands of partitions on 2 busy
cores. A standalone server has no heartbeat: it stops when we stop it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from cryptopipe_dagster.cli.instance import DAGSTER_YAML, LOCAL_INSTANCE_ENV
from cryptopipe_dagster.cli.process_tree import ProcessTree, stop_tree
from cryptopipe_dagster.cli.simulator_process import free_port
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.pubsub.emulator import EMULATOR_HOST_ENV
from cryptopipe_dagster.lib.settings import PACKAGE_DIR, Settings, warehouse_env
from cryptopipe_dagster.lib.warehouse import LandingArea

DEFINITIONS_MODULE = "cryptopipe_dagster.definitions"
LOCATION_NAME = "cryptopipe"  # as in workspace.yaml
CODE_SERVER_START_S = 120.0  # imports dbt, Dagster and the project on a busy 2-core machine
SENSOR = "market_data_sensor"
AUTOMATION_SENSOR = "marts_automation_sensor"
STOP_GRACE_S = 15.0  # for the daemon itself; its code server gets the process tree's short linger


def _dagster_command(*args: str) -> list[str]:
    # The console scripts beside this interpreter: the daemon runs in the project's own environment.
    return [str(Path(sys.executable).parent / args[0]), *args[1:]]


class LiveLoaderDaemon:
    """`dagster-daemon run` with market_data_sensor on; stops the daemon and its code servers on exit."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None  # dagster-daemon
        self.code_server: subprocess.Popen | None = None

    def __enter__(self) -> LiveLoaderDaemon:
        return self.start()

    def start(self) -> LiveLoaderDaemon:
        """Start the code server and the daemon, then turn the sensor on (returns once it is on)."""
        initialize_instance(self.env["DAGSTER_HOME"])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.code_server = self._spawn(code_server_command(self.port))
            wait_for_code_server(self.port, self.code_server)
            workspace = write_workspace(Path(self.env["DAGSTER_HOME"]), self.port)
            self.process = self._spawn(
                _dagster_command("dagster-daemon", "run", "-w", str(workspace), "--log-level", "warning")
            )
            start_sensor(self.env, workspace)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def alive(self) -> bool:
        """Whether the daemon and its code server are still running."""
        return all(p is not None and p.poll() is None for p in (self.process, self.code_server))

    def stop(self) -> None:
        """SIGINT to the daemon's process group, then to the code server's (it waits for a running
        tick or run); whatever is left of either tree is terminated. Stopping mid-tick is safe:
        nothing is acked before it is landed, and a landed batch is loaded by the next tick."""
        for name in ("process", "code_server"):
            process = getattr(self, name)
            setattr(self, name, None)
            if process is not None:
                _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    stop_tree(
        ProcessTree(process.pid),
        lambda: _signal_group(process.pid, signal.SIGINT),
        lambda: process.poll() is not None,
        graceful_s=STOP_GRACE_S,
    )
    if process.poll() is None:
        process.kill()
    process.wait()


def code_server_command(port: int) -> list[str]:
    """The project's code server on loopback, without a heartbeat (as a deployment runs it)."""
    return _dagster_command(
        "dagster",
        "api",
        "grpc",
        "--module-name",
        DEFINITIONS_MODULE,
        "--location-name",
        LOCATION_NAME,
        "--working-directory",  # as the daemon would give a server of workspace.yaml
        str(PACKAGE_DIR.parent),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    )


def wait_for_code_server(
    port: int, process: subprocess.Popen, timeout_s: float = CODE_SERVER_START_S
) -> None:
    """Until the code server answers a ping (it listens once the definitions are loaded)."""
    # The client and error Dagster's own `dagster api grpc-health-check` uses.
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"the code server exited ({process.returncode}); see its log")
        try:
            client.ping("")
            return
        except DagsterUserCodeUnreachableError:
            time.sleep(0.5)
    raise ConfigError(f"the code server did not answer on port {port} within {timeout_s:.0f}s")


def write_workspace(dagster_home: Path, port: int) -> Path:
    """A workspace with the running code server as its one location (for the daemon and the CLI)."""
    path = dagster_home / "daemon-workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {port}\n"
        f"      location_name: {LOCATION_NAME}\n"
    )
    return path


def daemon_env(
    settings: Settings, emulator_host: str, project: str, dagster_home: Path | None = None
) -> dict[str, str]:
    """What the daemon's code server needs to find the emulator, the warehouse and the instance
    (`dagster_home`, default settings.dagster_home, gets its dagster.yaml if it has none)."""
    home = dagster_home or settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return {
        EMULATOR_HOST_ENV: emulator_host,
        "CRYPTOPIPE_PUBSUB_PROJECT": project,
        "CRYPTOPIPE_HOME": str(settings.home),
        "CRYPTOPIPE_DUCKDB_PATH": str(settings.duckdb_path),
        "DAGSTER_HOME": str(home),
        **LOCAL_INSTANCE_ENV,
        **warehouse_env(settings),
    }


def events_cover_ledger(instance: dg.DagsterInstance, landing: LandingArea) -> bool:
    """Whether a runless raw/trades materialization was reported after the newest loaded trade batch,
    i.e. the sensor's events account for everything it loaded (it reports every few seconds)."""
    last_loaded = landing.last_loaded_at("trades")
    if last_loaded is None:
        return True
    records = instance.fetch_materializations(dg.AssetKey(["raw", "trades"]), limit=1).records
    return bool(records) and records[0].timestamp >= last_loaded.timestamp()


MART_KEYS = tuple(
    dg.AssetKey(["marts", name]) for name in ("ohlcv_1h", "ohlcv_1d", "indicators_1h", "indicators_1d")
)


def stale_mart_partitions(instance: dg.DagsterInstance, since: float) -> list[str]:
    """raw/candles partitions reported by market_data_sensor (runless) after `since` whose marts
    were not rebuilt after that report: what marts_automation_sensor still has to do."""
    candle_events = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["raw", "candles"]), after_timestamp=since),
        limit=10_000,
    ).records
    newest: dict[str, float] = {}
    for record in candle_events:
        partition = record.partition_key
        if record.run_id == "" and partition is not None:
            newest[partition] = max(newest.get(partition, 0.0), record.timestamp)
    stale = []
    for partition, reported_at in sorted(newest.items()):
        for key in MART_KEYS:
            rebuilt = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=key, asset_partitions=[partition], after_timestamp=reported_at
                ),
                limit=1,
            ).records
            if not rebuilt:
                stale.append(partition)
                break
    return stale


def automation_runs(instance: dg.DagsterInstance, since: float) -> tuple[int, list[str]]:
    """marts_automation_sensor's runs created after `since`: how many are still queued or running,
    and the ids of those that failed."""
    runs = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/sensor_name": AUTOMATION_SENSOR}, created_after=_utc(since))
    )
    in_flight = sum(1 for record in runs if not record.dagster_run.is_finished)
    failed = [record.dagster_run.run_id for record in runs if record.dagster_run.is_failure_or_canceled]
    return in_flight, failed


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


def initialize_instance(dagster_home: str) -> None:
    """Create the instance's storage once, here: the daemon and `dagster sensor start` both open a
    new SQLite instance at the same moment and would race to create its tables."""
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        instance.get_runs_count()
        instance.all_instigator_state()
        instance.fetch_materializations(dg.AssetKey(["raw", "trades"]), limit=1)


def start_sensor(env: dict[str, str], workspace: Path) -> None:
    """`dagster sensor start market_data_sensor` on the instance of `env`'s DAGSTER_HOME."""
    done = subprocess.run(
        _dagster_command("dagster", "sensor", "start", SENSOR, "-w", str(workspace)),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        raise ConfigError(f"dagster sensor start {SENSOR} failed: {(done.stderr or done.stdout)[-500:]}")


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
