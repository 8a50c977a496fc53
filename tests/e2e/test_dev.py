"""`cryptopipe dev` (make dev): the UI and the simulator come up, and both go away on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from cryptopipe_dagster.cli.simulator_process import free_port, simulator_is_up
from tests.waiting import ui_is_up, wait_for


def test_dev_starts_ui_and_simulator_and_stops_cleanly(cryptopipe_home):
    ui_port, sim_port = free_port(), free_port()
    env = {**os.environ}
    env.pop("CRYPTOPIPE_SIMULATOR_URL", None)
    # As a background shell job: SIGINT ignored, which children would inherit.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cryptopipe_dagster.cli",
            "dev",
            "--port",
            str(ui_port),
            "--sim-port",
            str(sim_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert wait_for(lambda: ui_is_up(ui_port), 180), "Dagster UI did not come up"
        assert simulator_is_up(f"http://127.0.0.1:{sim_port}")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
        assert wait_for(lambda: not ui_is_up(ui_port), 30), "Dagster UI still answers after SIGTERM"
        assert not simulator_is_up(f"http://127.0.0.1:{sim_port}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
