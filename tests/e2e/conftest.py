"""The demo, run once per session as a user runs it, in an isolated CRYPTOPIPE_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_demo(home: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CRYPTOPIPE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "COLUMNS": "160",
    }
    for inherited in ("CRYPTOPIPE_EXCHANGE_API_URL", "CRYPTOPIPE_DUCKDB_PATH"):
        env.pop(inherited, None)
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "cryptopipe_dagster.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("demo") / "cryptopipe-home"
    result = run_demo(home)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "raw.candles" in result.stdout and "latest indicators" in result.stdout
    assert "raw.trades (live path)" in result.stdout
    reconciled = "reconciliation (trade-built vs exchange 1m candles): passed"
    assert reconciled in result.stdout, result.stdout[-3000:]
    return home
