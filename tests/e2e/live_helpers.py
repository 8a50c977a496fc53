"""Shared pieces of the live-path end-to-end tests: collector settings, stored trades, the ledger."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cryptopipe_dagster.lib.collector import CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.checkpoint import start_checkpoint
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.server import SimulatorServer

START = "2019-10-17T05:00:00Z"
MARKETS = ("coinbaseexchange:BTC/USD", "bitstamp:BTC/USD", "kraken:BTC/USD")
EXCHANGES = tuple(m.split(":")[0] for m in MARKETS)


def collector_settings(
    project: str, sim: SimulatorServer, state_path: Path | None = None
) -> CollectorSettings:
    """The three live markets (Kraken with candles), quick reconnects and sweeps for tests; with
    `state_path`, a checkpoint at the replay's start (the collector answers for every emitted trade)."""
    if state_path is not None:
        start_checkpoint(state_path, list(MARKETS), int(pd.Timestamp(START).timestamp() * 1000))
    return CollectorSettings(
        state_path=state_path,
        markets=tuple(parse_market(m, candles=m.startswith("kraken")) for m in MARKETS),
        project_id=project,
        exchange_api_url=sim.base_url,
        stall_timeout_s=1.0,
        sweep_interval_s=2.0,
        reconnect_initial_s=0.1,
        reconnect_max_s=1.0,
    )


def stored_trades(duckdb_path: Path) -> pd.DataFrame:
    """raw.trades with event times in epoch ms."""
    return DuckDBWarehouse(duckdb_path).query_df(
        "select exchange, symbol, trade_id, epoch_ms(ts) as ts_ms, price, amount, source from raw.trades", {}
    )


def ledger(sim: SimulatorServer, exchange: str) -> pd.DataFrame:
    """The trades the simulator emitted on `exchange`'s BTC/USD stream (ids and times)."""
    ids, ts = sim.state.streams.ledger(exchange, "BTC/USD").arrays()
    return pd.DataFrame({"trade_id": ids.astype(str), "ts_ms": ts})


def all_stopped(sim: SimulatorServer) -> bool:
    """Every live market's replay feed has started (a subscriber came) and stopped."""
    feeds = sim.stream_status()["feeds"]
    stopped = {f"{f['exchange']}:{f['symbol']}" for f in feeds if f["state"] == "stopped"}
    return all(market in stopped for market in MARKETS)


def complete(duckdb_path: Path, sim: SimulatorServer) -> bool:
    """raw.trades holds at least as many trades per exchange as were emitted."""
    if not duckdb_path.exists():
        return False
    try:
        stored = stored_trades(duckdb_path)
    except Exception:  # noqa: BLE001 - raw.trades not created yet, or the file is busy
        return False
    counts = stored.groupby("exchange").size().to_dict()
    return all(counts.get(e, 0) >= len(ledger(sim, e)) for e in EXCHANGES)


def progress(duckdb_path: Path, sim: SimulatorServer) -> str:
    """For a timeout's message: each feed's state, and stored vs emitted trades per exchange."""
    feeds = {f"{f['exchange']}:{f['symbol']}": f["state"] for f in sim.stream_status()["feeds"]}
    try:
        counts = stored_trades(duckdb_path).groupby("exchange").size().to_dict()
    except Exception as error:  # noqa: BLE001 - the file may not exist or be busy
        counts = {"unreadable": repr(error)}
    emitted = {e: len(ledger(sim, e)) for e in EXCHANGES}
    return f"feeds {feeds}; stored {counts}; emitted {emitted}"
