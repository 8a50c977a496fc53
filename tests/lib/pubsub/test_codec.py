"""The message format: Arrow IPC payload + attributes, deterministic batch ids, poison reasons."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal

from cryptopipe_dagster.lib.errors import InvalidBatch, UndecodableMessage
from cryptopipe_dagster.lib.pubsub.codec import (
    CONTENT_TYPE,
    SCHEMA_VERSION,
    decode_batch,
    encode_batch,
)
from tests.lib.pubsub.frames import candles_frame, trades_frame


def test_attributes_describe_the_batch():
    frame = trades_frame("binance", "ETH/USDT", n=10)
    batch = encode_batch(frame, "trades")
    assert batch.ordering_key == "binance:ETH/USDT"
    assert batch.attributes == {
        "exchange": "binance",
        "symbol": "ETH/USDT",
        "kind": "trades",
        "schema_version": SCHEMA_VERSION,
        "event_ts": "2024-03-01T00:00:09Z",
        "batch_id": batch.batch_id,
        "record_count": "10",
        "content_type": CONTENT_TYPE,
    }
    assert len(batch.batch_id) == 64


def test_round_trip_keeps_values_and_types():
    for frame, kind in ((trades_frame(), "trades"), (candles_frame(), "candles")):
        batch = encode_batch(frame, kind)
        assert_frame_equal(decode_batch(batch.data, batch.attributes), frame)
        schema = pa.ipc.open_stream(batch.data).schema
        assert schema.metadata[b"cryptopipe.schema_version"] == SCHEMA_VERSION.encode()


def test_batch_id_depends_on_record_keys_only():
    frame = candles_frame()
    first = encode_batch(frame, "candles").batch_id
    assert encode_batch(frame.iloc[::-1], "candles").batch_id == first  # row order
    assert (
        encode_batch(frame.assign(close=frame["close"] + 1, high=frame["high"] + 1), "candles").batch_id
        == first
    )
    assert encode_batch(frame.iloc[1:], "candles").batch_id != first
    assert encode_batch(frame.assign(timeframe="1d").iloc[:1], "candles").batch_id != first


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (trades_frame().iloc[:0], "empty batch"),
        (pd.concat([trades_frame("binance"), trades_frame("kraken")]), "exactly one exchange"),
        (trades_frame().drop(columns=["trade_id"]), "missing columns"),
        (trades_frame().assign(ts=trades_frame()["ts"].dt.tz_localize(None)), "timezone-aware"),
    ],
)
def test_invalid_batches_are_refused(frame, reason):
    with pytest.raises(InvalidBatch, match=reason):
        encode_batch(frame, "trades")


def test_unknown_kind_is_refused():
    with pytest.raises(InvalidBatch, match="unknown kind"):
        encode_batch(trades_frame(), "quotes")  # type: ignore[arg-type]


def _poison_reason(data: bytes, attributes: dict[str, str]) -> str:
    with pytest.raises(UndecodableMessage) as caught:
        decode_batch(data, attributes)
    return caught.value.reason_code


def test_poison_reasons():
    batch = encode_batch(trades_frame(), "trades")
    other = encode_batch(trades_frame(first_id=500), "trades")
    attributes = batch.attributes
    assert _poison_reason(b"not arrow", attributes) == "undecodable_payload"
    assert _poison_reason(batch.data[: len(batch.data) // 2], attributes) == "undecodable_payload"
    assert _poison_reason(batch.data, {}) == "missing_attribute"
    assert _poison_reason(batch.data, {**attributes, "schema_version": "99"}) == "unsupported_schema_version"
    assert (
        _poison_reason(batch.data, {**attributes, "content_type": "application/json"})
        == "unsupported_content_type"
    )
    assert _poison_reason(batch.data, {**attributes, "kind": "quotes"}) == "unknown_kind"
    assert _poison_reason(batch.data, {**attributes, "kind": "candles"}) == "invalid_columns"
    assert _poison_reason(batch.data, {**attributes, "symbol": "ETH/USDT"}) == "attribute_mismatch"
    assert _poison_reason(other.data, attributes) == "batch_id_mismatch"
