"""The speed targets (one row each in results.json/.md): which record each is read from, the bound,
and whether this run meets it. A target whose record is missing from the run reads "not measured".

Where the benchmark times the part of the path that is not our code (core_path's floor: DuckDB's
INSERT, reading the dicts' fields), the row also carries the ceiling, the figure if our code took
no time at all: a target above it cannot be met by changing our code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptopipe_dagster.benchmarks.harness import Record


@dataclass(frozen=True)
class Target:
    """One row: `pick` finds the record, `field` is value or ratio, `bound` its minimum or maximum."""

    figure: str
    pick: Callable[[Record], bool]
    field: str  # "value" or "ratio"
    bound: float
    at_most: bool = False
    ceiling: Callable[[Record], float | None] = lambda record: None

    def row(self, records: list[Record]) -> dict:
        record = next((r for r in records if self.pick(r)), None)
        measured = None if record is None else getattr(record, self.field)
        met = (
            None if measured is None else (measured <= self.bound if self.at_most else measured >= self.bound)
        )
        ceiling = None if record is None else self.ceiling(record)
        return {
            "figure": self.figure,
            "measured": measured,
            "target": f"{'<=' if self.at_most else '>='} {_format(self.bound, self.field)}",
            "met": met,
            "ceiling": ceiling,
            "reachable_by_our_code": None if ceiling is None else ceiling >= self.bound,
        }


def _core(size: int, form: str, baseline: str) -> Callable[[Record], bool]:
    return lambda r: (
        r.benchmark == "core_path"
        and r.size == size
        and r.details.get("input") == form
        and r.baseline == baseline
    )


def _ceiling_rate(record: Record) -> float | None:
    return record.details.get("ceiling_rows_per_s")


def _ceiling_ratio(record: Record) -> float | None:
    ceiling = _ceiling_rate(record)
    return None if ceiling is None or not record.baseline_value else ceiling / record.baseline_value


def _collector(multiple: int) -> Callable[[Record], bool]:
    return lambda r: (
        r.benchmark == "collector" and r.size == multiple and r.metric == "messages_per_s_per_core"
    )


def _metric(benchmark: str, size: int, metric: str) -> Callable[[Record], bool]:
    return lambda r: r.benchmark == benchmark and r.size == size and r.metric == metric


TARGETS = (
    Target(
        "core path from Arrow, rows/s at 1e6",
        _core(1_000_000, "arrow", "per_row_txn"),
        "value",
        3e6,
        ceiling=_ceiling_rate,
    ),
    Target(
        "core path from Arrow, rows/s at 1e7",
        _core(10_000_000, "arrow", "per_row_txn"),
        "value",
        2.5e6,
        ceiling=_ceiling_rate,
    ),
    Target(
        "core path from Arrow vs dlt from Arrow at 1e6",
        _core(1_000_000, "arrow", "dlt_arrow"),
        "ratio",
        3.0,
        ceiling=_ceiling_ratio,
    ),
    Target(
        "core path from ccxt dicts, rows/s at 1e6",
        _core(1_000_000, "dicts", "per_row_txn"),
        "value",
        1.5e6,
        ceiling=_ceiling_rate,
    ),
    Target("collector trades per CPU-s vs bare ccxt.pro at 10x", _collector(10), "ratio", 0.8),
    Target("collector trades per CPU-s vs bare ccxt.pro at 100x", _collector(100), "ratio", 0.9),
    Target(
        "collector at 100 markets, share of one core",
        _metric("collector", 100, "cpu_share_of_one_core"),
        "value",
        0.5,
        at_most=True,
    ),
    Target(
        "collector at 100 markets, receive -> confirmed p99 (ms)",
        _metric("collector", 100, "p99_ms_100_markets"),
        "value",
        500,
        at_most=True,
    ),
    Target(
        "collector at 100 markets, peak RSS (MB)",
        _metric("memory", 100, "peak_rss_mb"),
        "value",
        250,
        at_most=True,
    ),
    Target(
        "historical backfill vs fetching alone",
        _metric("historical_backfill", 525_600, "candles_per_s"),
        "ratio",
        0.85,
    ),
)


def target_rows(records: list[Record]) -> list[dict]:
    """Every target's row for this run's records."""
    return [target.row(records) for target in TARGETS]


def targets_markdown(rows: list[dict]) -> list[str]:
    """The targets as a markdown table."""
    lines = [
        "| target figure | measured | target | met | if our code took no time |",
        "|---|---:|---:|---|---:|",
    ]
    for row in rows:
        measured = "not measured" if row["measured"] is None else _format(row["measured"], row["target"])
        met = "–" if row["met"] is None else ("yes" if row["met"] else "**no**")
        ceiling = "–" if row.get("ceiling") is None else _format(row["ceiling"], row["target"])
        if row.get("reachable_by_our_code") is False:
            ceiling += " (out of reach)"
        lines.append(f"| {row['figure']} | {measured} | {row['target']} | {met} | {ceiling} |")
    return lines


def _format(value: float, kind: str) -> str:
    if "ratio" in kind or "×" in kind:
        return f"{value:.2f}×"
    if value >= 1e5:
        return f"{value / 1e6:.2f} M"
    return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"
