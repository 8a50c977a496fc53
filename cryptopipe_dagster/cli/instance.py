"""The local Dagster instance under CRYPTOPIPE_HOME, shared by the CLI, `make dev` and tests."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from cryptopipe_dagster.lib.settings import Settings

# SQLite storage is Dagster's default; telemetry off because the machine may be offline.
DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the instance folder and point DAGSTER_HOME at it (unless the user already did)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance whose runs `dagster dev` shows."""
    prepare_dagster_home(settings)
    return dg.DagsterInstance.get()
