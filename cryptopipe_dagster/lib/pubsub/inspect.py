"""Read-only introspection of Pub/Sub for `cryptopipe doctor`: topics, subscriptions, and the
permissions the current credentials hold on them.

It lives in lib/pubsub/ because that is the one place allowed to import the Pub/Sub client
(STYLE.md: one seam per external system); lib/doctor/ turns its answers into findings.

Every call is a read (get / testIamPermissions), made once without retries and bounded by
`timeout_s`, so a doctor run against a dead endpoint ends in seconds. NOT_FOUND is an answer (None);
an unimplemented method raises `PubSubNotCheckable`; anything else that means "cannot ask" raises
`PubSubUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import grpc
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from cryptopipe_dagster.lib.errors import CryptopipeError

ResourceKind = Literal["topics", "subscriptions"]


class PubSubUnavailable(CryptopipeError):
    """Pub/Sub could not be asked (unreachable, refused, timed out, no credentials): the doctor
    reports this as one problem instead of guessing at what exists."""


class PubSubNotCheckable(CryptopipeError):
    """testIamPermissions is not implemented (the emulator answers UNIMPLEMENTED): the permissions
    are unknown, which the caller must not mistake for granted or for missing."""


class PubSubInspector:
    """Read-only Pub/Sub calls, without retries, each bounded by `timeout_s`; `with` opens the clients
    (on the emulator over plain gRPC when `emulator_host` is set, as defs/streaming/resources.py does).

    Read-only so that checking an environment can never change it; one attempt per call so that the
    time a check takes is bounded by the number of calls times `timeout_s`.
    """

    def __init__(self, project: str, emulator_host: str, timeout_s: float) -> None:
        self.project, self.emulator_host, self.timeout_s = project, emulator_host, timeout_s
        self.emulator = bool(emulator_host)

    def __enter__(self) -> PubSubInspector:
        try:
            if self.emulator:
                channel = grpc.insecure_channel(self.emulator_host)
                self.publisher = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))
                self.subscriber = pubsub_v1.SubscriberClient(
                    transport=SubscriberGrpcTransport(channel=channel)
                )
            else:
                self.publisher, self.subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        except auth_exceptions.GoogleAuthError as error:  # no credentials: cannot ask
            raise PubSubUnavailable(str(error)) from error
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self.publisher, self.subscriber:  # their exits close the channels
            pass

    def path(self, kind: ResourceKind, name: str) -> str:
        """`projects/<project>/<kind>/<name>`, the form the API takes and answers with."""
        return f"projects/{self.project}/{kind}/{name}"

    def get_topic(self, topic_id: str) -> pubsub_v1.types.Topic | None:
        """The topic `topic_id` of the project, or None when it does not exist."""
        return self._ask(self.publisher.get_topic, topic=self.path("topics", topic_id))

    def get_subscription(self, subscription_id: str) -> pubsub_v1.types.Subscription | None:
        """The subscription `subscription_id` of the project, or None when it does not exist."""
        return self._ask(
            self.subscriber.get_subscription, subscription=self.path("subscriptions", subscription_id)
        )

    def missing_permissions(self, kind: ResourceKind, name: str, permissions: list[str]) -> list[str]:
        """Those of `permissions` (in their order) the current credentials lack on the topic or
        subscription `name`; all of them when it does not exist. testIamPermissions answers for the
        caller only, so this checks the identity the doctor runs as."""
        client = self.publisher if kind == "topics" else self.subscriber
        response = self._ask(
            client.test_iam_permissions, resource=self.path(kind, name), permissions=permissions
        )
        granted = set(response.permissions) if response is not None else set()
        return [permission for permission in permissions if permission not in granted]

    def _ask(self, call: Callable, **request):
        """`call(request)`; None for NOT_FOUND."""
        try:
            return call(request=request, retry=None, timeout=self.timeout_s)
        except gexc.NotFound:
            return None
        except gexc.MethodNotImplemented as error:
            raise PubSubNotCheckable(f"gRPC {getattr(error.grpc_status_code, 'name', error.code)}") from error
        except gexc.GoogleAPIError as error:
            raise PubSubUnavailable(_one_line(error)) from error
        except auth_exceptions.GoogleAuthError as error:  # credentials that cannot be refreshed
            raise PubSubUnavailable(str(error)) from error


def _one_line(error: BaseException, limit: int = 200) -> str:
    # gRPC errors can carry multi-line debug strings; a finding is one line.
    text = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
