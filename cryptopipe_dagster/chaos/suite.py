"""`cryptopipe chaos`: run scenarios with one seed, write chaos/report.json and print the table."""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptopipe_dagster.chaos.run import run_scenario
from cryptopipe_dagster.chaos.scenarios import BY_NAME, SCENARIOS, Scenario
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator

COLUMNS = ("scenario", "seed", "expected", "loaded", "lost", "duplicated", "extra", "recovery_s")


def pick(names: list[str]) -> list[Scenario]:
    """The named scenarios (all when none); ConfigError naming an unknown one."""
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise ConfigError(f"unknown chaos scenario(s) {unknown}; known: {sorted(BY_NAME)}")
    return [BY_NAME[name] for name in names] if names else list(SCENARIOS)


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 1_000_000)


def run_suite(
    scenarios: list[Scenario],
    seed: int,
    data_dir: Path,
    out_dir: Path,
    *,
    trades: int = 150,
    timeout_s: float = 240.0,
    say: Callable[[str], None] = print,
) -> list[dict]:
    """Every scenario with `seed` on one Pub/Sub emulator; the report is rewritten after each one,
    so an interrupted run keeps what it measured."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with PubSubEmulator() as emulator, tempfile.TemporaryDirectory(prefix="cryptopipe-chaos-") as work:
        for number, scenario in enumerate(scenarios, start=1):
            say(f"[{number}/{len(scenarios)}] {scenario.name}: {scenario.what}")
            work_dir = Path(work) / scenario.name
            row = run_scenario(scenario, seed, data_dir, work_dir, emulator.host, trades, timeout_s)
            rows.append(row)
            say("    " + ", ".join(f"{key} {row[key]}" for key in COLUMNS[2:]) + f" ({row['seconds']} s)")
            write_report(rows, out_dir)
    return rows


def write_report(rows: list[dict], out_dir: Path) -> Path:
    path = out_dir / "report.json"
    path.write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "report.md").write_text(table(rows) + "\n")
    return path


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join("–" if row[c] is None else str(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def passed(rows: list[dict]) -> bool:
    """Zero lost, zero duplicated, nothing extra, and every scenario recovered in time."""
    clean = ("lost", "duplicated", "extra")
    return all(not row["timed_out"] and not any(row[key] for key in clean) for row in rows)
