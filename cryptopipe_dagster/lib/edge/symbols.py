"""Trading-pair spellings from every exchange -> one canonical ``BASE/QUOTE`` form.

Rules, in order:
- Upper-case the text; one separator (``/``, ``-`` or ``_``) splits base from quote.
- Without a separator: Kraken's 8-letter ``XXBTZUSD`` form (two 4-letter asset codes) first, then a
  split on the longest known quote currency at the end (``BTCUSDT`` -> BTC/USDT, not BTCUSD/T).
- Each side goes through the alias table (XBT -> BTC, XDG -> DOGE, Kraken's X/Z-prefixed codes).
  Only listed codes are aliased: XRP, XLM, XTZ, ZEC are real assets, so no prefix is ever stripped
  by rule, and a quote is never swapped for another currency (USD stays USD, never USDT).
- ccxt's settle suffix (``BTC/USDT:USDT``) names a derivative contract. The pipeline stores spot
  markets only, so it is rejected rather than kept or stripped (stripping would mix a perpetual
  swap's prices into the spot table).
Everything else raises ``InvalidSymbol`` naming the value.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.errors import InvalidSymbol

ALIASES: dict[str, str] = {
    "XBT": "BTC",
    "XDG": "DOGE",
    # Kraken's legacy 4-letter asset codes: X for crypto, Z for fiat.
    "XXBT": "BTC",
    "XETH": "ETH",
    "XLTC": "LTC",
    "XXRP": "XRP",
    "XXLM": "XLM",
    "XXDG": "DOGE",
    "XXMR": "XMR",
    "XETC": "ETC",
    "XZEC": "ZEC",
    "XREP": "REP",
    "XMLN": "MLN",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZJPY": "JPY",
    "ZCAD": "CAD",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}
_KRAKEN_ASSETS = frozenset(code for code in ALIASES if len(code) == 4)

# Quote currencies recognised at the end of a separator-less pair; the longest match wins.
KNOWN_QUOTES: tuple[str, ...] = tuple(
    sorted(
        {
            "USDT",
            "USDC",
            "BUSD",
            "TUSD",
            "FDUSD",
            "USDP",
            "DAI",
            "PYUSD",
            "USD",
            "EUR",
            "GBP",
            "JPY",
            "AUD",
            "CAD",
            "CHF",
            "TRY",
            "BRL",
            "KRW",
            "BTC",
            "XBT",
            "ETH",
            "BNB",
        },
        key=len,
        reverse=True,
    )
)

_SIDE = re.compile(r"[A-Z0-9]+")
_SEPARATORS = re.compile(r"[/\-_]")


def canonical_symbol(raw: str) -> str:
    """Return ``BASE/QUOTE`` (upper case, aliases applied) for any supported spelling of a pair.

    Raises InvalidSymbol, naming `raw`, for anything that is not one unambiguous spot pair.
    """
    if not isinstance(raw, str) or not raw:
        raise InvalidSymbol(raw, "expected a non-empty string such as BTC/USD")
    if not raw.isascii():
        # str.upper() maps some non-ASCII letters onto ASCII ones ('ſ' -> 'S'); refuse them first.
        raise InvalidSymbol(raw, "only ASCII letters, digits and one of / - _ are allowed")
    text = raw.upper()
    if ":" in text:
        raise InvalidSymbol(raw, "derivative settle suffix ':...' is not supported; spot pairs only")
    parts = _SEPARATORS.split(text)
    if len(parts) == 1:
        base, quote = _split_unseparated(raw, text)
    elif len(parts) == 2:
        base, quote = parts
    else:
        raise InvalidSymbol(raw, "expected exactly one separator between BASE and QUOTE")
    for side in (base, quote):
        if not _SIDE.fullmatch(side):
            raise InvalidSymbol(raw, "BASE and QUOTE must be non-empty and only contain A-Z and 0-9")
    return f"{ALIASES.get(base, base)}/{ALIASES.get(quote, quote)}"


def _split_unseparated(raw: str, text: str) -> tuple[str, str]:
    if len(text) == 8 and text[:4] in _KRAKEN_ASSETS and text[4:] in _KRAKEN_ASSETS:
        return text[:4], text[4:]
    splits = [(text[: -len(q)], q) for q in KNOWN_QUOTES if text.endswith(q) and len(text) > len(q)]
    if not splits:
        raise InvalidSymbol(raw, "no separator and no known quote currency at the end")
    # The longest quote wins, unless only a shorter one leaves a known base: XBTUSD is XBT/USD,
    # not XB/TUSD; BTCTUSD stays BTC/TUSD.
    known = [(base, quote) for base, quote in splits if base in ALIASES or base in KNOWN_QUOTES]
    return (known or splits)[0]


def canonical_symbols(symbols: pd.Series) -> pd.Series:
    """Vectorized canonical_symbol: each distinct value is parsed once, then mapped over the series.

    Raises InvalidSymbol for the first bad distinct value.
    """
    codes, uniques = pd.factorize(symbols, use_na_sentinel=False)
    canonical = [canonical_symbol(value) for value in uniques]
    return pd.Series(np.array(canonical, dtype=object)[codes], index=symbols.index, name=symbols.name)
