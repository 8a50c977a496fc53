from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from cryptopipe_dagster.lib.edge.schemas import (
    CandleSchema,
    DeadLetterSchema,
    TradeSchema,
    check_ts_aligned_to_timeframe,
    schema_columns,
)

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def candles(n: int = 3, **overrides: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "exchange": ["kraken"] * n,
            "symbol": ["BTC/USD"] * n,
            "timeframe": ["1m"] * n,
            "ts": [T0 + pd.Timedelta(minutes=i) for i in range(n)],
            "open": [100.0] * n,
            "high": [101.0] * n,
            "low": [99.0] * n,
            "close": [100.5] * n,
            "volume": [2.0] * n,
            "source": ["rest"] * n,
            "ingested_at": [T0 + pd.Timedelta(hours=1)] * n,
        }
    )
    for column, value in overrides.items():
        frame[column] = value
    return frame


def failing_checks(schema: type[pa.DataFrameModel], frame: pd.DataFrame) -> set[tuple[object, str, object]]:
    with pytest.raises(pa.errors.SchemaErrors) as raised:
        schema.validate(frame, lazy=True)
    cases = raised.value.failure_cases
    frame_level = cases["schema_context"] == "DataFrameSchema"
    return {
        (None if fl else col, check, idx)
        for col, check, idx, fl in zip(
            cases["column"], cases["check"], cases["index"], frame_level, strict=True
        )
    }


def test_good_frame_is_coerced_to_the_canonical_dtypes() -> None:
    valid = CandleSchema.validate(candles(), lazy=True)
    assert list(valid.columns) == schema_columns(CandleSchema)
    assert str(valid["ts"].dtype) == "datetime64[ns, UTC]"
    assert valid["open"].dtype == np.float64
    assert str(valid["exchange"].dtype) == "string"


def test_every_field_has_a_description_and_strict_coerce_config() -> None:
    for schema in (CandleSchema, TradeSchema, DeadLetterSchema):
        built = schema.to_schema()
        assert built.strict is True and built.coerce is True
        assert all(column.description for column in built.columns.values()), schema.__name__


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("open", -1.0, "greater_than(0)"),
        ("high", 0.0, "greater_than(0)"),
        ("volume", -0.5, "greater_than_or_equal_to(0)"),
        ("symbol", "btc-usd", "str_matches('^[A-Z0-9]+/[A-Z0-9]+$')"),
        ("timeframe", "0m", "str_matches('^[1-9][0-9]*[smhdw]$')"),
        ("exchange", "Kraken", "str_matches('^[a-z0-9_]+$')"),
        ("close", np.nan, "not_nullable"),
    ],
)
def test_column_checks_fire_with_their_names(column: str, value: object, check: str) -> None:
    frame = candles()
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    assert (column, check, 1) in failing_checks(CandleSchema, frame)


def test_source_must_be_a_known_path() -> None:
    frame = candles(source=["rest", "carrier_pigeon", "ws"])
    found = failing_checks(CandleSchema, frame)
    assert any(col == "source" and check.startswith("isin(") and idx == 1 for col, check, idx in found)


def test_ohlc_consistent_fires_by_name() -> None:
    frame = candles()
    frame.loc[0, "low"] = 100.8  # above open
    frame.loc[2, "high"] = 100.2  # below close
    found = failing_checks(CandleSchema, frame)
    assert {(None, "ohlc_consistent", 0), (None, "ohlc_consistent", 2)} <= found
    assert (None, "ohlc_consistent", 1) not in found


def test_ts_aligned_to_timeframe_fires_by_name_per_timeframe() -> None:
    frame = candles(4)
    frame["timeframe"] = ["1m", "1h", "1h", "1m"]
    frame["ts"] = [
        T0 + pd.Timedelta(seconds=30),
        T0 + pd.Timedelta(hours=2),
        T0 + pd.Timedelta(minutes=5),
        T0,
    ]
    found = {
        idx for col, check, idx in failing_checks(CandleSchema, frame) if check == "ts_aligned_to_timeframe"
    }
    assert found == {0, 2}


def test_weekly_candles_may_open_on_thursday_epoch_grid_or_monday() -> None:
    monday, thursday = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-04", tz="UTC")
    frame = candles(3, timeframe="1w")
    frame["ts"] = [monday, thursday, pd.Timestamp("2024-01-02", tz="UTC")]
    assert check_ts_aligned_to_timeframe(frame).tolist() == [True, True, False]


def test_ts_not_in_future_fires_by_name() -> None:
    frame = candles()
    frame.loc[1, "ts"] = pd.Timestamp.now(tz="UTC").ceil("min") + pd.Timedelta(minutes=5)
    assert (None, "ts_not_in_future", 1) in failing_checks(CandleSchema, frame)


def test_strict_rejects_extra_and_missing_columns() -> None:
    with pytest.raises(pa.errors.SchemaErrors, match="column_in_schema"):
        CandleSchema.validate(candles().assign(extra=1), lazy=True)
    with pytest.raises(pa.errors.SchemaErrors, match="column_in_dataframe"):
        CandleSchema.validate(candles().drop(columns=["volume"]), lazy=True)


def test_trade_schema_checks() -> None:
    trades = pd.DataFrame(
        {
            "exchange": ["kraken"] * 3,
            "symbol": ["BTC/USD"] * 3,
            "trade_id": ["1", "", "3"],
            "ts": [T0] * 3,
            "price": [100.0, 100.0, 0.0],
            "amount": [1.0, -1.0, 1.0],
            "side": ["buy", "sell", "hold"],
            "source": ["ws"] * 3,
            "ingested_at": [T0] * 3,
        }
    )
    found = failing_checks(TradeSchema, trades)
    assert ("trade_id", "str_length(1, None)", 1) in found
    assert ("price", "greater_than(0)", 2) in found
    assert ("amount", "greater_than(0)", 1) in found
    assert any(col == "side" and idx == 2 for col, _check, idx in found)
    TradeSchema.validate(trades.iloc[[0]], lazy=True)


def test_dead_letter_schema_allows_null_symbol_timeframe_and_replayed_at() -> None:
    letter = pd.DataFrame(
        {
            "dead_letter_id": ["a" * 64],
            "dataset": ["trades"],
            "exchange": ["kraken"],
            "symbol": [None],
            "timeframe": [None],
            "source": ["ws"],
            "reason_code": ["malformed_row"],
            "check_name": ["row"],
            "error_detail": ["not a dict"],
            "raw_payload": ["[1, 2]"],
            "first_seen_at": [T0],
            "replayed_at": [pd.NaT],
        }
    )
    DeadLetterSchema.validate(letter, lazy=True)
    with pytest.raises(pa.errors.SchemaErrors):
        DeadLetterSchema.validate(letter.assign(dead_letter_id="not-a-sha"), lazy=True)
