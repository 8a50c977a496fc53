"""`PubSubResource`: where the loader pulls from (the emulator locally, Pub/Sub in prod).

Registered with the other resources in defs/resources.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.pubsub.emulator import EMULATOR_HOST_ENV
from cryptopipe_dagster.lib.pubsub.topology import LOADER_SUBSCRIPTION

LOCAL_PROJECT = "cryptopipe-local"
TICK_SECONDS_ENV = "CRYPTOPIPE_LOADER_TICK_SECONDS"
# Long ticks: between two ticks (about a second under the daemon) nothing is pulled, so the longer a
# tick, the smaller the share of trades that wait for the next one.
DEFAULT_TICK_BUDGET_S = 30.0
# Dagster gives a sensor tick 60 s, and the loader may wait up to LOADER_LOCK_WAIT_S for a DuckDB file
# that another process holds at the tick's start and again in its last iteration: 10 + 35 + 10 < 60.
MAX_TICK_BUDGET_S = 35.0
LOADER_LOCK_WAIT_S = 10.0


class PubSubResource(dg.ConfigurableResource):
    """The loader subscription; `emulator_host` (host:port) talks to the emulator over plain gRPC."""

    project_id: str
    subscription: str = LOADER_SUBSCRIPTION
    emulator_host: str = ""
    max_messages: int = 1_000  # per pull
    pull_wait_s: float = 0.5  # longest wait of one pull for the first message
    tick_budget_s: float = DEFAULT_TICK_BUDGET_S  # how long one sensor tick loads (<= MAX_TICK_BUDGET_S)

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project_id}/subscriptions/{self.subscription}"

    @contextmanager
    def subscriber(self) -> Iterator[pubsub_v1.SubscriberClient]:
        """A subscriber client, closed on exit."""
        if self.emulator_host:
            transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(self.emulator_host))
            client = pubsub_v1.SubscriberClient(transport=transport)
        else:
            client = pubsub_v1.SubscriberClient()
        with client:
            yield client


def pubsub_resource() -> PubSubResource:
    """Configured from the environment: CRYPTOPIPE_PUBSUB_PROJECT, PUBSUB_EMULATOR_HOST and
    CRYPTOPIPE_LOADER_TICK_SECONDS (how long one market_data_sensor tick loads; default 30)."""
    return PubSubResource(
        project_id=dg.EnvVar("CRYPTOPIPE_PUBSUB_PROJECT").get_value(LOCAL_PROJECT) or LOCAL_PROJECT,
        emulator_host=os.environ.get(EMULATOR_HOST_ENV, ""),
        tick_budget_s=tick_budget_from_env(),
    )


def tick_budget_from_env() -> float:
    """CRYPTOPIPE_LOADER_TICK_SECONDS as a number in (0, 35]; ConfigError naming the bad value."""
    raw = os.environ.get(TICK_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_TICK_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_TICK_BUDGET_S:  # also refuses NaN
        raise ConfigError(
            f"{TICK_SECONDS_ENV}={raw!r} must be a number of seconds in (0, {MAX_TICK_BUDGET_S:g}]"
        )
    return value
