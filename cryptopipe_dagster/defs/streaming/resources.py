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

from cryptopipe_dagster.lib.pubsub.emulator import EMULATOR_HOST_ENV
from cryptopipe_dagster.lib.pubsub.topology import LOADER_SUBSCRIPTION

LOCAL_PROJECT = "cryptopipe-local"


class PubSubResource(dg.ConfigurableResource):
    """The loader subscription; `emulator_host` (host:port) talks to the emulator over plain gRPC."""

    project_id: str
    subscription: str = LOADER_SUBSCRIPTION
    emulator_host: str = ""
    max_messages: int = 500  # per tick
    pull_timeout_s: float = 20.0  # per tick; Dagster kills a sensor tick at 60 s
    max_batches_per_run: int = 200

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
    """Configured from the environment: CRYPTOPIPE_PUBSUB_PROJECT and PUBSUB_EMULATOR_HOST."""
    return PubSubResource(
        project_id=dg.EnvVar("CRYPTOPIPE_PUBSUB_PROJECT").get_value(LOCAL_PROJECT) or LOCAL_PROJECT,
        emulator_host=os.environ.get(EMULATOR_HOST_ENV, ""),
    )
