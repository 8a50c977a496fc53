"""terraform/pubsub.tf and MARKET_DATA_TOPOLOGY describe the same topics and subscriptions.

Read with the small reader in hcl_reader.py (python-hcl2 is not a dependency); when python-hcl2
happens to be installed, the reader is also checked against it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPOLOGY
from tests.lib.pubsub.hcl_reader import read_blocks

TERRAFORM = Path(__file__).resolve().parents[3] / "terraform"


@pytest.fixture(scope="module")
def pubsub_tf() -> dict:
    return read_blocks((TERRAFORM / "pubsub.tf").read_text())


def _resources(blocks: dict, resource_type: str) -> dict[str, dict]:
    """Resources of one type keyed by Terraform name (e.g. market_data)."""
    return {key[2]: body for key, body in blocks.items() if key[:2] == ("resource", resource_type)}


def _topic_name(blocks: dict, reference: str) -> str:
    """The Pub/Sub name behind `google_pubsub_topic.<tf name>.id|name`."""
    kind, tf_name, _ = reference.split(".")
    assert kind == "google_pubsub_topic", reference
    return _resources(blocks, kind)[tf_name]["name"]


def _seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


def test_topics_match(pubsub_tf):
    topics = {body["name"]: body for body in _resources(pubsub_tf, "google_pubsub_topic").values()}
    assert set(topics) == {spec.topic_id for spec in MARKET_DATA_TOPOLOGY.topics}
    for spec in MARKET_DATA_TOPOLOGY.topics:
        body = topics[spec.topic_id]
        retention = body.get("message_retention_duration")
        assert (None if retention is None else _seconds(retention)) == spec.message_retention_s
        assert body["kms_key_name"] == "local.pubsub_kms_key_name"  # CMEK on every topic


def test_subscriptions_match(pubsub_tf):
    subs = {body["name"]: body for body in _resources(pubsub_tf, "google_pubsub_subscription").values()}
    assert set(subs) == {spec.subscription_id for spec in MARKET_DATA_TOPOLOGY.subscriptions}
    for spec in MARKET_DATA_TOPOLOGY.subscriptions:
        body = subs[spec.subscription_id]
        assert _topic_name(pubsub_tf, body["topic"]) == spec.topic_id
        assert body["ack_deadline_seconds"] == spec.ack_deadline_s
        assert _seconds(body["message_retention_duration"]) == spec.message_retention_s
        assert body["enable_message_ordering"] is spec.enable_message_ordering
        assert body["retain_acked_messages"] is False
        assert body["expiration_policy"] == {"ttl": ""}  # never expires, like ensure_topology's
        retry = body.get("retry_policy")
        if spec.retry_policy is None:
            assert retry is None
        else:
            assert _seconds(retry["minimum_backoff"]) == spec.retry_policy.minimum_backoff_s
            assert _seconds(retry["maximum_backoff"]) == spec.retry_policy.maximum_backoff_s
        dead_letter = body.get("dead_letter_policy")
        if spec.dead_letter is None:
            assert dead_letter is None
        else:
            assert _topic_name(pubsub_tf, dead_letter["dead_letter_topic"]) == spec.dead_letter.topic_id
            assert dead_letter["max_delivery_attempts"] == spec.dead_letter.max_delivery_attempts


def test_service_agent_can_dead_letter_and_use_the_key(pubsub_tf):
    agent = "local.pubsub_service_agent"
    topic_grants = {
        (_topic_name(pubsub_tf, body["topic"].replace(".name", ".id")), body["role"])
        for body in _resources(pubsub_tf, "google_pubsub_topic_iam_member").values()
        if body["member"] == agent
    }
    subs = _resources(pubsub_tf, "google_pubsub_subscription")
    sub_grants = {
        (subs[body["subscription"].split(".")[1]]["name"], body["role"])
        for body in _resources(pubsub_tf, "google_pubsub_subscription_iam_member").values()
        if body["member"] == agent
    }
    for spec in MARKET_DATA_TOPOLOGY.subscriptions:
        if spec.dead_letter is not None:
            assert (spec.dead_letter.topic_id, "roles/pubsub.publisher") in topic_grants
            assert (spec.subscription_id, "roles/pubsub.subscriber") in sub_grants
    [kms_grant] = _resources(pubsub_tf, "google_kms_crypto_key_iam_member").values()
    assert (kms_grant["role"], kms_grant["member"]) == ("roles/cloudkms.cryptoKeyEncrypterDecrypter", agent)


def test_every_variable_is_typed_and_described():
    for key, body in read_blocks((TERRAFORM / "variables.tf").read_text()).items():
        assert body.get("type") and body.get("description"), key


@pytest.mark.skipif(importlib.util.find_spec("hcl2") is None, reason="python-hcl2 not installed")
def test_reader_agrees_with_python_hcl2(pubsub_tf):  # pragma: no cover - only where hcl2 exists
    import hcl2

    with (TERRAFORM / "pubsub.tf").open() as handle:
        parsed = hcl2.load(handle)
    for resource in parsed["resource"]:
        for resource_type, named in resource.items():
            for tf_name, body in named.items():
                ours = pubsub_tf[("resource", resource_type, tf_name)]
                for attribute in ("name", "ack_deadline_seconds", "enable_message_ordering"):
                    if attribute in body:
                        assert ours[attribute] == body[attribute], (tf_name, attribute)
