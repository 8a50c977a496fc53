"""decode_batch on hostile messages: whatever the bytes, attributes and Arrow column types, the
answer is the records or UndecodableMessage with a reason code (the loader dead-letters those),
never another exception."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptopipe_dagster.lib.errors import UndecodableMessage
from cryptopipe_dagster.lib.pubsub.codec import (
    CONTENT_TYPE,
    EVENT_TIME_COLUMNS,
    KEY_COLUMNS,
    RECORD_KINDS,
    SCHEMA_VERSION,
    _ipc_bytes,
    batch_id,
    decode_batch,
    encode_batch,
)

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "kraken",
            "BTC/USD",
            "'; DROP TABLE raw.trades; --",
            "\x00",
            "\u202eDSU/CTB",
            "𝔅𝔗ℭ/USD",
            "x" * 10_000,
            "",
            "NaN",
            "1e309",
            "${jndi:ldap://x}",
        ]
    ),
)
TIMESTAMPS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1_571_288_400_000, -1, 2**62, 253_402_300_799_999]),
)


def _column(n: int):
    """A column of `n` values of some type a hostile or broken producer might send."""
    return st.one_of(
        st.lists(st.one_of(st.none(), HOSTILE_TEXT), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.string())
        ),
        st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.int64())
        ),
        st.lists(st.floats(), min_size=n, max_size=n).map(lambda v: pa.array(v, pa.float64())),
        st.lists(st.binary(max_size=8), min_size=n, max_size=n).map(lambda v: pa.array(v, pa.binary())),
        st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.list_(pa.int64()))
        ),
        st.lists(HOSTILE_TEXT, min_size=n, max_size=n).map(
            lambda v: pa.array([{"a": x} for x in v], pa.struct([("a", pa.string())]))
        ),
        st.just(pa.nulls(n)),
        st.lists(HOSTILE_TEXT, min_size=n, max_size=n).map(lambda v: pa.array(v).dictionary_encode()),
        st.tuples(
            st.lists(TIMESTAMPS, min_size=n, max_size=n),
            st.sampled_from(["s", "ms", "us", "ns"]),
            st.sampled_from([None, "UTC", "+05:30", "America/New_York"]),
        ).map(lambda a: pa.array(a[0], pa.timestamp(a[1], tz=a[2]))),
    )


@st.composite
def hostile_tables(draw):
    kind = draw(st.sampled_from(RECORD_KINDS))
    n = draw(st.integers(0, 3))
    names = [*dict.fromkeys((*KEY_COLUMNS[kind], "symbol", EVENT_TIME_COLUMNS[kind]))]
    names += draw(st.lists(st.sampled_from(["price", "amount", "extra", "ts"]), max_size=2, unique=True))
    names = [name for name in dict.fromkeys(names) if draw(st.booleans()) or draw(st.integers(0, 9)) > 0]
    columns = {}
    for name in names:
        if name in ("exchange", "symbol") and draw(st.booleans()):  # often a readable market
            columns[name] = pa.array([{"exchange": "kraken", "symbol": "BTC/USD"}[name]] * n, pa.string())
        else:
            columns[name] = draw(_column(n))
    return kind, pa.table(columns) if columns else pa.table({"x": pa.array([], pa.int64())})


def _good_attributes(kind: str, key: str) -> dict[str, str]:
    """What a producer of a kraken BTC/USD batch with id `key` sends."""
    return {
        "content_type": CONTENT_TYPE,
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "batch_id": key,
    }


def _attributes(kind: str, table: pa.Table, draw) -> dict[str, str]:
    try:
        key = batch_id(table, kind)  # the id a producer with this table would send, if computable
    except Exception:  # noqa: BLE001 - a table the producer could not even id: send any id
        key = "0" * 64
    attributes = {**_good_attributes(kind, key), "record_count": str(table.num_rows)}
    for name in draw(st.lists(st.sampled_from(sorted(attributes)), max_size=2, unique=True)):
        attributes[name] = draw(HOSTILE_TEXT)
    return attributes


def _decodes_or_refuses(data: bytes, attributes: dict[str, str]) -> None:
    try:
        decode_batch(data, attributes)
    except UndecodableMessage as error:
        assert error.reason_code


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hostile_columns_decode_or_are_refused_with_a_reason(data) -> None:
    kind, table = data.draw(hostile_tables())
    _decodes_or_refuses(_ipc_bytes(table), _attributes(kind, table, data.draw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2_000), st.sampled_from(RECORD_KINDS))
def test_hostile_bytes_are_refused_with_a_reason(payload, kind) -> None:
    _decodes_or_refuses(payload, _good_attributes(kind, "0" * 64))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_good_message_cut_or_flipped_is_refused_or_still_exact(data) -> None:
    table = pa.table(
        {
            "exchange": ["kraken"] * 3,
            "symbol": ["BTC/USD"] * 3,
            "trade_id": ["1", "2", "3"],
            "ts": pa.array([dt.datetime(2019, 10, 17, tzinfo=dt.UTC)] * 3, pa.timestamp("ns", tz="UTC")),
            "price": [8000.0, 8000.5, 8001.0],
            "amount": [0.1, 0.2, 0.3],
        }
    )
    batch = encode_batch(table, "trades")
    payload = bytearray(batch.data)
    if data.draw(st.booleans()):
        payload = payload[: data.draw(st.integers(0, len(payload) - 1))]
    else:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] ^= 1 << data.draw(st.integers(0, 7))
    try:
        records = decode_batch(bytes(payload), batch.attributes)
    except UndecodableMessage as error:
        assert error.reason_code
    else:  # a flip the format cannot see (padding) must not change the records the id covers
        assert sorted(records["trade_id"]) == ["1", "2", "3"]
