"""historical_backfill: candles per second of a year of 1m candles of one market through our REST path.

The exchange is the simulator run as its own process (`cryptopipe sim`, no faults, so no rate
limits) on loopback, serving Coinbase Exchange BTC/USD 1m candles derived from the recorded hours;
the client is unmodified ccxt (`create_exchange(..., rate_limit=False)`), so requests, JSON parsing
and pagination are ccxt's own. Ours: `backfill_candles` (lib/historical/candle_backfill.py), as the
raw/candles asset calls it: paginate, normalize + validate + dedup per page, MERGE with checkpoint
into a fresh DuckDB file every 50,000 rows, then the gap check. Baseline ccxt_fetch_only: the same pages with
plain `fetch_ohlcv` pagination and nothing else (no normalize, validate or load), so
ratio = ours / baseline says how much of the fetch rate our processing keeps (1 = it costs nothing).

A third run of ours over the window's first PROFILE_SPAN, under pyinstrument (sampling, wall time),
splits the time into ccxt + HTTP (inside `fetch_ohlcv`, which includes waiting for the simulator's
answer) and our code (normalize/validate, the DuckDB load, pagination, retries, gap check): record
share_in_our_code.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
from pyinstrument import Profiler

from cryptopipe_dagster.benchmarks.harness import Record, say
from cryptopipe_dagster.cli.simulator_process import running_simulator
from cryptopipe_dagster.lib.exchanges.clients import create_exchange
from cryptopipe_dagster.lib.historical.candle_backfill import (
    BackfillStats,
    BackfillTarget,
    backfill_candles,
    exchange_now,
    page_limit_of,
)
from cryptopipe_dagster.lib.timeframes import timeframe_ms
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse

NAME = "historical_backfill"
EXCHANGE, SYMBOL, TIMEFRAME = "coinbaseexchange", "BTC/USD", "1m"
START = pd.Timestamp("2018-01-01", tz="UTC")  # inside the recording (2017-07-01 .. 2019-10-17)
FULL_END, QUICK_END = pd.Timestamp("2019-01-01", tz="UTC"), pd.Timestamp("2018-01-08", tz="UTC")
# The profiled run covers at most this much: the profiler roughly doubles the run time, and the
# shares are per page (the year-long check is share_ours_by_difference, from the timed runs).
PROFILE_SPAN = pd.Timedelta(days=60)


def simulator(data_dir: Path):
    """The simulator in a child process (see running_simulator)."""
    return running_simulator(data_dir, seed=0)


def load_ours(url: str, target: BackfillTarget, db_path: Path, *, overlap: bool = True) -> BackfillStats:
    """The raw/candles asset's path for one target, into a fresh DuckDB file."""
    exchange = create_exchange(EXCHANGE, exchange_api_url=url, rate_limit=False)
    warehouse = DuckDBWarehouse(db_path)
    warehouse.ensure_schema()
    return backfill_candles(exchange, warehouse, target, now=exchange_now(exchange), overlap=overlap)


def fetch_only(url: str, target: BackfillTarget) -> tuple[int, int]:
    """Plain ccxt pagination over the same pages; returns (candles in the window, requests)."""
    exchange = create_exchange(EXCHANGE, exchange_api_url=url, rate_limit=False)
    step, limit = timeframe_ms(TIMEFRAME), page_limit_of(exchange)
    since, end = int(target.start.timestamp() * 1000), int(target.end.timestamp() * 1000)
    candles = requests = 0
    while since < end:
        rows = exchange.fetch_ohlcv(SYMBOL, TIMEFRAME, since, limit)
        requests += 1
        candles += sum(1 for row in rows if since <= row[0] < end)
        since = max(since + step, rows[-1][0] + step) if rows else since + limit * step
    return candles, requests


def _timed(function) -> tuple[object, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def profile_shares(url: str, target: BackfillTarget, db_path: Path) -> dict:
    """Wall-time shares of one profiled run of ours: ccxt + HTTP versus our code, and ours by part.

    Without the overlap: pyinstrument samples one thread, and the shares say where the work is."""
    profiler = Profiler(interval=0.002)
    profiler.start()
    load_ours(url, target, db_path, overlap=False)
    profiler.stop()
    root = profiler.last_session.root_frame()
    parts = {"ccxt_http": 0.0, "normalize_validate": 0.0, "duckdb_load": 0.0}
    _attribute(root, parts)
    total = root.time
    shares = {f"share_{name}": round(seconds / total, 4) for name, seconds in parts.items()}
    ours = 1 - parts["ccxt_http"] / total
    # Part of normalize_validate: the per-page Pandera call, a fixed cost per page whatever its size.
    pandera = _seconds_in(root, "validate", "/pandera/")
    return {
        "share_ours": round(ours, 4),
        **shares,
        "share_ours_other": round(ours - shares["share_normalize_validate"] - shares["share_duckdb_load"], 4),
        "share_pandera_validate": round(pandera / total, 4),
        "profiled_seconds": round(total, 3),
        "profiled_window": f"{target.start:%Y-%m-%d}..{target.end - pd.Timedelta(days=1):%Y-%m-%d}",
        "profiler": "pyinstrument, 2 ms sampling, wall time, a separate run without the overlap",
    }


# (function name, a fragment of its file path) -> bucket; the first match on a stack wins.
_BUCKETS = {
    ("fetch_ohlcv", "/ccxt/"): "ccxt_http",
    ("fetch_time", "/ccxt/"): "ccxt_http",
    ("normalize_ohlcv", "cryptopipe_dagster/lib/edge/normalize.py"): "normalize_validate",
    ("flush", "cryptopipe_dagster/lib/historical/candle_fetch.py"): "duckdb_load",
}


def _attribute(frame, parts: dict[str, float]) -> None:
    path = frame.file_path or ""
    for (function, fragment), bucket in _BUCKETS.items():
        if frame.function == function and fragment in path:
            parts[bucket] += frame.time
            return
    for child in frame.children:
        _attribute(child, parts)


def _seconds_in(frame, function: str, fragment: str) -> float:
    """Time in the outermost frames of `function` (from a file matching `fragment`) under `frame`."""
    if frame.function == function and fragment in (frame.file_path or ""):
        return frame.time
    return sum(_seconds_in(child, function, fragment) for child in frame.children)


def measure(url: str, target: BackfillTarget, work: Path) -> dict:
    """Warm both paths up on a few hours, then one timed run each and one profiled run of ours."""
    warmup = BackfillTarget(EXCHANGE, SYMBOL, TIMEFRAME, START, START + pd.Timedelta(hours=5))
    fetch_only(url, warmup)
    load_ours(url, warmup, work / "warmup.duckdb")
    (fetched, fetch_requests), fetch_s = _timed(lambda: fetch_only(url, target))
    say(f"{NAME}: ccxt fetch only: {fetched:,} candles in {fetch_requests:,} requests, {fetch_s:.1f} s")
    stats, ours_s = _timed(lambda: load_ours(url, target, work / "ours.duckdb"))
    say(f"{NAME}: ours: {stats.inserted:,} candles in {stats.requests:,} requests, {ours_s:.1f} s")
    stored = DuckDBWarehouse(work / "ours.duckdb").query_df("select count(*) from raw.candles").iloc[0, 0]
    if not stats.inserted == stored == fetched:
        raise AssertionError(f"{NAME}: ours stored {stats.inserted} ({stored}), ccxt fetched {fetched}")
    profiled = BackfillTarget(EXCHANGE, SYMBOL, TIMEFRAME, START, min(target.end, START + PROFILE_SPAN))
    say(f"{NAME}: profiling a third run of ours ({profiled.end - profiled.start} of it)")
    return {
        "stats": stats,
        "seconds": ours_s,
        "fetched": fetched,
        "fetch_requests": fetch_requests,
        "fetch_s": fetch_s,
        "shares": profile_shares(url, profiled, work / "profiled.duckdb"),
    }


def run(data_dir: Path, quick: bool = False) -> list[Record]:
    """One timed run of ours, one of the baseline, one profiled run of ours; see the docstring."""
    target = BackfillTarget(EXCHANGE, SYMBOL, TIMEFRAME, START, QUICK_END if quick else FULL_END)
    span = f"{target.start:%Y-%m-%d}..{target.end - pd.Timedelta(days=1):%Y-%m-%d}"
    say(f"{NAME}: {EXCHANGE} {SYMBOL} {TIMEFRAME} {span} from the simulator (a separate process)")
    with simulator(data_dir) as url, tempfile.TemporaryDirectory(prefix="cryptopipe-bench-") as tmp:
        result = measure(url, target, Path(tmp))
    stats, shares = result["stats"], result["shares"]
    rate, baseline_rate = stats.inserted / result["seconds"], result["fetched"] / result["fetch_s"]
    say(
        f"{NAME}: ours {rate:,.0f} candles/s, ccxt fetch only {baseline_rate:,.0f} candles/s; "
        f"{shares['share_ours']:.0%} of the wall time in our code"
    )
    details = {
        "scope": f"{EXCHANGE} {SYMBOL} {TIMEFRAME} {span}",
        "seconds": round(result["seconds"], 3),
        "baseline_seconds": round(result["fetch_s"], 3),
        "requests": stats.requests,
        "baseline_requests": result["fetch_requests"],
        "page_limit": page_limit_of(create_exchange(EXCHANGE, rate_limit=False)),
        "gap_candles_repaired": stats.gap_candles_repaired,
        "dead_letters": stats.dead_letters,
        "simulator": "own process (cryptopipe sim), loopback, no faults; its answer time is in ccxt_http",
        "share_ours_by_difference": round(1 - result["fetch_s"] / result["seconds"], 4),
        # The worker's own time: normalize + load, overlapped with the fetches (overlap.py).
        "processing_seconds": round(stats.processing_s, 3),
        **shares,
    }
    size = stats.inserted
    return [
        Record(NAME, size, "candles_per_s", rate, "ccxt_fetch_only", baseline_rate, details=details),
        Record(NAME, size, "share_in_our_code", shares["share_ours"], details=dict(details)),
    ]
