"""Benchmark input: real simulator trades as ccxt returns them, tiled to any size, with 5% duplicates
and 0.1% invalid records, as raw dicts or as an Arrow table of the same records.

The seed trades are fetched once over loopback from the exchange simulator with unmodified ccxt
(Kraken's REST API serving the Coinbase recording), so payloads carry every field ccxt fills in
(`info`, `fee`, `fees`, ...). Tiles shift ids and times so every base record is unique.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import ccxt
import numpy as np
import pyarrow as pa

from cryptopipe_dagster.lib.edge.normalize_trades import TRADE_FIELDS
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator.server import SimulatorServer

SEED_START = "2019-10-17T00:00:00Z"
SEED_TRADES = 20_000
DUPLICATE_SHARE = 0.05
INVALID_SHARE = 0.001
ID_STRIDE = 10**12  # tile k adds k * ID_STRIDE to every trade id


@dataclass(frozen=True)
class TradeInput:
    """One benchmark input: the records (dicts) and the same records as Arrow."""

    dicts: list[dict] | None
    table: pa.Table
    unique: int  # distinct valid trades a correct load ends with
    duplicates: int
    invalid: int


def seed_trades(data_dir: Path, count: int = SEED_TRADES) -> list[dict]:
    """`count` consecutive ccxt trade dicts from the simulator's Kraken REST API."""
    with SimulatorServer(data_dir, seed=0) as sim:
        exchange = ccxt.kraken({"enableRateLimit": False})
        point_exchange_at(exchange, sim.base_url)
        since = exchange.parse8601(SEED_START)
        trades: list[dict] = []
        while len(trades) < count:
            page = exchange.fetch_trades("BTC/USD", since)
            fresh = [t for t in page if not trades or int(t["id"]) > int(trades[-1]["id"])]
            if not fresh:
                break
            trades += fresh
            since = fresh[-1]["timestamp"]
    return trades[:count]


def build_input(seed: list[dict], size: int, *, with_dicts: bool, rng_seed: int = 7) -> TradeInput:
    """`size` records: unique trades tiled from `seed`, then 5% duplicates and 0.1% invalid mixed in."""
    rng = np.random.default_rng(rng_seed)
    n_dup = int(size * DUPLICATE_SHARE)
    n_base = size - n_dup
    span_ms = seed[-1]["timestamp"] - seed[0]["timestamp"] + 1
    tile = np.arange(n_base) // len(seed)
    source = np.arange(n_base) % len(seed)
    columns = _seed_columns(seed)
    ids = (columns["id"][source] + tile * ID_STRIDE).astype(np.int64)
    ts = columns["timestamp"][source] + tile * span_ms
    order = np.concatenate([np.arange(n_base), rng.integers(0, n_base, n_dup)])  # duplicates: repeats
    rng.shuffle(order[n_base // 2 :])  # duplicates arrive interleaved with the second half
    invalid = rng.choice(size, int(size * INVALID_SHARE), replace=False)
    price = columns["price"][source][order % n_base].copy()
    price[invalid] = -price[invalid]  # a negative price: non_positive_price
    table = pa.table(
        {
            "id": pa.array(ids[order].astype(str)),
            "timestamp": pa.array(ts[order]),
            "symbol": pa.array(np.full(size, "BTC/USD")),
            "price": pa.array(price),
            "amount": pa.array(columns["amount"][source][order % n_base]),
            "side": pa.array(columns["side"][source][order % n_base]),
        }
    )
    dicts = _dicts(seed, source, ids, ts, order, price) if with_dicts else None
    unique_valid = len(np.unique(order[~np.isin(np.arange(size), invalid)]))
    return TradeInput(dicts, table, unique_valid, size - len(np.unique(order)), len(invalid))


def _seed_columns(seed: list[dict]) -> dict[str, np.ndarray]:
    return {
        "id": np.array([int(t["id"]) for t in seed], dtype=np.int64),
        "timestamp": np.array([t["timestamp"] for t in seed], dtype=np.int64),
        "price": np.array([t["price"] for t in seed], dtype=float),
        "amount": np.array([t["amount"] for t in seed], dtype=float),
        "side": np.array([t["side"] for t in seed], dtype=object),
    }


def _dicts(seed, source, ids, ts, order, price) -> list[dict]:
    """The records as full ccxt dicts (every field ccxt fills, `info` included), shallow-copied."""
    out = []
    for position, base in enumerate(order.tolist()):
        record = copy.copy(seed[source[base]])
        record["id"] = str(ids[base])
        record["timestamp"] = int(ts[base])
        record["price"] = float(price[position])
        out.append(record)
    return out


__all__ = ["TRADE_FIELDS", "TradeInput", "build_input", "seed_trades"]
