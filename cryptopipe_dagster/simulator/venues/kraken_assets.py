"""Kraken's names for the simulator's markets: asset ids (X/Z-prefixed legacy codes), pair ids and
the Assets / AssetPairs payloads, as ccxt's kraken parses them."""

from __future__ import annotations

from cryptopipe_dagster.simulator.market_data import VOLUME_DECIMALS, Market

# Kraken's asset ids (X/Z-prefixed legacy codes) and altnames.
ASSETS = {
    "BTC": ("XXBT", "XBT"),
    "ETH": ("XETH", "ETH"),
    "LTC": ("XLTC", "LTC"),
    "USD": ("ZUSD", "USD"),
    "EUR": ("ZEUR", "EUR"),
    "GBP": ("ZGBP", "GBP"),
}


def asset_id(code: str) -> str:
    """Kraken's asset id: the legacy X/Z code (XXBT, ZUSD) or, for assets listed since, the code."""
    return ASSETS[code][0] if code in ASSETS else code


def asset_altname(code: str) -> str:
    """Kraken's short name of an asset, e.g. XBT for BTC."""
    return ASSETS[code][1] if code in ASSETS else code


def pair_id(market: Market) -> str:
    """Kraken's pair id: XXBTZUSD for two legacy assets; newer pairs are keyed by their altname
    (as Kraken lists e.g. SOLUSD with base SOL, quote ZUSD), so a derived S003/USD is S003USD."""
    if market.base in ASSETS and market.quote in ASSETS:
        return asset_id(market.base) + asset_id(market.quote)
    return altname(market)


def altname(market: Market) -> str:
    """e.g. XBTUSD"""
    return asset_altname(market.base) + asset_altname(market.quote)


def wsname(market: Market) -> str:
    """Kraken's (websocket v1) name, e.g. XBT/USD."""
    return f"{asset_altname(market.base)}/{asset_altname(market.quote)}"


def asset(code: str) -> dict:
    """One entry of /0/public/Assets."""
    fiat = asset_id(code).startswith("Z")
    return {
        "aclass": "currency",
        "altname": asset_altname(code),
        "decimals": 4 if fiat else 10,
        "display_decimals": 2 if fiat else 5,
        "collateral_value": 1.0,
        "status": "enabled",
    }


def asset_pair(market: Market) -> dict:
    """One entry of /0/public/AssetPairs; the price precision is the recording's."""
    quote_id = asset_id(market.quote)
    fees = [[0, 0.26], [50000, 0.24], [100000, 0.22], [250000, 0.2], [500000, 0.18], [1000000, 0.16]]
    maker = [[0, 0.16], [50000, 0.14], [100000, 0.12], [250000, 0.1], [500000, 0.08], [1000000, 0.06]]
    return {
        "altname": altname(market),
        "wsname": wsname(market),
        "aclass_base": "currency",
        "base": asset_id(market.base),
        "aclass_quote": "currency",
        "quote": quote_id,
        "lot": "unit",
        "cost_decimals": 5,
        "pair_decimals": market.price_decimals,
        "lot_decimals": VOLUME_DECIMALS,
        "lot_multiplier": 1,
        "leverage_buy": [2, 3, 4, 5],
        "leverage_sell": [2, 3, 4, 5],
        "fees": fees,
        "fees_maker": maker,
        "fee_volume_currency": quote_id,
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.0001",
        "costmin": "0.5",
        "tick_size": f"{10**-market.price_decimals:.{market.price_decimals}f}",
        "status": "online",
    }
