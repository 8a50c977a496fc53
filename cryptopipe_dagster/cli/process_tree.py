"""Stop every process a command started, including descendants that outlive a graceful stop.

Why this exists: `dagster dev` stops its webserver and daemon on SIGINT, but its code server
(`dagster code-server start`) and that server's `dagster api grpc` child do not stop promptly
while a run is in flight. The gRPC server waits for its runs to finish, then for in-flight calls
(up to the gRPC shutdown grace period, 60 s by default). Otherwise it exits only when its heartbeat
times out, about a minute later. By then dagster dev has exited and they have been reparented to
init, so walking down from our own pid no longer finds them. So `ProcessTree` records the tree before
the graceful stop and keeps growing it while the stop runs, and `stop_tree` escalates to SIGTERM
and then SIGKILL after bounded waits. psutil (a dependency of pandas-gbq, via dbt-bigquery) is used
because it knows parent links and start times portably, which keeps a reused pid from being
mistaken for one of ours.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

# dagster dev needs ~2-4 s to stop its webserver and daemon on a busy 2-core machine.
GRACEFUL_STOP_S = 8.0
# Once dagster dev has exited, what it left behind only waits for runs in flight or a heartbeat
# timeout: a short grace, so that Ctrl-C never means waiting a minute.
LINGER_S = 2.0
# dagster maps SIGTERM to its SIGINT handler, which a server already shutting down ignores: SIGKILL soon.
TERMINATE_S = 2.0
_POLL_S = 0.2


class ProcessTree:
    """Every process seen below `root_pid`, remembered after its parent exits and it moves to init."""

    def __init__(self, root_pid: int) -> None:
        self._root = psutil.Process(root_pid)
        # A dict as an ordered set: parents are recorded before their children, so they are signalled
        # first and cannot respawn a child that was just stopped.
        self._seen: dict[psutil.Process, None] = {}

    def record(self) -> list[psutil.Process]:
        """Add the current descendants of the root and of every process seen; return the live ones."""
        for parent in [self._root, *self.alive()]:
            try:
                children = parent.children(recursive=True)
            except psutil.Error:  # exited (or became inaccessible) since alive() looked
                continue
            for child in children:
                self._seen.setdefault(child, None)
        return self.alive()

    def alive(self) -> list[psutil.Process]:
        """The recorded processes still running (a zombie has exited: it only awaits its parent)."""
        return [process for process in self._seen if _is_running(process)]


def _is_running(process: psutil.Process) -> bool:
    # is_running() also compares start times, so a pid reused by a stranger counts as gone.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_until_gone(
    tree: ProcessTree, timeout_s: float, stopped: Callable[[], bool] = lambda: False, linger_s: float = 0.0
) -> list[psutil.Process]:
    """Poll (recording newcomers) until the tree is empty or `timeout_s` passes, or `linger_s`
    after `stopped()` first holds; return the survivors."""
    deadline = time.monotonic() + timeout_s
    survivors = tree.record()
    while survivors and time.monotonic() < deadline:
        if stopped():
            deadline = min(deadline, time.monotonic() + linger_s)
        time.sleep(_POLL_S)
        survivors = tree.record()
    return survivors


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:100]}"
    except psutil.Error:
        return str(process.pid)


def _force(processes: list[psutil.Process], method: Callable[[psutil.Process], None]) -> None:
    for process in processes:
        # A process that exited meanwhile raises NoSuchProcess: that is the goal, not an error.
        with contextlib.suppress(psutil.Error):
            method(process)  # psutil checks the start time first: never signals a reused pid


@dataclass(frozen=True)
class StopOutcome:
    """What stop_tree had to do: `forced` did not stop gracefully; `survivors` outlived even SIGKILL."""

    forced: list[str]  # "pid command line", described while the process was still there
    survivors: list[psutil.Process]

    def report(self) -> list[str]:
        """Lines for the console: nothing when every process stopped gracefully."""
        lines = []
        if self.forced:
            lines.append(f"stopped {len(self.forced)} process(es) that outlived the graceful stop:")
            lines += [f"  {description}" for description in self.forced]
        if self.survivors:
            lines.append(f"still running after SIGKILL: {', '.join(str(p.pid) for p in self.survivors)}")
        return lines


def stop_tree(
    tree: ProcessTree,
    graceful_stop: Callable[[], None],
    stopped: Callable[[], bool],
    *,
    graceful_s: float = GRACEFUL_STOP_S,
    linger_s: float = LINGER_S,
    terminate_s: float = TERMINATE_S,
) -> StopOutcome:
    """Stop gracefully, then SIGTERM and finally SIGKILL whatever of the tree is left.

    `stopped()` tells when the processes `graceful_stop()` addressed have exited; what they leave
    behind then gets `linger_s` more. The tree is recorded before `graceful_stop()` runs, because the
    processes it stops hand their children to init. Every wait is bounded: past graceful_stop(), at
    most graceful_s + 2 * terminate_s.
    """
    tree.record()
    graceful_stop()
    survivors = _wait_until_gone(tree, graceful_s, stopped, linger_s)
    forced: dict[psutil.Process, str] = {}
    for method in (psutil.Process.terminate, psutil.Process.kill):
        if not survivors:
            break
        forced.update({process: _describe(process) for process in survivors if process not in forced})
        _force(survivors, method)
        survivors = _wait_until_gone(tree, terminate_s)
    return StopOutcome(forced=list(forced.values()), survivors=survivors)
