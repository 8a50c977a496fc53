"""stop_tree: a graceful stop first, then SIGTERM/SIGKILL for what outlives it, orphans included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from cryptopipe_dagster.cli.process_tree import ProcessTree, stop_tree

# A grandchild like dagster's code servers on a busy stop: it ignores SIGINT and SIGTERM, and lives
# in a session of its own, so neither a signal to the parent's group nor the parent's exit ends it.
STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)
# The parent starts it, reports its pid once it ignores the signals, and dies on SIGINT.
PARENT = (
    "import subprocess, sys, time\n"
    f"child = subprocess.Popen([sys.executable, '-c', {STUBBORN!r}], stdout=subprocess.PIPE,"
    " start_new_session=True, text=True)\n"
    "child.stdout.readline()\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)
# A well-behaved parent and child: both end on SIGINT to the parent's group.
POLITE = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def start(script: str) -> tuple[subprocess.Popen, psutil.Process]:
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    return parent, psutil.Process(int(parent.stdout.readline()))


def gone(process: psutil.Process) -> bool:
    # An exited orphan may stay a zombie until init reaps it: exited all the same.
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_orphan_that_ignores_sigint_and_sigterm_is_killed():
    parent, grandchild = start(PARENT)
    try:
        tree = ProcessTree(parent.pid)
        began = time.monotonic()
        outcome = stop_tree(
            tree,
            lambda: parent.send_signal(signal.SIGINT),
            lambda: parent.poll() is not None,
            graceful_s=10,
            linger_s=0.5,
            terminate_s=1,
        )
        elapsed = time.monotonic() - began
        assert parent.poll() is not None  # stopped gracefully by the SIGINT
        assert gone(grandchild)  # though reparented to init once its parent died
        assert outcome.survivors == []
        assert [line.split()[0] for line in outcome.forced] == [str(grandchild.pid)]
        assert "outlived the graceful stop" in outcome.report()[0]
        # linger (not the whole graceful window) after the parent exited, then SIGTERM and SIGKILL
        assert elapsed < 6, elapsed
    finally:
        if not gone(grandchild):
            grandchild.kill()
        if parent.poll() is None:
            parent.kill()
        parent.wait()


def test_tree_that_stops_gracefully_is_not_forced():
    parent, child = start(POLITE)
    try:
        tree = ProcessTree(parent.pid)
        outcome = stop_tree(
            tree,
            lambda: os.killpg(parent.pid, signal.SIGINT),
            lambda: parent.poll() is not None,
            graceful_s=10,
            linger_s=5,
            terminate_s=1,
        )
        assert outcome.forced == [] and outcome.survivors == [] and outcome.report() == []
        assert gone(child)
    finally:
        if not gone(child):
            child.kill()
        if parent.poll() is None:
            parent.kill()
        parent.wait()
