"""The benchmark harness: records, timing with warm-up and repetitions, percentiles, machine facts.

A record is one (benchmark, size, metric, baseline) with our value, the baseline's and the ratio.
For throughput metrics (…_per_s) ratio = ours / baseline; for latency and cost metrics (…_ms, …_s,
…_mb) ratio = baseline / ours. Either way ratio > 1 means cryptopipe is better.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from rich.console import Console

console = Console(stderr=True)


@dataclass
class Record:
    """One line of results.json."""

    benchmark: str
    size: int | None
    metric: str
    value: float
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline_value is not None and self.value and self.baseline_value:
            higher_is_better = "_per_s" in self.metric
            ratio = self.value / self.baseline_value if higher_is_better else self.baseline_value / self.value
            self.ratio = round(ratio, 3)

    def as_dict(self) -> dict:
        """JSON-ready, numbers rounded to 4 significant digits."""
        out = asdict(self)
        for key in ("value", "baseline_value"):
            if isinstance(out[key], float):
                out[key] = float(f"{out[key]:.4g}")
        return out


def time_call(function: Callable[[], object], *, warmup: int = 1, repeat: int = 3) -> list[float]:
    """Wall seconds of `repeat` calls after `warmup` untimed ones (GC collected before each)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def best(times: list[float]) -> float:
    """The fastest repetition: on a shared machine the others measure the neighbours."""
    return min(times)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    values = np.asarray(seconds, dtype=float) * 1000
    return {f"p{q}_ms": float(np.percentile(values, q)) for q in (50, 95, 99)}


def latency_records(
    benchmark: str,
    size: int | None,
    ours: list[float],
    baseline: str | None,
    theirs: list[float] | None,
    details: dict | None = None,
    suffix: str = "",
) -> list[Record]:
    """p50/p95/p99 records (metric p95_ms, or p95_ms<suffix>) of two latency samples in seconds."""
    mine = percentiles_ms(ours)
    other = percentiles_ms(theirs) if theirs else {}
    return [
        Record(
            benchmark,
            size,
            metric + suffix,
            mine[metric],
            baseline,
            other.get(metric),
            details=dict(details or {}),
        )
        for metric in ("p50_ms", "p95_ms", "p99_ms")
    ]


def machine_facts() -> dict:
    """Cores, CPU, memory, Python and the versions that decide the numbers."""
    facts: dict = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    versions = {}
    for package in (
        "duckdb",
        "pandas",
        "pyarrow",
        "pandera",
        "numpy",
        "dagster",
        "dbt-core",
        "dbt-duckdb",
        "ccxt",
        "dlt",
        "google-cloud-pubsub",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    facts["versions"] = versions
    return facts


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median(values: list[float]) -> float:
    """statistics.median, named for the call sites."""
    return statistics.median(values)


def say(message: str) -> None:
    """Progress on screen (stderr), never in the results."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")
