"""The columnar and micro-batch paths give exactly the exact path's outcome, row for row, for any batch."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptopipe_dagster.lib.edge.normalize_trades import (
    _arrow_columns,
    _exact_input,
    _normalize,
    exact_frame,
    normalize_trades,
    normalize_trades_table,
)
from cryptopipe_dagster.lib.edge.trades_columnar import fast_path_applies

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
INGESTED = pd.Timestamp("2024-06-01T00:00:01Z")
BASE_MS = 1_700_000_000_000

symbols = st.sampled_from(
    ["BTC/USD", "XBT/USD", "eth-usd", "XXBTZUSD", "BTC/USDT:USDT", "bad pair", "", None]
)
ids = st.one_of(st.sampled_from(["1", "2", "3", "007", "", "x1", "-5"]), st.none())
timestamps = st.one_of(
    st.integers(BASE_MS, BASE_MS + 10_000),
    st.sampled_from([0, 1_700_000_000, 4_200_000_000_000, int(NOW.value // 1_000_000) + 3_600_000]),
    st.none(),
)
numbers = st.one_of(
    st.floats(0.01, 1e5),
    st.sampled_from([0.0, -1.0, 1e15, math.inf, math.nan]),
    st.none(),
)
sides = st.sampled_from(["buy", "sell", "SELL", "hold", None])
trades = st.lists(
    st.fixed_dictionaries(
        {
            "id": ids,
            "timestamp": timestamps,
            "symbol": symbols,
            "price": numbers,
            "amount": numbers,
            "side": sides,
        }
    ),
    max_size=40,
)


def _table(records: list[dict]) -> pa.Table:
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("timestamp", pa.int64()),
            ("symbol", pa.string()),
            ("price", pa.float64()),
            ("amount", pa.float64()),
            ("side", pa.string()),
        ]
    )
    return pa.Table.from_pylist(records, schema=schema)


def _exact(table: pa.Table, exchange: str):
    raw = _exact_input(table)
    return _normalize(
        raw,
        np.empty(0, dtype=np.int64),
        lambda positions: raw.loc[positions].to_dict("records"),
        exchange,
        "ws",
        NOW,
        INGESTED,
    )


def _exact_dicts(records: list[dict], exchange: str):
    """The exact path alone over dict input (what normalize_trades did before the fast paths)."""
    raw = exact_frame(_arrow_columns(records))
    return _normalize(
        raw,
        np.empty(0, dtype=np.int64),
        lambda positions: [records[i] for i in positions],
        exchange,
        "ws",
        NOW,
        INGESTED,
    )


# Hostile Python values the exact path meets in ccxt dicts: mixed types within a field.
odd_values = st.sampled_from([True, "1.5", "abc", 7, -3, 2.5, "", [1], {"a": 1}, "ſell", "BUY"])
hostile_trades = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.one_of(ids, st.integers(-5, 50), odd_values),
            "timestamp": st.one_of(timestamps, st.floats(BASE_MS, BASE_MS + 1e4), odd_values),
            "symbol": st.one_of(symbols, odd_values),
            "price": st.one_of(numbers, st.integers(-2, 10**16), odd_values),
            "amount": st.one_of(numbers, odd_values),
            "side": st.one_of(sides, odd_values),
        }
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(records=hostile_trades, exchange=st.sampled_from(["kraken", "somevenue"]))
def test_micro_batch_path_equals_exact_path(records, exchange):
    rows = normalize_trades(records, exchange=exchange, source="ws", now=NOW, ingested_at=INGESTED)
    _same(rows, _exact_dicts(records, exchange))
    assert rows.rows_in == len(records)


def _same(fast, exact) -> None:
    pd.testing.assert_frame_equal(fast.valid, exact.valid.reset_index(drop=True))
    pd.testing.assert_frame_equal(
        fast.dead_letters.reset_index(drop=True), exact.dead_letters.reset_index(drop=True)
    )
    assert fast.duplicates_dropped == exact.duplicates_dropped


@settings(max_examples=300, deadline=None)
@given(records=trades, exchange=st.sampled_from(["kraken", "somevenue"]))
def test_columnar_path_equals_exact_path(records, exchange):
    table = _table(records)
    assert fast_path_applies(table)
    fast = normalize_trades_table(table, exchange=exchange, source="ws", now=NOW, ingested_at=INGESTED)
    _same(fast, _exact(table, exchange))
    assert fast.rows_in == len(records)


def test_dict_input_takes_the_columnar_path_and_agrees():
    records = [
        {
            "id": str(i),
            "timestamp": BASE_MS + i,
            "symbol": "XBT/USD",
            "price": 100.0 + i,
            "amount": 1.0,
            "side": "buy",
        }
        for i in range(50)
    ]
    records += [records[3] | {"price": 1.0}, records[4] | {"price": -1.0}]  # a redelivery and a bad row
    fast = normalize_trades(records, exchange="kraken", source="ws", now=NOW, ingested_at=INGESTED)
    _same(fast, _exact(_table(records), "kraken"))
    assert len(fast.valid) == 50 and fast.duplicates_dropped == 1
    assert fast.valid_arrow.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert fast.dead_letters["reason_code"].tolist() == ["non_positive_price"]


@pytest.mark.parametrize(
    "column,values",
    [("price", ["1.5"]), ("side", [True]), ("id", [1.5])],
)
def test_untyped_columns_leave_the_batch_to_the_exact_path(column, values):
    record = {
        "id": "1",
        "timestamp": BASE_MS,
        "symbol": "BTC/USD",
        "price": 1.0,
        "amount": 1.0,
        "side": "buy",
    }
    table = pa.Table.from_pylist([record | {column: values[0]}])
    assert not fast_path_applies(table)


@settings(max_examples=100, deadline=None)
@given(records=hostile_trades, exchange=st.sampled_from(["kraken", "somevenue"]))
def test_large_dict_batches_equal_the_exact_path(records, exchange):
    """Above ROWS_MAX dicts go columnar when every field is typed; forced here on small batches."""
    from unittest import mock

    from cryptopipe_dagster.lib.edge import normalize_trades as module

    with mock.patch.object(module, "ROWS_MAX", -1):
        columnar = normalize_trades(records, exchange=exchange, source="ws", now=NOW, ingested_at=INGESTED)
    _same(columnar, _exact_dicts(records, exchange))
