"""The Pub/Sub checks of `cryptopipe doctor`: the topics and subscriptions of MARKET_DATA_TOPOLOGY
(dead-letter policies included) and the permissions the processes need on them.

The reads live behind lib/pubsub/inspect.py, imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptopipe_dagster.lib.doctor.findings import Diagnosis, needed_by, not_checkable, who_needs
from cryptopipe_dagster.lib.settings import Settings

if TYPE_CHECKING:  # the Pub/Sub client loads on first use, not on import
    from cryptopipe_dagster.lib.pubsub.inspect import PubSubInspector

PUBSUB_PROJECT_ENV = "CRYPTOPIPE_PUBSUB_PROJECT"
PUBSUB_EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
# The project the collector and the loader fall back to (defs/streaming/resources.py LOCAL_PROJECT;
# not imported from there: lib/ does not import Dagster definitions).
LOCAL_PUBSUB_PROJECT = "cryptopipe-local"
# Pub/Sub permissions per process; subscriptions.consume covers pull, ack and modifyAckDeadline.
TOPIC_PERMISSIONS = {"collector": {"market-data": ("pubsub.topics.publish",)}}
SUBSCRIPTION_PERMISSIONS = {"loader": {"market-data-loader": ("pubsub.subscriptions.consume",)}}


def diagnose_pubsub(
    settings: Settings, environ: Mapping[str, str], diagnosis: Diagnosis, timeout_s: float
) -> None:
    """The topology and the permissions on it, when the environment has a Pub/Sub path to check."""
    emulator_host = environ.get(PUBSUB_EMULATOR_ENV, "").strip()
    project = environ.get(PUBSUB_PROJECT_ENV, "").strip()
    if not project and settings.env == "prod":
        diagnosis.problem(
            "pubsub",
            f"{PUBSUB_PROJECT_ENV} is not set: the collector and the loader would use project "
            f"{LOCAL_PUBSUB_PROJECT!r}; set it to the production Pub/Sub project",
        )
        return
    if not project and not emulator_host:
        diagnosis.note(
            "pubsub",
            f"not checked: neither {PUBSUB_EMULATOR_ENV} nor {PUBSUB_PROJECT_ENV} is set (no live path here)",
        )
        return
    from cryptopipe_dagster.lib.pubsub.inspect import PubSubInspector, PubSubUnavailable

    pubsub = PubSubInspector(project or LOCAL_PUBSUB_PROJECT, emulator_host, timeout_s)
    try:
        with pubsub:
            existing = _check_pubsub_topology(pubsub, diagnosis)
            _check_pubsub_permissions(pubsub, existing, diagnosis)
    except PubSubUnavailable as error:
        where = f"the Pub/Sub emulator at {emulator_host}" if emulator_host else "Pub/Sub"
        hint = (
            f"check {PUBSUB_EMULATOR_ENV} and that the emulator runs"
            if emulator_host
            else "check the credentials"
        )
        diagnosis.problem("pubsub", f"cannot ask {where} for project {pubsub.project}: {error}; {hint}")


def _check_pubsub_topology(pubsub: PubSubInspector, diagnosis: Diagnosis) -> set[str]:
    """Topics and subscriptions of MARKET_DATA_TOPOLOGY; returns the paths of those that exist."""
    from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPOLOGY as topology

    hint = "create it (terraform apply; locally `cryptopipe live` creates the topology)"
    existing = set()
    for spec in topology.topics:
        path = pubsub.path("topics", spec.topic_id)
        if pubsub.get_topic(spec.topic_id) is None:
            diagnosis.problem("pubsub.topic", f"topic {path} does not exist: {hint}")
        else:
            existing.add(path)
    for spec in topology.subscriptions:
        path, topic = pubsub.path("subscriptions", spec.subscription_id), pubsub.path("topics", spec.topic_id)
        found = pubsub.get_subscription(spec.subscription_id)
        if found is None:
            diagnosis.problem(
                "pubsub.subscription", f"subscription {path} (on topic {topic}) does not exist: {hint}"
            )
            continue
        existing.add(path)
        if found.topic != topic:
            diagnosis.problem(
                "pubsub.subscription",
                f"{path} reads topic {found.topic or 'none'}, expected {topic}: "
                "a subscription cannot change topic; delete and recreate it",
            )
        dead_letter = spec.dead_letter
        expected = (
            (pubsub.path("topics", dead_letter.topic_id), dead_letter.max_delivery_attempts)
            if dead_letter
            else ("", 0)
        )
        policy = found.dead_letter_policy
        have = (policy.dead_letter_topic, policy.max_delivery_attempts if policy.dead_letter_topic else 0)
        if have != expected:
            diagnosis.problem(
                "pubsub.subscription",
                f"{path} dead-letter policy: expected {_dead_letter_text(expected)}, "
                f"found {_dead_letter_text(have)}; set it (terraform apply, "
                "or gcloud pubsub subscriptions update --dead-letter-topic ...)",
            )
    counts = f"{len(topology.topics)} topics, {len(topology.subscriptions)} subscriptions"
    diagnosis.checked.append(f"Pub/Sub {pubsub.project}: {counts}")
    return existing


def _dead_letter_text(policy: tuple[str, int]) -> str:
    topic, attempts = policy
    return f"{topic} after {attempts} attempts" if topic else "none"


def _check_pubsub_permissions(pubsub: PubSubInspector, existing: set[str], diagnosis: Diagnosis) -> None:
    from cryptopipe_dagster.lib.pubsub.inspect import PubSubNotCheckable

    checks = [
        ("topics", name, needed_by(TOPIC_PERMISSIONS, name))
        for name in sorted({name for names in TOPIC_PERMISSIONS.values() for name in names})
    ] + [
        ("subscriptions", name, needed_by(SUBSCRIPTION_PERMISSIONS, name))
        for name in sorted({name for names in SUBSCRIPTION_PERMISSIONS.values() for name in names})
    ]
    for kind, name, needed in checks:
        resource = pubsub.path(kind, name)
        if resource not in existing:  # reported as missing already
            continue
        try:
            missing = pubsub.missing_permissions(kind, name, sorted(needed))
        except PubSubNotCheckable as error:
            not_checkable(diagnosis, "pubsub.iam", pubsub.emulator, resource, error)
            return
        if missing:
            diagnosis.problem(
                "pubsub.iam",
                f"the current credentials lack {who_needs(needed, missing)} on {resource}: grant "
                "roles/pubsub.publisher (topic) or roles/pubsub.subscriber (subscription) to that process",
            )
