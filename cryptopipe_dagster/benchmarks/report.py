"""results.json, results.md (the table the README quotes) and PNG charts from a run's records."""

from __future__ import annotations

import json
from pathlib import Path

from cryptopipe_dagster.benchmarks.harness import Record
from cryptopipe_dagster.benchmarks.targets import target_rows, targets_markdown


def write_results(records: list[Record], machine: dict, out_dir: Path, command: str) -> dict[str, Path]:
    """Write the three outputs; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "charts").mkdir(exist_ok=True)
    targets = target_rows(records)
    payload = {
        "machine": machine,
        "command": command,
        "targets": targets,
        "results": [r.as_dict() for r in records],
    }
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    md_path = out_dir / "results.md"
    md_path.write_text(markdown(records, machine, command, targets))
    charts = write_charts(records, out_dir / "charts")
    return {"json": json_path, "markdown": md_path, **{f"chart:{p.stem}": p for p in charts}}


def _number(value: float | None, metric: str = "") -> str:
    if value is None:
        return "–"
    if "_per_s" in metric and value >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(records: list[Record], machine: dict, command: str, targets: list[dict] | None = None) -> str:
    """The speed targets, then one table row per record, machine facts above them."""
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    lines = [
        f"Measured with `{command}` on {machine.get('cores')} cores ({machine.get('cpu')}), "
        f"{machine.get('memory_gb')} GB, Python {machine.get('python')}; {versions}.",
        "Ratio > 1 means cryptopipe is better (throughput: ours / baseline; latency, time, memory: "
        "baseline / ours). Absolute numbers are from a shared machine; the ratios come from one run.",
        "",
        *(targets_markdown(targets) + [""] if targets else []),
        "| benchmark | size | metric | cryptopipe | baseline | baseline value | ratio | notes |",
        "|---|---:|---|---:|---|---:|---:|---|",
    ]
    for r in records:
        note = r.details.get("input") or r.details.get("scope") or r.details.get("note") or ""
        lines.append(
            f"| {r.benchmark} | {'' if r.size is None else f'{r.size:,}'} | {r.metric} | "
            f"{_number(r.value, r.metric)} | {r.baseline or '–'} | {_number(r.baseline_value, r.metric)} | "
            f"{'–' if r.ratio is None else f'{r.ratio:,.1f}×'} | {note} |"
        )
    return "\n".join(lines) + "\n"


def write_charts(records: list[Record], out_dir: Path) -> list[Path]:
    """One bar chart per benchmark: ours vs each baseline per (size, metric), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for benchmark in dict.fromkeys(r.benchmark for r in records):
        rows = [r for r in records if r.benchmark == benchmark]
        labels = [_label(r) for r in rows]
        ours = [r.value for r in rows]
        theirs = [r.baseline_value or 0 for r in rows]
        figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4.5))
        positions = range(len(rows))
        axis.bar([p - 0.2 for p in positions], ours, width=0.4, label="cryptopipe")
        axis.bar([p + 0.2 for p in positions], theirs, width=0.4, label="baseline")
        axis.set_xticks(list(positions), labels, fontsize=7)
        positive = [v for v in ours + theirs if v and v > 0]
        if positive and max(positive) / min(positive) > 50:
            axis.set_yscale("log")
        for p, r in zip(positions, rows, strict=True):
            if r.ratio:
                top = max(r.value, r.baseline_value or 0)
                axis.annotate(f"{r.ratio:,.1f}×", (p, top), ha="center", fontsize=8)
        axis.set_title(benchmark)
        axis.legend()
        figure.tight_layout()
        path = out_dir / f"{benchmark}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def _label(r: Record) -> str:
    size = "" if r.size is None else f"{r.size:,}"
    return f"{r.metric}\n{size} {r.details.get('input', '')}\nvs {r.baseline or '-'}"
