from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptopipe_dagster.lib.edge.normalize import TradeBatch, normalize_trades
from cryptopipe_dagster.lib.edge.schemas import DeadLetterSchema, TradeSchema, schema_columns
from cryptopipe_dagster.lib.errors import ConfigError, SchemaDrift

T0 = 1_704_067_200_000
NOW = pd.Timestamp("2024-01-01 01:00", tz="UTC")


def trade(i: int, **overrides: object) -> dict:
    record = {
        "id": str(1000 + i),
        "timestamp": T0 + i * 1_000,
        "datetime": "ignored",
        "symbol": "BTC/USD",
        "price": 42_000.5 + i,
        "amount": 0.01,
        "side": "buy" if i % 2 else "sell",
        "info": {"raw": i},
    }
    return record | overrides


def run(trades: list, **kwargs: object) -> TradeBatch:
    return normalize_trades(trades, **({"exchange": "kraken", "source": "ws", "now": NOW} | kwargs))  # type: ignore[arg-type]


def test_good_trades() -> None:
    batch = run([trade(2), trade(1), trade(0, symbol="XXBTZUSD")])
    assert list(batch.valid.columns) == schema_columns(TradeSchema)
    assert batch.valid["trade_id"].tolist() == ["1000", "1001", "1002"]  # sorted by ts
    assert batch.valid["symbol"].unique().tolist() == ["BTC/USD"]
    TradeSchema.validate(batch.valid)
    assert batch.dead_letters.empty and batch.rows_in == 3


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (None, "malformed_row"),
        ([1, 2, 3], "malformed_row"),
        (trade(5, symbol="NOTAPAIR"), "invalid_symbol"),
        (trade(5, symbol=None), "null_value"),
        (trade(5, symbol=["BTC/USD"]), "invalid_symbol"),
        (trade(5, symbol=7), "invalid_symbol"),
        (trade(5, id={"a": 1}), "invalid_trade_id"),
        (trade(5, price=None), "null_value"),
        (trade(5, price="abc"), "non_numeric_value"),
        (trade(5, amount=True), "non_numeric_value"),
        (trade(5, price=0.0), "non_positive_price"),
        (trade(5, amount=-1.0), "non_positive_amount"),
        (trade(5, side="hold"), "invalid_side"),
        (trade(5, id=[1]), "invalid_trade_id"),
        (trade(5, timestamp=T0 // 1000), "ts_out_of_range"),
        (trade(5, timestamp=T0 + 86_400_000), "ts_in_future"),
        (trade(5, price="1.23456789012345678"), "precision_exceeded"),
    ],
)
def test_hostile_trades_become_dead_letters(record: object, reason: str) -> None:
    batch = run([trade(0), record, trade(1)])
    assert batch.valid["trade_id"].tolist() == ["1000", "1001"]
    assert batch.dead_letters["reason_code"].tolist() == [reason]
    letter = batch.dead_letters.iloc[0]
    assert letter["dataset"] == "trades" and letter["raw_payload"] == json.dumps(record)
    DeadLetterSchema.validate(batch.dead_letters)
    assert batch.rows_in == 3


def test_numeric_ids_and_missing_side() -> None:
    batch = run([trade(0, id=7, side=None)])
    assert batch.valid["trade_id"].tolist() == ["7"]
    assert batch.valid["side"].tolist() == ["unknown"]


def test_missing_id_gets_a_deterministic_synthetic_id() -> None:
    first = run([trade(0, id=None), trade(1, id="")])
    again = run([trade(0, id=None), trade(1, id="")])
    assert first.valid["trade_id"].str.startswith("syn-").all()
    assert first.valid["trade_id"].tolist() == again.valid["trade_id"].tolist()
    assert first.valid["trade_id"].is_unique


def test_duplicates_by_exchange_symbol_trade_id_keep_last() -> None:
    batch = run([trade(0), trade(1), trade(0, amount=0.5), trade(0, symbol="ETH/USD")])
    assert batch.duplicates_dropped == 1
    btc = batch.valid[batch.valid["symbol"] == "BTC/USD"].set_index("trade_id")
    assert btc.loc["1000", "amount"] == 0.5
    assert len(batch.valid) == 3 and batch.rows_in == 4


def test_configuration_and_shape_errors() -> None:
    with pytest.raises(ConfigError):
        run([trade(0)], exchange="Not An Id")
    with pytest.raises(SchemaDrift):
        run({"error": 1})  # type: ignore[arg-type]
    assert run([]).rows_in == 0


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),
    st.integers(-5, 10**16),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(
        st.one_of(
            st.integers(0, 20).map(trade),
            st.tuples(
                st.integers(0, 20),
                st.sampled_from(["price", "amount", "side", "id", "symbol"]),
                _FIELD_VALUES,
            ).map(lambda t: trade(t[0], **{t[1]: t[2]})),
            st.sampled_from([None, 1, "x", []]),
        ),
        max_size=30,
    )
)
def test_property_zero_silent_loss_and_unique_keys(records: list) -> None:
    batch = run(records)
    assert batch.rows_in == len(records)
    assert not batch.valid.duplicated(subset=["exchange", "symbol", "trade_id"]).any()
    TradeSchema.validate(batch.valid)
    DeadLetterSchema.validate(batch.dead_letters)


def test_arrow_input_gives_the_same_batch_as_dicts() -> None:
    import pyarrow as pa

    from cryptopipe_dagster.lib.edge.normalize_trades import TRADE_FIELDS, normalize_trades_table

    records = [trade(i) for i in range(50)] + [trade(3), trade(60, price=-1.0), trade(61, id="garbage")]
    table = pa.table({name: [r[name] for r in records] for name in TRADE_FIELDS})
    from_dicts = run(records, ingested_at=NOW)
    from_arrow = normalize_trades_table(table, exchange="kraken", source="ws", now=NOW, ingested_at=NOW)
    pd.testing.assert_frame_equal(from_arrow.valid, from_dicts.valid)
    assert from_arrow.duplicates_dropped == from_dicts.duplicates_dropped == 1
    assert from_arrow.dead_letters["reason_code"].tolist() == ["non_positive_price", "invalid_trade_id"]
    assert json.loads(from_arrow.dead_letters["raw_payload"].iloc[1])["id"] == "garbage"
    with pytest.raises(SchemaDrift, match="price"):
        normalize_trades_table(table.drop(["price"]), exchange="kraken")
