"""Run the exchange simulator as a child process (the demo and `make dev` need it beside Dagster)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cryptopipe_dagster.lib.errors import CryptopipeError


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def simulator_is_up(base_url: str) -> bool:
    """True when a simulator answers its stats endpoint at base_url."""
    try:
        with urllib.request.urlopen(f"{base_url}/_sim/stats", timeout=1) as response:
            json.loads(response.read())
            return True
    except (OSError, ValueError):
        return False


def start_simulator(
    data_dir: Path,
    port: int,
    *,
    seed: int = 0,
    faults: str = "",
    derived_markets: int = 0,
    timeout_s: float = 60.0,
) -> subprocess.Popen:
    """Start `cryptopipe sim` and wait until it serves; raises if it exits or never answers."""
    command = [
        sys.executable,
        "-m",
        "cryptopipe_dagster.cli",
        "sim",
        "--port",
        str(port),
        "--data",
        str(data_dir),
        "--seed",
        str(seed),
    ]
    if faults:
        command += ["--faults", faults]
    if derived_markets:
        command += ["--derived-markets", str(derived_markets)]
    # A file, not a pipe: nobody drains a pipe while the simulator runs, and a full one would block it.
    log_file = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_file.seek(0)
            raise CryptopipeError(f"exchange simulator exited: {log_file.read()[-2000:]}")
        if simulator_is_up(base_url):
            return process
        time.sleep(0.2)
    process.terminate()
    raise CryptopipeError(f"exchange simulator did not answer on {base_url} within {timeout_s}s")


def stop_simulator(process: subprocess.Popen) -> None:
    """Terminate and reap the child."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def running_simulator(data_dir: Path, *, seed: int = 0, derived_markets: int = 0) -> Iterator[str]:
    """A fresh `cryptopipe sim` child on a free port for the block; yields its base URL."""
    port = free_port()
    process = start_simulator(Path(data_dir), port, seed=seed, derived_markets=derived_markets)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_simulator(process)
