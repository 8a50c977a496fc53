"""Small canonical frames (TradeSchema / CandleSchema shape) for the Pub/Sub tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.edge.schemas import CandleSchema, TradeSchema

INGESTED_AT = pd.Timestamp("2024-03-01T00:00:00Z")


def trades_frame(
    exchange: str = "binance", symbol: str = "BTC/USDT", n: int = 50, first_id: int = 0
) -> pd.DataFrame:
    """`n` validated trades of one market, one per second from 2024-03-01, ids first_id.."""
    ts = pd.date_range("2024-03-01", periods=n, freq="s", tz="UTC") + pd.Timedelta(seconds=first_id)
    frame = pd.DataFrame(
        {
            "exchange": exchange,
            "symbol": symbol,
            "trade_id": [str(first_id + i) for i in range(n)],
            "ts": ts,
            "price": 60_000.0 + np.arange(n) * 0.25,
            "amount": 0.001 + np.arange(n) * 1e-6,
            "side": np.where(np.arange(n) % 2 == 0, "buy", "sell"),
            "source": "ws",
            "ingested_at": INGESTED_AT,
        }
    )
    return TradeSchema.validate(frame)


def candles_frame(exchange: str = "coinbaseexchange", symbol: str = "BTC/USD", n: int = 24) -> pd.DataFrame:
    """`n` validated hourly candles of one market from 2024-03-01."""
    close = 60_000.0 + np.arange(n) * 10.0
    frame = pd.DataFrame(
        {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": "1h",
            "ts": pd.date_range("2024-03-01", periods=n, freq="h", tz="UTC"),
            "open": close - 5.0,
            "high": close + 20.0,
            "low": close - 20.0,
            "close": close,
            "volume": 12.5,
            "source": "rest",
            "ingested_at": INGESTED_AT,
        }
    )
    return CandleSchema.validate(frame)
