"""PubSubEmulator: starts on a free port, answers, exports its host, stops with its JVM."""

from __future__ import annotations

import os
import urllib.request

import pytest

from cryptopipe_dagster.lib.errors import EmulatorUnavailable
from cryptopipe_dagster.lib.pubsub import emulator as emulator_module
from cryptopipe_dagster.lib.pubsub.emulator import EMULATOR_HOST_ENV, PubSubEmulator


def test_session_emulator_answers(pubsub_emulator):
    assert pubsub_emulator.host == f"127.0.0.1:{pubsub_emulator.port}"
    with urllib.request.urlopen(f"http://{pubsub_emulator.host}/", timeout=5) as response:
        assert response.read().strip() == b"Ok"
    assert (
        pubsub_emulator.data_dir / "env.yaml"
    ).read_text() == f"{EMULATOR_HOST_ENV}: {pubsub_emulator.host}\n"


def test_context_manager_sets_env_and_stops_cleanly(monkeypatch):
    monkeypatch.setenv(EMULATOR_HOST_ENV, "previous:1")
    with PubSubEmulator() as emulator:
        assert os.environ[EMULATOR_HOST_ENV] == emulator.host
        pid, data_dir = emulator.pid, emulator.data_dir
        assert pid is not None and data_dir.is_dir()
    assert os.environ[EMULATOR_HOST_ENV] == "previous:1"
    assert not data_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the JVM is gone (and reaped), not left behind


def test_missing_binary_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv(emulator_module.BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(emulator_module, "_SDK_ROOTS", (tmp_path,))
    with pytest.raises(EmulatorUnavailable, match="google-cloud-cli-pubsub-emulator"):
        PubSubEmulator().start()


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(EmulatorUnavailable, match="JAVA_HOME"):
        PubSubEmulator().start()
