"""The dbt project's `prod` target (dbt-bigquery) builds on the BigQuery emulator, and its marts equal
the DuckDB (`local`) build of the same raw rows.

Raw tables are created and filled by the pipeline's BigQueryWarehouse, as ingestion does (day
partitions on candle_date / trade_date, clustering, require_partition_filter), under the test's
dataset prefix; every model, data test and
unit test of `dbt build --target prod` runs, then a one-day windowed `dbt build` (incremental MERGE
with window predicates) must leave the marts unchanged.

Emulator gaps (bqemulator 1.4.0; the SQL stays what real BigQuery needs, the gaps are pinned by
test_emulator_gaps_are_still_there so an emulator upgrade that closes them is noticed):
- BIGNUMERIC is DECIMAL(38, 5) in the emulator (SQLGlot's DuckDB type for an unparameterised
  BIGNUMERIC), where BigQuery keeps 38 decimal places: `select cast(0.123456789 as bignumeric)`
  gives 0.12346. The volumes (cryptopipe.decimal_sum) and the indicators (cryptopipe.exact_sum)
  are sums of BIGNUMERIC terms, so on the emulator each term is rounded to 5 decimals: volumes are
  compared within that rounding (GAP_VOLUME_ROUNDING per summed volume), the indicators for
  structure (keys, null pattern, close, is_complete) and within GAP_INDICATOR_TOLERANCE of the
  price level (rsi_14: null pattern only). The agreement real BigQuery gives (indicators within
  1e-9 relative, volumes bit for bit) cannot be shown on this emulator. Keys, prices, counts and
  flags are compared exactly.
- require_partition_filter is neither stored (a table created with requirePartitionFilter=true
  reads back without it) nor enforced: `select count(*) from raw.candles` runs.
  The test checks the compiled SQL of every node reading raw tables for the date predicate instead
  (unfiltered_raw_reads).
"""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from tests.dbt.bigquery_helpers import BigQueryDbtRun
from tests.dbt.helpers import CANDLE_COLUMNS, INGESTED_AT, MARTS, DbtProjectRun, load_candles

INDICATOR_VALUES = (
    "sma_20", "ema_20", "rsi_14", "macd", "macd_signal", "macd_hist",
    "bb_upper", "bb_middle", "bb_lower", "atr_14", "vwap_24",
)  # fmt: skip
# Under the BIGNUMERIC gap: |bigquery - duckdb| of a price-level indicator as a fraction of the
# bar's close. A sanity bound (a wrong window, seed or join misses it by far more), not a precision
# claim. Observed on this data: bb_* 4e-3, the others below 1e-3. rsi_14 is a ratio of two small
# sums (gains, losses: ~1e-3 of close, each term rounded at 5e-6) and moves by up to 6 points on
# the emulator: only its null pattern is compared.
GAP_INDICATOR_TOLERANCE = 2e-2
STRUCTURE_ONLY = ("rsi_14",)
# Under the gap every summed volume is rounded to 5 decimals before the exact sum.
GAP_VOLUME_ROUNDING = 5e-6

# Trades around a UTC midnight, so the trade-built candles span two trade_date partitions.
TRADES_START = pd.Timestamp("2019-10-17 23:50", tz="UTC")
TRADE_COUNT = 600
WINDOW = {"window_start": "2019-03-25", "window_end": "2019-03-26", "exchanges": ["bitstamp"]}


def synthetic_trades() -> pd.DataFrame:
    """Deterministic trades over 20 minutes (several per second, numeric ids with ties in time)."""
    rng = np.random.default_rng(20191017)
    offsets = np.sort(rng.integers(0, 20 * 60 * 1000, TRADE_COUNT))
    return pd.DataFrame(
        {
            "exchange": "kraken",
            "symbol": "BTC/USD",
            "trade_id": [str(900 + n) for n in range(TRADE_COUNT)],  # 3 and 4 digits: numeric order
            "ts": TRADES_START + pd.to_timedelta(offsets // 1000 * 1000, unit="ms"),
            "price": (8000 + np.cumsum(rng.normal(0, 2, TRADE_COUNT))).round(1),
            "amount": rng.uniform(0.0001, 2, TRADE_COUNT).round(8),
            "side": rng.choice(["buy", "sell"], TRADE_COUNT),
            "source": "ws",
            "ingested_at": INGESTED_AT,
        }
    )


@pytest.fixture(scope="module")
def duckdb_build(tmp_path_factory, candles) -> DbtProjectRun:
    """The DuckDB build of the raw rows the BigQuery build gets: every candle of the dbt fixtures
    (tests/dbt/conftest.py) plus the synthetic trades."""
    work_dir = tmp_path_factory.mktemp("dbt_duckdb_for_bigquery")
    project = DbtProjectRun(work_dir / "warehouse.duckdb", work_dir)
    load_candles(project.db_path, candles["all"])
    DuckDBWarehouse(project.db_path).merge_trades(synthetic_trades())
    project.dbt("build")
    return project


def trade_candles_sql(relation: str) -> str:
    """int_trade_candles_1m read as the reconciliation reads it: from a time, with the partition date."""
    since = TRADES_START + pd.Timedelta(minutes=5)
    return (
        f"select * from {relation} where trade_date >= date '{since.date()}' "
        f"and ts >= timestamp '{since:%Y-%m-%d %H:%M:%S}+00' order by exchange, symbol, ts"
    )


def differences(expected: pd.DataFrame, actual: pd.DataFrame) -> list[str]:
    """What differs between a mart built on DuckDB and on BigQuery (empty: they agree).

    Keys, prices, counts and flags must be identical. volume and the indicators go through
    BIGNUMERIC sums: compared within what the emulator's DECIMAL(38, 5) allows (module docstring).
    """
    if list(expected.columns) != list(actual.columns) or len(expected) != len(actual):
        return [f"shape {list(expected.columns)} x {len(expected)} != {list(actual.columns)} x {len(actual)}"]
    problems = []
    for column in expected.columns:
        if column not in INDICATOR_VALUES and column != "volume":
            if expected[column].astype(object).tolist() != actual[column].astype(object).tolist():
                problems.append(f"{column}: not identical")
            continue
        x, y = expected[column].to_numpy(float), actual[column].to_numpy(float)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            problems.append(f"{column}: nulls differ")
            continue
        if column in STRUCTURE_ONLY:
            continue
        if column == "volume":
            terms = expected["source_candles" if "source_candles" in expected else "trade_count"]
            bound = terms.to_numpy(float) * GAP_VOLUME_ROUNDING + 4 * np.spacing(np.abs(x))
        else:
            bound = GAP_INDICATOR_TOLERANCE * np.abs(expected["close"].to_numpy(float))
        if not (np.abs(x - y) <= bound)[~np.isnan(x)].all():
            problems.append(f"{column}: max difference {np.nanmax(np.abs(x - y)):.3g} beyond the gap's bound")
    return problems


def test_prod_build_on_bigquery_equals_the_duckdb_build(bigquery_env, duckdb_build, candles, tmp_path):
    bigquery = BigQueryDbtRun(bigquery_env, tmp_path)
    warehouse = bigquery.warehouse()
    warehouse.merge_candles(
        candles["all"][CANDLE_COLUMNS].assign(source="recording", ingested_at=INGESTED_AT)
    )
    warehouse.merge_trades(synthetic_trades())

    bigquery.dbt("build")  # every model, data test and unit test

    prefix = bigquery_env.bq_dataset_prefix
    for dataset in ("raw", "staging", "intermediate", "marts"):
        assert bigquery.dataset_exists(prefix + dataset), f"{prefix}{dataset} missing"
    expected = {name: duckdb_build.mart(name) for name in MARTS}
    for run in ("full build", "one-day windowed rebuild"):
        problems = {
            name: found for name in MARTS if (found := differences(expected[name], bigquery.mart(name)))
        }
        assert not problems, f"{run}: {problems}"
        assert unfiltered_raw_reads(bigquery.manifest()) == [], run
        # A window re-run merges the same rows again: nothing may change.
        if run == "full build":
            bigquery.dbt("build", dbt_vars=WINDOW)

    duck_trade_candles = duckdb_build.query(trade_candles_sql("intermediate.int_trade_candles_1m"))
    bq_trade_candles = bigquery.query(
        trade_candles_sql(f"`{bigquery.table_id('intermediate', 'int_trade_candles_1m')}`")
    )
    assert len(duck_trade_candles) == 15 and duck_trade_candles["trade_date"].nunique() == 2
    for frame in (duck_trade_candles, bq_trade_candles):
        frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    assert differences(duck_trade_candles, bq_trade_candles) == []


RAW_DATE_COLUMNS = {"candles": "candle_date", "trades": "trade_date"}


def raw_tables_read(nodes: dict, unique_id: str) -> set[str]:
    """Raw tables a manifest node reads, following refs through views (which pass filters down)."""
    found = set()
    for parent in nodes[unique_id]["depends_on"]["nodes"]:
        if parent.startswith("source."):
            found.add(parent.rsplit(".", 1)[1])
        elif nodes[parent]["config"]["materialized"] == "view":
            found |= raw_tables_read(nodes, parent)
    return found


def unfiltered_raw_reads(manifest: dict) -> list[str]:
    """Models and tests (not views) of the last dbt command that read raw.candles / raw.trades,
    directly or through views, without a predicate on the table's partition date in their SQL.

    BigQuery refuses such a query (require_partition_filter); the emulator does not (module
    docstring), so the compiled SQL is checked instead."""
    nodes = manifest["nodes"]
    unfiltered, checked = [], 0
    for unique_id, node in nodes.items():
        if node["resource_type"] not in ("model", "test") or node["config"].get("materialized") == "view":
            continue
        for table in raw_tables_read(nodes, unique_id):
            checked += 1
            if not re.search(rf"\b{RAW_DATE_COLUMNS[table]}\s*(>=|between)", node["compiled_code"] or ""):
                unfiltered.append(f"{unique_id} (raw.{table})")
    # the two ohlcv marts, their bars_match_source_candles tests, the trade-candle uniqueness test
    assert checked == 5, f"expected 5 nodes reading raw tables, found {checked}"
    return unfiltered


def test_emulator_gaps_are_still_there(bigquery_env):
    """The emulator gaps the tests above work around (module docstring). When one of these fails,
    the emulator closed the gap: compare volumes exactly and indicators within 1e-9 relative, or
    let BigQuery's own partition-filter check replace unfiltered_raw_reads."""
    bigquery = BigQueryDbtRun(bigquery_env)
    assert bigquery.query("select cast(0.123456789 as bignumeric) as v")["v"][0] == Decimal("0.12346")
    bigquery.warehouse()
    # created with requirePartitionFilter=true (bigquery_tables.bigquery_table): dropped, not enforced
    assert not bigquery.client.get_table(bigquery.table_id("raw", "candles")).require_partition_filter
    assert bigquery.query(f"select count(*) as n from `{bigquery.table_id('raw', 'candles')}`")["n"][0] == 0
    # UNIX_SECONDS rounds to the nearest second (BigQuery truncates): a trade in a minute's last half
    # second counts in the next minute of int_trade_candles_1m (tests/e2e/test_demo_bigquery.py).
    late = "timestamp '2019-10-17 05:12:59.971+00'"
    assert bigquery.query(f"select unix_seconds({late}) as s")["s"][0] == 1_571_289_180  # BigQuery: ...179
