"""`cryptopipe demo` on BigQuery (the emulator), as a user runs it with CRYPTOPIPE_WAREHOUSE=bigquery:
backfill, dbt build, the live path under the Dagster daemon, reconciliation and the summary.

Every statement any process sends (the CLI, the daemon's sensor, dbt in its own process) passes a
recording proxy, and each one that reads or writes a date-partitioned table must prune it. The demo
plan is cut to the days the live path needs (tmp markets file), so this stays a few minutes.
"""

from __future__ import annotations

import json
import re
import uuid

import pandas as pd
import pytest

from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import open_warehouse
from tests.bigquery_capture import CapturingProxy, partition_filter_violations
from tests.bigquery_fixtures import EMULATOR_PROJECT
from tests.e2e.conftest import run_demo

pytestmark = pytest.mark.timeout(1800)

MARKETS = """
history_start: 2014-11-28
exchanges:
  coinbaseexchange: {symbols: [BTC/USD], timeframes: [1m, 1h]}
  bitstamp: {symbols: [BTC/USD, ETH/USD, LTC/USD], timeframes: [1m, 1d]}
demo:
  - {exchange: coinbaseexchange, symbols: [BTC/USD], timeframes: [1h], start: 2019-09-01, end: 2019-10-17}
  - {exchange: coinbaseexchange, symbols: [BTC/USD], timeframes: [1m], start: 2019-10-17, end: 2019-10-17}
  - {exchange: bitstamp, symbols: [BTC/USD, LTC/USD], timeframes: [1d], start: 2019-06-01, end: 2019-10-17}
  - {exchange: bitstamp, symbols: [BTC/USD], timeframes: [1m], start: 2019-10-17, end: 2019-10-17}
"""


def test_demo_runs_on_bigquery_and_every_statement_prunes_partitions(bigquery_emulator, tmp_path):
    markets = tmp_path / "markets.yaml"
    markets.write_text(MARKETS)
    prefix = f"demo{uuid.uuid4().hex[:6]}_"
    env = {
        "CRYPTOPIPE_WAREHOUSE": "bigquery",
        "CRYPTOPIPE_GCP_PROJECT": EMULATOR_PROJECT,
        "CRYPTOPIPE_BQ_DATASET_PREFIX": prefix,
        "CRYPTOPIPE_MARKETS_FILE": str(markets),
    }
    with CapturingProxy(bigquery_emulator.endpoint) as proxy:
        result = run_demo(tmp_path / "home", **env, CRYPTOPIPE_BIGQUERY_ENDPOINT=proxy.endpoint)
        statements = list(proxy.statements)
    (tmp_path / "statements.json").write_text(json.dumps(statements, indent=1))  # for a failure's reader
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert f"warehouse: bigquery {EMULATOR_PROJECT}" in result.stdout
    assert re.search(r"live: 1,200 trades emitted, 1,200 in raw\.trades", result.stdout), result.stdout[
        -3000:
    ]

    # What every process sent: the loader's MERGEs, dbt's models, the sensor's landing reads.
    assert any(s.lstrip().upper().startswith("MERGE INTO") for s in statements)
    assert any("create or replace" in s.lower() for s in statements)  # dbt
    assert any(f"{prefix}ops.landed_batches" in s for s in statements)  # the daemon's sensor
    violations = partition_filter_violations(statements, {f"{prefix}raw", f"{prefix}ops"})
    assert not violations, "\n".join(map(str, violations[:10]))

    settings = load_settings({**env, "CRYPTOPIPE_BIGQUERY_ENDPOINT": bigquery_emulator.endpoint})
    warehouse = open_warehouse(settings)
    live = pd.Timestamp("2019-10-17", tz="UTC")
    trades = warehouse.trade_counts(since=live)
    assert trades == {"bitstamp:BTC/USD": 400, "coinbaseexchange:BTC/USD": 400, "kraken:BTC/USD": 400}
    candles = warehouse.market_summary("raw.candles", pd.Timestamp("2019-06-01", tz="UTC"), live)
    assert {"1h", "1d", "1m"} <= set(candles["timeframe"])
    assert not warehouse.latest_indicators(since=pd.Timestamp("2019-06-01", tz="UTC")).empty
    compared = warehouse.reconcile_trade_candles(live)
    assert (
        len(compared) > 100
        and not compared["mismatch"].isin(["missing_from_trades", "missing_rest_candle"]).any()
    )
    # Two emulator gaps (README, "BigQuery emulator gaps") and nothing else: BIGNUMERIC sums rounded to
    # 5 decimals (volume_mismatch), and UNIX_SECONDS rounding instead of truncating, which moves a
    # trade in a minute's last half second to the next minute (price_mismatch in that minute only).
    late = _minutes_with_a_trade_in_the_last_half_second(warehouse, live)
    prices = compared[compared["mismatch"] == "price_mismatch"]
    assert set(zip(prices["exchange"], prices["symbol"], prices["minute"], strict=True)) <= late


def _minutes_with_a_trade_in_the_last_half_second(warehouse, day: pd.Timestamp) -> set[tuple]:
    trades = warehouse.query_df(
        f"SELECT exchange, symbol, ts FROM {warehouse.table_ref('raw.trades')} WHERE trade_date = @day",
        {"day": day.date()},
    )
    ts = pd.to_datetime(trades["ts"], utc=True)
    late = trades[(ts - ts.dt.floor("min")) >= pd.Timedelta(seconds=59.5)]
    minute = pd.to_datetime(late["ts"], utc=True).dt.floor("min")
    keys = list(zip(late["exchange"], late["symbol"], minute, strict=True))
    # The minute that loses the trade, and the next one, where it lands.
    return set(keys) | {(e, s, m + pd.Timedelta(minutes=1)) for e, s, m in keys}
