"""Pub/Sub fixtures, a pytest plugin (tests/conftest.py): one emulator per session, a project per test.

`pubsub_emulator` is session-scoped and does not export PUBSUB_EMULATOR_HOST globally (other tests
must not silently talk to it); `pubsub_project` sets the variable for one test and hands out a
project id no other test uses, so tests share the emulator without sharing topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

from cryptopipe_dagster.lib.errors import EmulatorUnavailable
from cryptopipe_dagster.lib.pubsub.emulator import EMULATOR_HOST_ENV, PubSubEmulator
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """The Pub/Sub emulator on a free loopback port, started once per session."""
    try:
        emulator = PubSubEmulator(set_env=False).start()
    except EmulatorUnavailable as error:
        pytest.fail(str(error))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def pubsub_project(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A project id unique to this test, with PUBSUB_EMULATOR_HOST pointing at the emulator."""
    monkeypatch.setenv(EMULATOR_HOST_ENV, pubsub_emulator.host)
    return f"cryptopipe-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def market_data_project(pubsub_project: str) -> str:
    """`pubsub_project` with the production topology (MARKET_DATA_TOPOLOGY) created in it."""
    ensure_topology(pubsub_project)
    return pubsub_project


@pytest.fixture
def subscriber(pubsub_project: str) -> Iterator[pubsub_v1.SubscriberClient]:
    """A subscriber client bound to the emulator (created after the env var is set)."""
    with pubsub_v1.SubscriberClient() as client:
        yield client


@pytest.fixture
def admin_publisher(pubsub_project: str) -> Iterator[pubsub_v1.PublisherClient]:
    """A plain publisher client, for admin calls and for publishing raw (non-codec) messages."""
    with pubsub_v1.PublisherClient() as client:
        yield client
