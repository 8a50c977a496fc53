"""Payload fingerprints: shapes, diffs, sampling, and schema_drift classification in normalize."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.edge.fingerprint import (
    PayloadTracker,
    diff_shapes,
    drift_classifier,
    record_shape,
    sample_positions,
)
from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.edge.normalize_trades import normalize_trades

NOW = pd.Timestamp("2024-01-02", tz="UTC")
T0 = 1_704_067_200_000


def trade(i: int, **info_changes) -> dict:
    info = {"tid": str(i), "price": "42000.5", "amount": "0.1", "type": "0", "date": "1704067200"}
    info.update(info_changes)
    price = None if "price" not in info or not isinstance(info["price"], str) else 42000.5
    return {
        "id": str(i),
        "timestamp": T0 + i,
        "symbol": "BTC/USD",
        "price": price,
        "amount": 0.1,
        "side": "buy",
        "info": {k: v for k, v in info.items() if v is not ...},
    }


def test_shape_names_nested_fields_and_json_types():
    shape = record_shape({"a": 1, "b": {"c": "x", "d": None}, "e": [1], "f": True, "g": 1.5})
    assert shape == (
        ("a", "number"),
        ("b.c", "string"),
        ("b.d", "null"),
        ("e", "array"),
        ("f", "boolean"),
        ("g", "number"),
    )
    assert record_shape([T0, 1.0, 2.0, 0.5, "x", 3])[0] == ("close", "string")
    assert record_shape("text") == (("$", "string"),)


def test_diff_names_added_missing_and_retyped_fields():
    diff = diff_shapes((("a", "number"), ("b", "string")), (("b", "object"), ("c", "number")))
    assert diff.rows() == [
        {"change": "added", "field": "c", "was": None, "now": "number"},
        {"change": "missing", "field": "a", "was": "number", "now": None},
        {"change": "retyped", "field": "b", "was": "string", "now": "object"},
    ]
    assert diff.breaking and not diff_shapes((), (("x", "number"),)).breaking


def test_sample_is_bounded_and_keeps_both_ends():
    positions = sample_positions(1_000_000)
    assert len(positions) <= 32 and positions[0] == 0 and positions[-1] == 999_999
    assert list(sample_positions(3)) == [0, 1, 2]


def test_trades_missing_a_known_field_are_schema_drift_others_load():
    tracker = PayloadTracker(sample_every_s=0)
    good = [trade(i) for i in range(10)]
    normalize_trades(
        good,
        exchange="bitstamp",
        now=NOW,
        drift=drift_classifier(tracker, "bitstamp", "watch_trades", good, NOW),
    )
    renamed = [trade(i, price=..., price_v2="42000.5") if i % 2 else trade(i) for i in range(10, 20)]
    batch = normalize_trades(
        renamed,
        exchange="bitstamp",
        now=NOW,
        drift=drift_classifier(tracker, "bitstamp", "watch_trades", renamed, NOW),
    )
    assert len(batch.valid) == 5
    assert batch.dead_letters["reason_code"].tolist() == ["schema_drift"] * 5
    assert batch.dead_letters["check_name"].unique().tolist() == ["payload:known_fingerprint"]
    assert "missing info.price (string -> None)" in batch.dead_letters["error_detail"].iloc[0]
    shapes = [o.diff.rows() for o in tracker.take_pending()]
    assert [] in shapes and any(
        {"change": "added", "field": "info.price_v2", "was": None, "now": "string"} in s for s in shapes
    )


def test_bad_value_in_a_known_shape_keeps_its_own_reason():
    """'garbage' text where the venue always sends text is bad data, not a changed format."""
    tracker = PayloadTracker(sample_every_s=0)
    records = [trade(i) for i in range(5)]
    records.append({**trade(5), "price": "garbage"})
    batch = normalize_trades(
        records,
        exchange="bitstamp",
        now=NOW,
        drift=drift_classifier(tracker, "bitstamp", "fetch_trades", records, NOW),
    )
    assert batch.dead_letters["reason_code"].tolist() == ["non_numeric_value"]


def test_ohlcv_rows_retyped_against_known_shape_are_schema_drift():
    rows = [[T0 + i * 60_000, 1.0, 2.0, 0.5, 1.5, 3.0] for i in range(6)]
    tracker = PayloadTracker(sample_every_s=0)
    drift = drift_classifier(tracker, "kraken", "fetch_ohlcv", rows, NOW)
    rows[2] = [rows[2][0], 1.0, 2.0, 0.5, None, 3.0]
    batch = normalize_ohlcv(rows, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW, drift=drift)
    assert len(batch.valid) == 5 and batch.dead_letters["reason_code"].tolist() == ["schema_drift"]
    plain = normalize_ohlcv(rows, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW)
    assert plain.dead_letters["reason_code"].tolist() == ["null_value"]  # without a fingerprint: as before
    assert np.array_equal(plain.valid["ts"], batch.valid["ts"])


def test_an_endpoint_is_sampled_at_most_once_per_interval_but_rejects_always_count():
    tracker = PayloadTracker()  # the default interval: far longer than this test
    first = [trade(i) for i in range(3)]
    drift_classifier(tracker, "bitstamp", "watch_trades", first, NOW)
    added = [trade(i, fee=1) for i in range(3, 6)]
    drift_classifier(tracker, "bitstamp", "watch_trades", added, NOW)  # not sampled: too soon
    assert len(tracker.take_pending()) == 1
    renamed = [trade(6, price=..., price_v2="1")]
    batch = normalize_trades(
        renamed,
        exchange="bitstamp",
        now=NOW,
        drift=drift_classifier(tracker, "bitstamp", "watch_trades", renamed, NOW),
    )
    assert batch.dead_letters["reason_code"].tolist() == ["schema_drift"]
    assert [o.diff.summary() for o in tracker.take_pending()] == [
        "added info.price_v2 (None -> string); missing info.price (string -> None)"
    ]
