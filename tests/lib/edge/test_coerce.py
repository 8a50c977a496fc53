from __future__ import annotations

import random
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryptopipe_dagster.lib.edge.coerce import coerce_epoch_ms, coerce_numeric, significant_digits


def test_fast_path_for_numeric_columns() -> None:
    parsed = coerce_numeric(pd.Series([1.5, np.nan, np.inf, 2e15, -3.0]))
    assert parsed.null.tolist() == [False, True, False, False, False]
    assert parsed.non_numeric.tolist() == [False, False, True, False, False]
    assert parsed.imprecise.tolist() == [False, False, False, True, False]


def test_bool_column_is_not_numeric() -> None:
    assert coerce_numeric(pd.Series([True, False])).non_numeric.all()


def test_mixed_objects() -> None:
    raw = pd.Series([1, 2.5, "3.25", None, "x", True, [1], Decimal("0.1"), b"12", 10**20], dtype=object)
    parsed = coerce_numeric(raw)
    assert parsed.values[:3].tolist() == [1.0, 2.5, 3.25]
    assert parsed.values[7] == 0.1
    assert parsed.null.tolist() == [False, False, False, True] + [False] * 6
    assert np.flatnonzero(parsed.non_numeric).tolist() == [4, 5, 6, 8]
    assert np.flatnonzero(parsed.imprecise).tolist() == [9]


@pytest.mark.parametrize(
    ("text", "digits"),
    [("0.00100000", 1), ("123.450", 5), ("-1.5e-7", 2), ("100", 1), ("1234567890.12345", 15), (".5", 1)],
)
def test_significant_digits(text: str, digits: int) -> None:
    assert significant_digits(pd.Series([text])).iloc[0] == digits


def test_sixteen_significant_digits_are_refused() -> None:
    parsed = coerce_numeric(pd.Series(["1234567890.123456", "1234567890.12345"], dtype=object))
    assert parsed.imprecise.tolist() == [True, False]


def test_decimal_text_parses_exactly_where_pandas_to_numeric_does_not() -> None:
    rng = random.Random(7)
    text = [repr(rng.random() * 10 ** rng.randint(-6, 6)) for _ in range(2_000)]
    text = [t for t in text if significant_digits(pd.Series([t])).iloc[0] <= 15]
    parsed = coerce_numeric(pd.Series(text, dtype=object))
    assert parsed.values.tolist() == [float(t) for t in text]


@given(st.decimals(min_value=Decimal("1e-8"), max_value=Decimal("1e12"), places=8, allow_nan=False))
def test_round_trip_of_exchange_decimals(value: Decimal) -> None:
    text = format(value, "f")
    parsed = coerce_numeric(pd.Series([text], dtype=object))
    if parsed.imprecise[0]:
        assert significant_digits(pd.Series([text])).iloc[0] > 15
    else:
        parsed_value = float(parsed.values[0])
        assert parsed_value == float(text)
        assert Decimal(repr(parsed_value)) == Decimal(text)  # shortest repr is the exchange's text


def test_epoch_ms_bounds_and_datetimes() -> None:
    raw = pd.Series(
        [1_704_067_200_000, 1_704_067_200, 1_704_067_200_000_000, None, 1_704_067_200_000.5], dtype=object
    )
    parsed = coerce_epoch_ms(raw)
    assert parsed.ns[0] == pd.Timestamp("2024-01-01", tz="UTC").value
    assert parsed.out_of_range.tolist() == [False, True, True, False, True]
    assert parsed.null.tolist() == [False, False, False, True, False]
    stamps = coerce_epoch_ms(
        pd.Series(pd.to_datetime(["2024-01-01 00:00:00.000123", None, "1990-01-01 00:00:00.000000"]))
    )
    assert stamps.ns[0] == pd.Timestamp("2024-01-01 00:00:00.000123", tz="UTC").value
    assert stamps.null.tolist() == [False, True, False] and stamps.out_of_range.tolist() == [
        False,
        False,
        True,
    ]
