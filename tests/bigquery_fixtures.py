"""BigQuery emulator fixtures, a pytest plugin (tests/conftest.py): one emulator per session, a
dataset prefix per test.

`bigquery_emulator` is session-scoped and exports nothing; `bigquery_env` points one test at it
(CRYPTOPIPE_WAREHOUSE=bigquery, project, endpoint) with a dataset prefix no other test uses, so tests
share the emulator without sharing tables. A missing emulator fails the test: nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cryptopipe_dagster.lib.errors import EmulatorUnavailable
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse.bigquery_emulator import BigQueryEmulator

EMULATOR_PROJECT = "cryptopipe-test"


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[BigQueryEmulator]:
    """The BigQuery emulator on free loopback ports, started once per session."""
    try:
        emulator = BigQueryEmulator(project=EMULATOR_PROJECT).start()
    except EmulatorUnavailable as error:
        pytest.fail(str(error))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def bigquery_env(bigquery_emulator: BigQueryEmulator, cryptopipe_home, monkeypatch) -> Settings:
    """Settings (and environment, for child processes such as dbt) of a BigQuery warehouse on the
    emulator, under a dataset prefix unique to this test."""
    monkeypatch.setenv("CRYPTOPIPE_WAREHOUSE", "bigquery")
    monkeypatch.setenv("CRYPTOPIPE_GCP_PROJECT", EMULATOR_PROJECT)
    monkeypatch.setenv("CRYPTOPIPE_BIGQUERY_ENDPOINT", bigquery_emulator.endpoint)
    monkeypatch.setenv("CRYPTOPIPE_BQ_DATASET_PREFIX", f"t{uuid.uuid4().hex[:8]}_")
    return load_settings()
