from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cryptopipe_dagster.lib.edge.symbols import ALIASES, KNOWN_QUOTES, canonical_symbol, canonical_symbols
from cryptopipe_dagster.lib.errors import InvalidSymbol


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BTC/USD", "BTC/USD"),
        ("btc-usd", "BTC/USD"),
        ("BTC_USD", "BTC/USD"),
        ("XBT/USD", "BTC/USD"),
        ("XXBTZUSD", "BTC/USD"),
        ("XETHZUSD", "ETH/USD"),
        ("XETHZEUR", "ETH/EUR"),
        ("XLTCZEUR", "LTC/EUR"),
        ("BTCUSD", "BTC/USD"),
        ("btcusdt", "BTC/USDT"),  # longest quote wins: not BTCUSD/T nor BTCUS/DT
        ("ETHUSDC", "ETH/USDC"),
        ("ethbtc", "ETH/BTC"),
        ("XBTUSDT", "BTC/USDT"),
        ("ETHXBT", "ETH/BTC"),
        ("XDG/EUR", "DOGE/EUR"),
        ("xdg-usd", "DOGE/USD"),
        ("XRP/USD", "XRP/USD"),  # X-prefixed real assets are never stripped
        ("XTZ-EUR", "XTZ/EUR"),
        ("1INCH/USDT", "1INCH/USDT"),
    ],
)
def test_spellings_become_canonical(raw: str, expected: str) -> None:
    assert canonical_symbol(raw) == expected


@pytest.mark.parametrize(("alias", "canonical"), sorted(ALIASES.items()))
def test_every_alias_applies_on_both_sides(alias: str, canonical: str) -> None:
    assert canonical_symbol(f"{alias}/EUR") == f"{canonical}/EUR"
    assert canonical_symbol(f"ABC-{alias}") == f"ABC/{canonical}"


def test_quote_is_never_swapped_for_another_currency() -> None:
    assert canonical_symbol("BTC/USD") == "BTC/USD"
    assert canonical_symbol("BTCUSD") == "BTC/USD"
    assert canonical_symbol("ZUSD/ZEUR") == "USD/EUR"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        None,
        42,
        b"BTC/USD",
        "BTC//USD",
        "BTC/",
        "/USD",
        "BTC/USD/EUR",
        "BTC-USD_EUR",
        "BTC/USDT:USDT",  # derivative settle suffix: spot only
        "FOOBAR",  # no separator, no known quote
        "USDT",  # only a quote
        "BTC/US D",
        " BTC/USD",
        "BTC/USD\n",
        "BTC.USD",
        "BTC/ÜSD",
        "btcuſd",  # 'ſ'.upper() == 'S': refused before upper-casing
    ],
)
def test_bad_input_raises_invalid_symbol_naming_the_value(bad: object) -> None:
    with pytest.raises(InvalidSymbol) as raised:
        canonical_symbol(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(raised.value)
    assert raised.value.symbol == bad


def test_vectorized_maps_each_distinct_value_once() -> None:
    series = pd.Series(["btcusdt", "XXBTZUSD", "btcusdt", "eth-usd"], index=[10, 11, 12, 13], name="symbol")
    result = canonical_symbols(series)
    assert result.tolist() == ["BTC/USDT", "BTC/USD", "BTC/USDT", "ETH/USD"]
    assert result.index.tolist() == [10, 11, 12, 13]
    assert result.name == "symbol"


def test_vectorized_raises_on_a_bad_or_missing_value() -> None:
    with pytest.raises(InvalidSymbol, match="'NOPE'"):
        canonical_symbols(pd.Series(["BTC/USD", "NOPE"]))
    with pytest.raises(InvalidSymbol):
        canonical_symbols(pd.Series(["BTC/USD", None]))


_SIDE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8).filter(
    lambda side: side not in ALIASES
)


@given(base=_SIDE, quote=_SIDE, separator=st.sampled_from(["/", "-", "_"]), lower=st.booleans())
def test_round_trip_with_separator(base: str, quote: str, separator: str, lower: bool) -> None:
    raw = f"{base}{separator}{quote}"
    canonical = canonical_symbol(raw.lower() if lower else raw)
    assert canonical == f"{base}/{quote}"
    assert canonical_symbol(canonical) == canonical  # idempotent


@given(base=_SIDE, quote=st.sampled_from(KNOWN_QUOTES))
def test_round_trip_without_separator(base: str, quote: str) -> None:
    # Only pairs whose split is unambiguous: no longer known quote also ends the joined text.
    assume(not any(len(q) > len(quote) and f"{base}{quote}".endswith(q) for q in KNOWN_QUOTES))
    canonical = canonical_symbol(f"{base}{quote}")
    assert canonical == f"{base}/{ALIASES.get(quote, quote)}"
    assert canonical_symbol(canonical) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("XBTUSD", "BTC/USD"), ("BTCTUSD", "BTC/TUSD"), ("BTCUSDT", "BTC/USDT"), ("ETHXBT", "ETH/BTC")],
)
def test_unseparated_pairs_prefer_a_known_base_over_the_longest_quote(raw, canonical) -> None:
    assert canonical_symbol(raw) == canonical
