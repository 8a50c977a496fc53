"""The benchmark harness: the JSON shape runs are compared by, ratios, the report files.
No timing is asserted here (benchmarks measure; tests check that they measure the right thing)."""

from __future__ import annotations

import json

import pytest

from cryptopipe_dagster.benchmarks.harness import Record, latency_records, machine_facts
from cryptopipe_dagster.benchmarks.report import write_results
from cryptopipe_dagster.benchmarks.run import BENCHMARKS, run_benchmarks
from cryptopipe_dagster.lib.errors import ConfigError

REQUIRED = {"benchmark", "size", "metric", "value", "baseline", "baseline_value", "ratio"}


def test_ratio_is_better_than_one_when_we_are_better() -> None:
    assert Record("core_path", 10, "rows_per_s", 2e6, "per_row_txn", 1e3).ratio == 2000
    assert Record("microbatch_latency", 10, "p95_ms", 100.0, "per_row_txn", 5000.0).ratio == 50
    assert Record("memory", 1, "peak_rss_mb", 200.0, "python_baseline", 100.0).ratio == 0.5
    assert Record("collector", 1, "p99_ms", 3.0).ratio is None


def test_latency_records_are_percentiles_in_ms() -> None:
    records = latency_records("x", 1, [0.1] * 99 + [1.0], "b", [1.0] * 100, suffix="_with_pull")
    by_metric = {r.metric: r for r in records}
    assert set(by_metric) == {"p50_ms_with_pull", "p95_ms_with_pull", "p99_ms_with_pull"}
    assert by_metric["p50_ms_with_pull"].value == pytest.approx(100.0)
    assert by_metric["p50_ms_with_pull"].ratio == pytest.approx(10.0)


def test_results_json_markdown_and_charts(tmp_path) -> None:
    records = [
        Record("core_path", 1_000_000, "rows_per_s", 1.2e6, "per_row_txn", 1.1e3, details={"input": "arrow"}),
        *latency_records("microbatch_latency", 10_000, [0.2, 0.3], "per_row_txn", [3.0, 4.0]),
    ]
    paths = write_results(records, machine_facts(), tmp_path, "cryptopipe bench")
    payload = json.loads(paths["json"].read_text())
    assert {"cores", "cpu", "versions"} <= set(payload["machine"])
    assert payload["results"] and all(set(r) >= REQUIRED for r in payload["results"])
    assert payload["results"][0]["ratio"] == pytest.approx(1090.909, rel=1e-3)
    table = paths["markdown"].read_text()
    assert "| core_path | 1,000,000 | rows_per_s |" in table and "1,090.9×" in table
    charts = sorted(p.name for p in (tmp_path / "charts").glob("*.png"))
    assert charts == ["core_path.png", "microbatch_latency.png"]


def test_every_issue_benchmark_is_registered_and_unknown_names_are_refused(tmp_path, data_dir) -> None:
    assert set(BENCHMARKS) == {
        "core_path",
        "microbatch_latency",
        "end_to_end_freshness",
        "collector",
        "historical_backfill",
        "incremental_cost",
        "memory",
    }
    with pytest.raises(ConfigError, match="nope"):
        run_benchmarks(["nope"], data_dir, tmp_path, quick=True, command="test")


def test_quick_core_path_loads_exactly_the_unique_valid_trades(tmp_path, data_dir) -> None:
    paths = run_benchmarks(["core_path"], data_dir, tmp_path, quick=True, command="test")
    results = json.loads(paths["json"].read_text())["results"]
    baselines = {(r["details"]["input"], r["baseline"]) for r in results}
    assert baselines == {
        ("dicts", "per_row_txn"),
        ("dicts", "dlt_dicts"),
        ("arrow", "per_row_txn"),
        ("arrow", "dlt_arrow"),
    }
    for record in results:  # the benchmark itself asserts the loaded count equals the unique valid trades
        assert record["value"] > 0 and record["baseline_value"] > 0 and record["ratio"] > 0
        assert record["details"]["dead_letters"] == 10  # 0.1% of 10,000 invalid
