"""What the simulator emitted against what the warehouse holds: the live path's ground truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.server import SimulatorServer

SYMBOL = "BTC/USD"


def stored_trades(duckdb_path: Path) -> pd.DataFrame:
    """raw.trades with event times in epoch ms."""
    return DuckDBWarehouse(duckdb_path).query_df(
        "select exchange, symbol, trade_id, epoch_ms(ts) as ts_ms, price, amount, source from raw.trades", {}
    )


def ledger(sim: SimulatorServer, exchange: str, symbol: str = SYMBOL) -> pd.DataFrame:
    """The trades the simulator emitted on a market's stream (ids and times)."""
    ids, ts = sim.state.streams.ledger(exchange, symbol).arrays()
    return pd.DataFrame({"trade_id": ids.astype(str), "ts_ms": ts})


def all_stopped(sim: SimulatorServer, markets: tuple[str, ...]) -> bool:
    """Every market's replay feed has started (a subscriber came) and stopped."""
    feeds = sim.stream_status()["feeds"]
    stopped = {f"{f['exchange']}:{f['symbol']}" for f in feeds if f["state"] == "stopped"}
    return all(market in stopped for market in markets)


def stored_counts(duckdb_path: Path) -> dict[str, int]:
    """Trades per exchange in raw.trades; empty while the table does not exist or the file is busy."""
    if not duckdb_path.exists():
        return {}
    try:
        return stored_trades(duckdb_path).groupby("exchange").size().to_dict()
    except Exception:  # noqa: BLE001 - raw.trades not created yet, or the file is busy
        return {}


def complete(duckdb_path: Path, sim: SimulatorServer, exchanges: tuple[str, ...]) -> bool:
    """raw.trades holds at least as many trades per exchange as were emitted."""
    counts = stored_counts(duckdb_path)
    return all(counts.get(e, 0) >= len(ledger(sim, e)) for e in exchanges)


def progress(duckdb_path: Path, sim: SimulatorServer, exchanges: tuple[str, ...]) -> str:
    """For a timeout's message: each feed's state, and stored vs emitted trades per exchange."""
    feeds = {f"{f['exchange']}:{f['symbol']}": f["state"] for f in sim.stream_status()["feeds"]}
    emitted = {e: len(ledger(sim, e)) for e in exchanges}
    return f"feeds {feeds}; stored {stored_counts(duckdb_path)}; emitted {emitted}"


def compare(duckdb_path: Path, sim: SimulatorServer, exchanges: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Per exchange: expected (emitted), loaded (of those), lost, duplicated rows, extra trades."""
    empty = pd.DataFrame(columns=["exchange", "trade_id"])
    stored = stored_trades(duckdb_path) if duckdb_path.exists() else empty
    result = {}
    for exchange in exchanges:
        emitted = set(ledger(sim, exchange).trade_id)
        rows = stored[stored.exchange == exchange].trade_id
        held = set(rows)
        result[exchange] = {
            "expected": len(emitted),
            "loaded": len(emitted & held),
            "lost": len(emitted - held),
            "duplicated": len(rows) - len(held),
            "extra": len(held - emitted),
        }
    return result
