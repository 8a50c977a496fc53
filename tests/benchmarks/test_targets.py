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
