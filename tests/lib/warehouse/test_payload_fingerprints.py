"""ops.payload_fingerprints on both backends: a new shape is inserted with its diff, seeing a known
shape again only moves last_seen, and a tracker seeded from the table measures drift against it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cryptopipe_dagster.lib.edge.fingerprint import PayloadTracker
from cryptopipe_dagster.lib.edge.fingerprint_store import known_shapes, observations_frame
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse

T1, T2, T3 = (pd.Timestamp(f"2026-12-0{d} 12:00", tz="UTC") for d in (1, 2, 3))
ROW = [1_704_067_200_000, 1.0, 2.0, 0.5, 1.5, 10.0]


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        store = open_warehouse(request.getfixturevalue("bigquery_env"), ensure=False)
    store.ensure_schema()
    return store


def observe(tracker: PayloadTracker, rows: list, at: pd.Timestamp) -> pd.DataFrame:
    tracker.observe("kraken", "fetch_ohlcv", rows, at)
    return observations_frame(tracker.take_pending())


def test_new_shape_is_stored_with_its_diff_and_known_shape_only_moves_last_seen(warehouse):
    first = PayloadTracker()
    assert warehouse.record_payload_fingerprints(observe(first, [ROW], T1)) == 1
    retyped = [*ROW[:4], None, ROW[5]]
    second = PayloadTracker(known=known_shapes(warehouse.payload_fingerprints()))
    assert warehouse.record_payload_fingerprints(observe(second, [retyped], T2)) == 1
    again = PayloadTracker(known=known_shapes(warehouse.payload_fingerprints()))
    assert warehouse.record_payload_fingerprints(observe(again, [retyped], T3)) == 0

    stored = warehouse.payload_fingerprints(exchange="kraken", endpoint="fetch_ohlcv")
    assert len(stored) == 2
    base, drifted = stored.iloc[0], stored.iloc[1]
    assert pd.isna(base["diff"]) and pd.isna(base["previous_fingerprint"])
    assert drifted["previous_fingerprint"] == base["fingerprint"]
    assert json.loads(drifted["diff"]) == [
        {"change": "retyped", "field": "close", "was": "number", "now": "null"}
    ]
    assert drifted["first_seen"] == T2 and drifted["last_seen"] == T3
    assert json.loads(drifted["fields"])[0] == ["close", "null"]
    assert warehouse.payload_fingerprints(since=T2)["fingerprint"].tolist() == [drifted["fingerprint"]]
    assert warehouse.payload_fingerprints(exchange="bitstamp").empty
