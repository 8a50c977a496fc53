"""`cryptopipe bench`: run the selected benchmarks in order, then write results.json/.md and charts."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from cryptopipe_dagster.benchmarks.harness import Record, machine_facts, say
from cryptopipe_dagster.benchmarks.report import write_results
from cryptopipe_dagster.lib.errors import ConfigError

# name -> (module, keyword arguments of a full run, of a --quick run)
BENCHMARKS: dict[str, tuple[str, dict, dict]] = {
    "core_path": (
        "core_path",
        {
            "sizes": (100_000, 1_000_000, 10_000_000),
            "dict_sizes": (100_000, 1_000_000),
            "dlt_sizes": (100_000, 1_000_000),
            "dlt_dict_sizes": (100_000,),
        },
        {
            "sizes": (10_000,),
            "dict_sizes": (10_000,),
            "dlt_sizes": (10_000,),
            "dlt_dict_sizes": (10_000,),
            "repeat": 1,
            "seed_count": 5_000,
        },
    ),
    "microbatch_latency": ("microbatch", {"batches": 50}, {"batches": 3}),
    "end_to_end_freshness": ("freshness", {}, {"quick": True}),
    "collector": ("collector_bench", {}, {"quick": True}),
    "historical_backfill": ("backfill_bench", {}, {"quick": True}),
    "incremental_cost": ("incremental", {}, {"quick": True}),
    "memory": ("memory", {}, {"quick": True}),
}


def runner(name: str, quick: bool) -> Callable[[Path], list[Record]]:
    """The benchmark's run function with its full or quick arguments bound."""
    module_name, full, fast = BENCHMARKS[name]
    module = importlib.import_module(f"cryptopipe_dagster.benchmarks.{module_name}")
    kwargs = fast if quick else full
    return lambda data_dir: module.run(data_dir, **kwargs)


def run_benchmarks(names: list[str], data_dir: Path, out_dir: Path, *, quick: bool, command: str) -> dict:
    """Run `names` (all when empty) and write the outputs; returns the written paths."""
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    selected = [name for name in BENCHMARKS if not names or name in names]
    records: list[Record] = []
    started = time.monotonic()
    for position, name in enumerate(selected, start=1):
        say(f"[bold]{name}[/bold] ({position}/{len(selected)})")
        records += runner(name, quick)(data_dir)
    say(f"all benchmarks done in {time.monotonic() - started:.0f} s")
    if names:  # a partial run replaces its benchmarks' records and keeps the others' from before
        records = [r for r in previous_records(out_dir) if r.benchmark not in selected] + records
        order = list(BENCHMARKS)
        records.sort(key=lambda r: order.index(r.benchmark) if r.benchmark in order else len(order))
    return write_results(records, machine_facts(), out_dir, command)


def previous_records(out_dir: Path) -> list[Record]:
    """The records of an earlier results.json in `out_dir` (none if absent or unreadable)."""
    try:
        payload = json.loads((out_dir / "results.json").read_text())
        return [Record(**record) for record in payload["results"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
