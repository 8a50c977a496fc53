"""Each speed target reads its record, compares it with its bound, and says when it was not measured."""

from cryptopipe_dagster.benchmarks.harness import Record
from cryptopipe_dagster.benchmarks.targets import target_rows, targets_markdown


def _rows(records):
    return {row["figure"]: row for row in target_rows(records)}


def test_targets_read_their_records_and_bounds():
    records = [
        Record("core_path", 1_000_000, "rows_per_s", 3.2e6, "per_row_txn", 24, details={"input": "arrow"}),
        Record("core_path", 1_000_000, "rows_per_s", 3.2e6, "dlt_arrow", 1.6e6, details={"input": "arrow"}),
        Record("collector", 100, "cpu_share_of_one_core", 0.61),
        Record("memory", 100, "peak_rss_mb", 240),
    ]
    rows = _rows(records)
    assert rows["core path from Arrow, rows/s at 1e6"]["met"] is True
    assert rows["core path from Arrow vs dlt from Arrow at 1e6"]["measured"] == 2.0
    assert rows["core path from Arrow vs dlt from Arrow at 1e6"]["met"] is False
    assert rows["collector at 100 markets, share of one core"]["met"] is False  # at most 0.5
    assert rows["collector at 100 markets, peak RSS (MB)"]["met"] is True
    assert rows["historical backfill vs fetching alone"]["measured"] is None
    table = "\n".join(targets_markdown(target_rows(records)))
    assert "not measured" in table and "**no**" in table


def test_a_ceiling_below_the_bound_marks_the_target_out_of_our_codes_reach():
    details = {"input": "arrow", "ceiling_rows_per_s": 2.0e6}
    records = [
        Record("core_path", 1_000_000, "rows_per_s", 1.2e6, "per_row_txn", 24, details=details),
        Record("core_path", 1_000_000, "rows_per_s", 1.2e6, "dlt_arrow", 0.5e6, details=details),
    ]
    rows = _rows(records)
    rate = rows["core path from Arrow, rows/s at 1e6"]
    assert (rate["ceiling"], rate["reachable_by_our_code"]) == (2.0e6, False)  # 3 M wanted
    ratio = rows["core path from Arrow vs dlt from Arrow at 1e6"]
    assert (ratio["ceiling"], ratio["reachable_by_our_code"]) == (4.0, True)  # 3x wanted, 4x possible
    assert rows["collector at 100 markets, share of one core"]["ceiling"] is None
    table = "\n".join(targets_markdown(target_rows(records)))
    assert "2.00 M (out of reach)" in table and "4.00×" in table
