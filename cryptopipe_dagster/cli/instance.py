"""The local Dagster instance under CRYPTOPIPE_HOME, shared by the CLI, `make dev` and tests."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from cryptopipe_dagster.lib.settings import Settings

# SQLite storage is Dagster's default; telemetry off because the machine may be offline.
DAGSTER_YAML = "telemetry:\n  enabled: false\n"
# One "materialization planned" event per asset for a run over a partition range, not one per
# partition: a dbt run over the demo's 1,877 Bitstamp days otherwise writes ~17k SQLite events
# (each its own commit) before it starts, minutes of the demo. Dagster's own switch; its cost on
# SQLite: a failed ranged run leaves its partitions "missing" rather than "failed" in the asset view
# (the run itself shows failed). Every process that creates runs on the local instance gets it.
LOCAL_INSTANCE_ENV = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the instance folder and point DAGSTER_HOME at it (unless the user already did); set
    LOCAL_INSTANCE_ENV for this process and what it starts."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    for name, value in LOCAL_INSTANCE_ENV.items():
        os.environ.setdefault(name, value)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance whose runs `dagster dev` shows."""
    prepare_dagster_home(settings)
    return dg.DagsterInstance.get()
