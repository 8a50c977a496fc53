"""Stopping a child started with start_new_session=True: its whole process group, politely first."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen | None, term_grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL if it is still there after `term_grace_s`.

    Emulators start a JVM or a server from a launcher script: signalling the group reaches both,
    and nothing outside it (the group is the child's own session)."""
    if process is None or process.poll() is not None:
        return
    for sig, grace_s in ((signal.SIGTERM, term_grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
