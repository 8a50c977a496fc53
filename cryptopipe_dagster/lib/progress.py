"""Progress of long work as structured log lines: fraction done, rows, rate and ETA."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol


class _Target(Protocol):
    start: Any
    end: Any


@dataclass
class ProgressSnapshot:
    """Where a multi-target job stands."""

    fraction: float
    rows: int
    rows_per_s: float
    eta_s: float | None

    def describe(self) -> str:
        eta = f"{self.eta_s:.0f}s" if self.eta_s is not None else "?"
        return f"progress={self.fraction:.1%} rows={self.rows} rate={self.rows_per_s:,.0f}/s eta={eta}"


class ProgressReporter:
    """Turns per-page callbacks into at most one log line every `interval_s` seconds."""

    def __init__(self, log: Any, targets: list[_Target], interval_s: float = 5.0) -> None:
        self.log = log
        self.targets = list(targets)
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.last_logged = self.started
        self.finished_rows: dict[int, int] = {}

    def snapshot(self, target: _Target, position: Any, rows: int) -> ProgressSnapshot:
        index = next((i for i, t in enumerate(self.targets) if t is target), 0)
        self.finished_rows[index] = rows
        span = (target.end - target.start) or 1
        within = min(1.0, max(0.0, (position - target.start) / span))
        fraction = (index + within) / max(1, len(self.targets))
        total_rows = sum(self.finished_rows.values())
        elapsed = max(1e-9, time.monotonic() - self.started)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        return ProgressSnapshot(fraction, total_rows, total_rows / elapsed, eta)

    def update(self, target: _Target, position: Any, rows: int) -> None:
        snapshot = self.snapshot(target, position, rows)
        now = time.monotonic()
        if now - self.last_logged >= self.interval_s:
            self.last_logged = now
            self.log.info(f"backfill {snapshot.describe()}")
