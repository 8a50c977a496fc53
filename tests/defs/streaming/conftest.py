"""Reuse the Pub/Sub emulator fixtures (one emulator per session, a fresh project per test)."""

from tests.lib.pubsub.conftest import (  # noqa: F401
    admin_publisher,
    market_data_project,
    pubsub_emulator,
    pubsub_project,
    subscriber,
)
