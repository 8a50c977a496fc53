"""Reconciliation mismatches become gap ledger spans (both backends); missing 1m candles are candle
gaps the repair can re-fetch, trade-side holes are trade gaps."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptopipe_dagster.lib.quality.reconcile_gaps import mismatch_spans, record_mismatch_gaps
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse

T0 = pd.Timestamp("2019-10-17 04:00", tz="UTC")
NOW = pd.Timestamp("2026-12-01", tz="UTC")


def compared(reasons: dict[int, str | None], exchange: str = "kraken") -> pd.DataFrame:
    """A reconciliation result: one row per minute offset from T0, with its mismatch (None: agrees)."""
    return pd.DataFrame(
        {
            "exchange": exchange,
            "symbol": "BTC/USD",
            "minute": [T0 + pd.Timedelta(minutes=m) for m in reasons],
            "mismatch": list(reasons.values()),
        }
    )


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        store = open_warehouse(request.getfixturevalue("bigquery_env"), ensure=False)
    store.ensure_schema()
    return store


def test_consecutive_minutes_of_one_reason_are_one_span() -> None:
    found = compared(
        {
            0: None,
            1: "missing_from_trades",
            2: "missing_from_trades",
            3: "volume_mismatch",
            5: "missing_from_trades",
        }
    )
    spans = mismatch_spans(pd.concat([found, compared({1: "missing_rest_candle"}, "bitstamp")]))
    assert spans[["exchange", "reason", "minutes"]].values.tolist() == [
        ["bitstamp", "missing_rest_candle", 1],
        ["kraken", "missing_from_trades", 2],
        ["kraken", "missing_from_trades", 1],
        ["kraken", "volume_mismatch", 1],
    ]
    kraken_first = spans.iloc[1]
    assert (kraken_first.span_start, kraken_first.span_end) == (
        T0 + pd.Timedelta(minutes=1),
        T0 + pd.Timedelta(minutes=3),
    )
    assert mismatch_spans(compared({0: None})).empty


def test_arrow_backed_columns_as_bigquery_returns_them_give_the_same_spans() -> None:
    found = compared({0: "missing_from_trades", 1: "missing_from_trades", 3: "missing_from_trades"})
    arrow = found.convert_dtypes(dtype_backend="pyarrow")
    assert str(arrow["exchange"].dtype).endswith("[pyarrow]")
    pd.testing.assert_frame_equal(
        mismatch_spans(arrow).astype({"minutes": int}),
        mismatch_spans(found).astype({"minutes": int}),
        check_dtype=False,
    )
    assert mismatch_spans(arrow)["minutes"].tolist() == [2, 1]


def test_recorded_once_as_trade_and_candle_gaps(warehouse: Warehouse) -> None:
    found = compared({1: "missing_from_trades", 2: "missing_from_trades", 7: "missing_rest_candle"})
    assert record_mismatch_gaps(warehouse, found, NOW) == 2
    assert record_mismatch_gaps(warehouse, found, NOW) == 0  # the next reconciliation finds them again
    gaps = warehouse.list_gaps(exchange="kraken")
    assert gaps[["timeframe", "kind", "source", "missing"]].values.tolist() == [
        ["1m", "candles", "reconcile:missing_rest_candle", 1],
        ["trades", "trades", "reconcile:missing_from_trades", 2],
    ]
    assert set(gaps.state) == {"open"}
