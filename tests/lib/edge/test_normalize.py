from __future__ import annotations

import json
import math
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptopipe_dagster.lib.edge import normalize as normalize_module
from cryptopipe_dagster.lib.edge.dead_letters import REASON_CODES
from cryptopipe_dagster.lib.edge.normalize import (
    CandleBatch,
    normalize_candles_frame,
    normalize_ohlcv,
    validate_frame,
)
from cryptopipe_dagster.lib.edge.schemas import CandleSchema, DeadLetterSchema, schema_columns
from cryptopipe_dagster.lib.errors import ConfigError, InvalidSymbol, InvalidTimeframe, SchemaDrift

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE = 60_000
NOW = pd.Timestamp("2024-01-01 01:00", tz="UTC")
INGESTED = pd.Timestamp("2024-01-01 01:00:05", tz="UTC")


def good(i: int) -> list:
    return [T0 + i * MINUTE, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 5.0]


def run(rows: list, **kwargs: object) -> CandleBatch:
    params = {
        "exchange": "kraken",
        "symbol": "XXBTZUSD",
        "timeframe": "1m",
        "now": NOW,
        "ingested_at": INGESTED,
    }
    return normalize_ohlcv(rows, **(params | kwargs))  # type: ignore[arg-type]


def assert_accounted(batch: CandleBatch, n_input: int) -> None:
    assert batch.rows_in == n_input  # zero silent loss


def test_good_rows_come_out_in_schema_order_sorted_and_typed() -> None:
    batch = run([good(2), good(0), good(1)])
    assert list(batch.valid.columns) == schema_columns(CandleSchema)
    assert batch.valid["ts"].is_monotonic_increasing
    assert batch.valid["symbol"].unique().tolist() == ["BTC/USD"]
    assert batch.valid["ingested_at"].unique().tolist() == [INGESTED]
    assert batch.dead_letters.empty and batch.duplicates_dropped == 0 and batch.incomplete_dropped == 0
    CandleSchema.validate(batch.valid)
    DeadLetterSchema.validate(batch.dead_letters)


HOSTILE = [
    ("wrong length", [T0, 1.0, 2.0, 0.5], "malformed_row"),
    ("row is None", None, "malformed_row"),
    ("row is a string", "abcdef", "malformed_row"),
    ("row is a dict", {"ts": T0}, "malformed_row"),
    ("value None", [T0, None, 2.0, 0.5, 1.0, 1.0], "null_value"),
    ("value NaN", [T0, 1.0, 2.0, 0.5, 1.0, math.nan], "null_value"),
    ("ts None", [None, 1.0, 2.0, 0.5, 1.0, 1.0], "null_value"),
    ("text", [T0, "abc", 2.0, 0.5, 1.0, 1.0], "non_numeric_value"),
    ("empty text", [T0, "", 2.0, 0.5, 1.0, 1.0], "non_numeric_value"),
    ("bool", [T0, True, 2.0, 0.5, 1.0, 1.0], "non_numeric_value"),
    ("bool ts", [True, 1.0, 2.0, 0.5, 1.0, 1.0], "non_numeric_value"),
    ("inf", [T0, 1.0, math.inf, 0.5, 1.0, 1.0], "non_numeric_value"),
    ("text nan", [T0, 1.0, 2.0, 0.5, 1.0, "nan"], "non_numeric_value"),
    ("nested list", [T0, [1.0], 2.0, 0.5, 1.0, 1.0], "non_numeric_value"),
    ("negative price", [T0, -1.0, 2.0, 0.5, 1.0, 1.0], "non_positive_price"),
    ("zero price", [T0, 1.0, 2.0, 0.0, 1.0, 1.0], "non_positive_price"),
    ("negative volume", [T0, 1.0, 2.0, 0.5, 1.0, -3.0], "negative_volume"),
    ("high below low", [T0, 1.0, 0.4, 0.5, 1.0, 1.0], "ohlc_inconsistent"),
    ("open above high", [T0, 3.0, 2.0, 0.5, 1.0, 1.0], "ohlc_inconsistent"),
    ("seconds epoch", [T0 // 1000, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_out_of_range"),
    ("microseconds epoch", [T0 * 1000, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_out_of_range"),
    ("huge int ts", [10**30, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_out_of_range"),
    ("negative ts", [-T0, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_out_of_range"),
    ("fractional ms", [T0 + 0.5, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_out_of_range"),
    ("misaligned ts", [T0 + 30_000, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_misaligned"),
    ("future ts", [T0 + 10 * 86_400_000, 1.0, 2.0, 0.5, 1.0, 1.0], "ts_in_future"),
    ("17 digits", [T0, "1.2345678901234567", 2.0, 0.5, 1.0, 1.0], "precision_exceeded"),
    ("huge int volume", [T0, 1.0, 2.0, 0.5, 1.0, 10**16], "precision_exceeded"),
    ("huge float price", [T0, 1.0, 2e15, 0.5, 1.0, 1.0], "precision_exceeded"),
]


@pytest.mark.parametrize(("name", "row", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_each_hostile_row_is_a_dead_letter_with_its_reason(name: str, row: object, reason: str) -> None:
    rows = [good(10), row, good(11)]
    batch = run(rows)
    assert batch.valid["ts"].tolist() == [pd.Timestamp(good(i)[0], unit="ms", tz="UTC") for i in (10, 11)]
    assert batch.dead_letters["reason_code"].tolist() == [reason]
    letter = batch.dead_letters.iloc[0]
    assert letter["raw_payload"] == json.dumps(row)  # the record exactly as received
    assert letter["symbol"] == "BTC/USD" and letter["timeframe"] == "1m" and letter["dataset"] == "candles"
    assert letter["first_seen_at"] == INGESTED
    assert letter["check_name"] and letter["error_detail"]
    assert reason in REASON_CODES
    DeadLetterSchema.validate(batch.dead_letters)
    assert_accounted(batch, len(rows))


def test_all_hostile_rows_in_one_batch_never_fail_the_batch() -> None:
    rows = [good(i) for i in range(5)] + [row for _name, row, _reason in HOSTILE]
    batch = run(rows)
    assert len(batch.valid) == 5
    assert batch.dead_letters["reason_code"].tolist() == [reason for _n, _r, reason in HOSTILE]
    assert_accounted(batch, len(rows))


def test_numeric_text_is_parsed_exactly_and_kept() -> None:
    # pd.to_numeric mis-rounds many such strings; the pipeline must not change a digit.
    text = ["0.1", "97123.45678901", "0.000012345678901234", "12345678901234.5"]
    rows = [[T0 + i * MINUTE, t, t, t, t, t] for i, t in enumerate(text)]
    batch = run(rows)
    assert batch.valid["open"].tolist() == [float(t) for t in text]
    assert [repr(v) for v in batch.valid["close"]] == [repr(float(t)) for t in text]


def test_most_fundamental_reason_wins_and_others_are_mentioned() -> None:
    batch = run([[T0, -1.0, 2.0, 0.5, 1.0, 1.0]])  # non-positive AND ohlc-inconsistent
    letter = batch.dead_letters.iloc[0]
    assert letter["reason_code"] == "non_positive_price"
    assert "other failed check" in letter["error_detail"]


def test_duplicates_keep_the_last_and_are_counted() -> None:
    revised = [T0 + MINUTE, 100.0, 110.0, 90.0, 105.0, 9.0]
    batch = run([good(0), good(1), good(0), revised, good(2)])
    assert batch.duplicates_dropped == 2
    assert batch.conflicting_duplicates == 1  # the identical copy of good(0) is not a conflict
    assert batch.valid["ts"].is_unique
    assert batch.valid.set_index("ts").loc[pd.Timestamp(T0 + MINUTE, unit="ms", tz="UTC"), "close"] == 105.0
    assert batch.dead_letters.empty
    assert_accounted(batch, 5)


def test_incomplete_candle_is_dropped_and_counted_not_dead_lettered() -> None:
    last_closed = (NOW - pd.Timedelta(minutes=1)).value // 1_000_000
    open_now = NOW.value // 1_000_000
    rows = [[last_closed, 1.0, 2.0, 0.5, 1.0, 1.0], [open_now, 1.0, 2.0, 0.5, 1.0, 1.0]]
    batch = run(rows)
    assert batch.incomplete_dropped == 1
    assert batch.valid["ts"].tolist() == [pd.Timestamp(last_closed, unit="ms", tz="UTC")]
    assert batch.dead_letters.empty
    assert_accounted(batch, 2)


def test_exchange_clock_slightly_ahead_is_incomplete_not_future() -> None:
    our_now = NOW - pd.Timedelta(seconds=2)  # the exchange already opened the 01:00 candle
    just_opened = [NOW.value // 1_000_000, 1.0, 2.0, 0.5, 1.0, 1.0]
    far_ahead = [NOW.value // 1_000_000 + 10 * MINUTE, 1.0, 2.0, 0.5, 1.0, 1.0]
    batch = run([just_opened, far_ahead], now=our_now)
    assert batch.incomplete_dropped == 1
    assert batch.dead_letters["reason_code"].tolist() == ["ts_in_future"]


def test_dead_letter_ids_are_deterministic_across_runs() -> None:
    rows = [good(0), [T0, "abc", 2.0, 0.5, 1.0, 1.0], None]
    first = run(rows, ingested_at=INGESTED)
    second = run(rows, ingested_at=INGESTED + pd.Timedelta(hours=5))
    assert first.dead_letters["dead_letter_id"].tolist() == second.dead_letters["dead_letter_id"].tolist()
    assert first.dead_letters["dead_letter_id"].str.fullmatch("[0-9a-f]{64}").all()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"symbol": "NOTAPAIR"}, InvalidSymbol),
        ({"symbol": "BTC/USDT:USDT"}, InvalidSymbol),
        ({"timeframe": "1x"}, InvalidTimeframe),
        ({"exchange": "Kraken Pro"}, ConfigError),
        ({"source": "fax"}, ConfigError),
    ],
)
def test_configuration_errors_raise_instead_of_dead_lettering(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        run([good(0)], **kwargs)


def test_payload_that_is_not_a_list_is_schema_drift() -> None:
    with pytest.raises(SchemaDrift):
        run({"error": "rate limited"})  # type: ignore[arg-type]


def test_empty_batch() -> None:
    batch = run([])
    assert batch.valid.empty and batch.dead_letters.empty and batch.rows_in == 0
    assert list(batch.valid.columns) == schema_columns(CandleSchema)


def test_frame_input_with_ms_or_datetime_ts() -> None:
    frame = pd.DataFrame(
        [good(i) for i in range(3)], columns=["ts", "open", "high", "low", "close", "volume"]
    )
    by_ms = normalize_candles_frame(frame, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW)
    as_dt = frame.assign(ts=pd.to_datetime(frame["ts"], unit="ms"))  # naive: read as UTC
    by_dt = normalize_candles_frame(as_dt, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW)
    pd.testing.assert_frame_equal(
        by_ms.valid.drop(columns="ingested_at"), by_dt.valid.drop(columns="ingested_at")
    )
    assert len(by_ms.valid) == 3


def test_frame_input_hostile_object_columns_and_extra_columns_in_payload() -> None:
    frame = pd.DataFrame(
        {
            "ts": [T0, T0 + MINUTE, T0 + 2 * MINUTE],
            "open": [1.0, "x", "1.5"],
            "high": [2.0, 2.0, 2.0],
            "low": [0.5, 0.5, 0.5],
            "close": [1.0, 1.0, 1.0],
            "volume": [1.0, 1.0, 1.0],
            "note": ["a", "b", "c"],
        },
        dtype=object,
    )
    batch = normalize_candles_frame(frame, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW)
    assert batch.valid["open"].tolist() == [1.0, 1.5]
    assert batch.dead_letters["reason_code"].tolist() == ["non_numeric_value"]
    assert json.loads(batch.dead_letters["raw_payload"].iloc[0])["note"] == "b"


def test_frame_missing_a_column_is_schema_drift() -> None:
    frame = pd.DataFrame([good(0)], columns=["ts", "open", "high", "low", "close", "volume"]).drop(
        columns="low"
    )
    with pytest.raises(SchemaDrift, match="low"):
        normalize_candles_frame(frame, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW)


def test_a_whole_batch_failing_a_frame_level_check_is_routed_row_by_row() -> None:
    n = 5_000
    ts = T0 + np.arange(n) * MINUTE + 1_000  # every row off the minute grid
    frame = pd.DataFrame({"ts": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.0, "volume": 1.0})
    now = pd.Timestamp(int(ts.max()) + 10 * MINUTE, unit="ms", tz="UTC")
    batch = normalize_candles_frame(frame, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=now)
    assert batch.valid.empty
    assert (batch.dead_letters["reason_code"] == "ts_misaligned").all() and len(batch.dead_letters) == n


def test_validate_frame_splits_any_schema_frame() -> None:
    frame = pd.DataFrame(
        {
            "exchange": ["kraken"] * 2,
            "symbol": ["BTC/USD"] * 2,
            "timeframe": ["1m"] * 2,
            "ts": pd.to_datetime([T0, T0 + MINUTE], unit="ms", utc=True),
            "open": [1.0, -1.0],
            "high": [2.0, 2.0],
            "low": [0.5, 0.5],
            "close": [1.0, 1.0],
            "volume": [1.0, 1.0],
            "source": ["rest"] * 2,
            "ingested_at": [NOW] * 2,
        }
    )
    valid, dead = validate_frame(frame, CandleSchema, dataset="candles", source="rest", first_seen_at=NOW)
    assert len(valid) == 1 and dead["reason_code"].tolist() == ["non_positive_price"]
    assert dead["exchange"].tolist() == ["kraken"] and json.loads(dead["raw_payload"].iloc[0])["open"] == -1.0
    DeadLetterSchema.validate(dead)


_VALUES = st.one_of(
    st.floats(min_value=0.01, max_value=1e6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10, max_value=10**17),
    st.none(),
    st.booleans(),
    st.sampled_from(["1.5", "abc", "", "1e3", "-2"]),
)
_ROWS = st.one_of(
    st.integers(min_value=0, max_value=70).map(good),  # good, overlapping the incomplete/future edge
    st.integers(min_value=0, max_value=5).map(lambda i: good(i)[:5]),  # wrong length
    st.tuples(st.integers(min_value=0, max_value=70), _VALUES, _VALUES, _VALUES, _VALUES, _VALUES).map(
        lambda r: [T0 + r[0] * MINUTE, *r[1:]]
    ),
    st.sampled_from([None, "row", {"a": 1}, [T0 + 30_000, 1, 2, 0.5, 1, 1], [T0 // 1000, 1, 2, 0.5, 1, 1]]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROWS, max_size=40))
def test_property_no_duplicate_keys_and_zero_silent_loss(rows: list) -> None:
    batch = run(rows)
    assert_accounted(batch, len(rows))
    key = ["exchange", "symbol", "timeframe", "ts"]
    assert not batch.valid.duplicated(subset=key).any()
    assert batch.valid["ts"].is_monotonic_increasing
    assert (batch.valid["ts"] + pd.Timedelta(minutes=1) <= NOW).all()
    CandleSchema.validate(batch.valid)
    DeadLetterSchema.validate(batch.dead_letters)
    assert set(batch.dead_letters["reason_code"]) <= set(REASON_CODES)


_TIMES = st.one_of(
    st.integers(min_value=-2, max_value=70).map(lambda i: T0 + i * MINUTE),  # incl. incomplete, future
    st.sampled_from([T0 + 30_000, T0 // 1000, 0, -1, 2**62, T0 * 1000]),  # misaligned, s, 1970, us
)
_FLOATS = st.one_of(
    st.floats(min_value=0.01, max_value=1e6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e15, 9.99e14, 5e-324]),
)
_INTS = st.one_of(
    st.integers(min_value=-10, max_value=10**6), st.sampled_from([0, 10**15, 2**53 + 1, 2**63 - 1])
)
# One kind per column and batch: ccxt's usual int times and float values, and their edges.
_COLUMN = st.sampled_from(["float", "int", "mixed"])


@st.composite
def _uniform_batches(draw) -> list:
    n = draw(st.integers(min_value=0, max_value=30))
    kinds = [draw(_COLUMN) for _ in range(5)]
    value = {"float": _FLOATS, "int": _INTS, "mixed": st.one_of(_FLOATS, _INTS)}
    rows = [[draw(_TIMES), *(draw(value[kind]) for kind in kinds)] for _ in range(n)]
    return [tuple(row) for row in rows] if draw(st.booleans()) else rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_uniform_batches())
def test_property_typed_columns_give_the_object_paths_outcome(rows: list) -> None:
    """Uniform columns are typed before the checks (speed); the outcome, row for row and dead letter
    for dead letter, is the one of the Python-object columns the checks were written against."""
    typed = run(rows)
    with mock.patch.object(normalize_module, "_typed_if_uniform", lambda column: column):
        objects = run(rows)
    pd.testing.assert_frame_equal(typed.valid, objects.valid, check_exact=True)
    pd.testing.assert_frame_equal(typed.dead_letters, objects.dead_letters, check_exact=True)
    assert (typed.duplicates_dropped, typed.incomplete_dropped, typed.rows_in) == (
        objects.duplicates_dropped,
        objects.incomplete_dropped,
        objects.rows_in,
    )
