"""DuckDB specifics: one transaction per write, read-only queries, sessions, the file lock."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from tests.lib.warehouse.test_warehouse_contract import DAY, NOW, candle_batch, checkpoint, count


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    store = DuckDBWarehouse(tmp_path / "nested" / "dir" / "warehouse.duckdb")
    store.ensure_schema()
    store.ensure_schema()  # idempotent
    return store


def test_query_df_is_read_only(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(duckdb.Error):
        warehouse.query_df("DELETE FROM raw.candles")


def test_a_failing_checkpoint_write_rolls_back_candles_and_dead_letters(warehouse: DuckDBWarehouse) -> None:
    batch = candle_batch(bad_rows=1)
    with pytest.raises(duckdb.ConstraintException):  # fetched_through is NOT NULL: fails inside the tx
        warehouse.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, checkpoint(None))
    assert count(warehouse, "raw.candles") == 0
    assert count(warehouse, "ops.dead_letters") == 0
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") is None


class CrashAfterMerge(DuckDBWarehouse):
    """A process that dies after the MERGEs ran but before the transaction committed."""

    def _save_checkpoint(self, connection, checkpoint) -> None:
        super()._save_checkpoint(connection, checkpoint)
        assert int(connection.execute("SELECT COUNT(*) FROM raw.candles").fetchone()[0]) == 20  # written...
        raise KeyboardInterrupt("killed before commit")


def test_a_crash_before_commit_leaves_nothing_behind(warehouse: DuckDBWarehouse) -> None:
    crashing = CrashAfterMerge(warehouse.path)
    batch = candle_batch(bad_rows=1)
    with pytest.raises(KeyboardInterrupt):
        crashing.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, checkpoint(NOW))
    assert count(warehouse, "raw.candles") == 0 and count(warehouse, "ops.dead_letters") == 0
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") is None
    # ...and the retry after the crash lands everything exactly once.
    assert (
        warehouse.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, checkpoint(NOW)).inserted
        == 20
    )


def test_session_keeps_one_connection_for_several_calls(warehouse: DuckDBWarehouse) -> None:
    with warehouse as session:
        session.merge_candles(candle_batch().valid)
        assert count(session, "raw.candles") == 20
        assert session.count_duplicate_keys("raw.candles", *DAY) == 0
    assert count(warehouse, "raw.candles") == 20


def test_waits_for_another_process_holding_the_write_lock(warehouse: DuckDBWarehouse) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(1.0); c.close()",
            str(warehouse.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert warehouse.merge_candles(candle_batch().valid).inserted == 20  # retried until the lock was free
    finally:
        holder.wait(timeout=30)
