"""incremental_cost: seconds of an incremental `dbt run` of the marts for ONE new day, against history.

Each warehouse is a fresh DuckDB file holding 1x, 4x or 16x days of history for Coinbase BTC/USD
(the recorded 1h candles, real data) before NEW_DAY, built once with a full `dbt run`. Then the new
day arrives as the daily partition the historical asset loads: its 1,440 1m candles, derived by the
simulator's series code (the exact children of that day's recorded hours), MERGEd into raw.candles.
Ours: `dbt run --select marts` with window_start/window_end = that day and exchanges = coinbase,
i.e. what the Dagster transform asset runs after a daily partition (best of `repeat`, the day
re-MERGEd idempotently before each). Baseline full_refresh: `dbt run --select marts --full-refresh`
on the same warehouse. Times are wall seconds of the dbt process, its start-up included (that is
what a refresh costs); dbt's own per-model seconds are in details. A last record is the
least-squares slope of the incremental seconds against the history multiple: ~0 means the cost of
refreshing a day does not grow with history (the marts' incremental contract).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cryptopipe_dagster.benchmarks.harness import Record, say
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.market_data import MarketStore
from cryptopipe_dagster.simulator.recordings import load_recordings
from cryptopipe_dagster.simulator.series import derived_minute_candles

NAME = "incremental_cost"
EXCHANGE, SYMBOL = "coinbaseexchange", "BTC/USD"
NEW_DAY = pd.Timestamp("2019-10-01", tz="UTC")
# 45 days x 16 = 720 days of 1h history still fits the recording (2017-07-01 .. 2019-10-17).
BASE_DAYS, QUICK_BASE_DAYS = 45, 10
MULTIPLES, QUICK_MULTIPLES = (1, 4, 16), (1, 4)
DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
CANDLE_COLUMNS = ["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
INGESTED_AT = pd.Timestamp("2024-01-01", tz="UTC")


class DbtWarehouse:
    """One DuckDB file and the dbt target/log dirs that belong to it (never dbt_project/target)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.db_path = work_dir / "warehouse.duckdb"
        self.warehouse = DuckDBWarehouse(self.db_path)
        self.warehouse.ensure_schema()

    def dbt(self, *args: str, dbt_vars: dict | None = None) -> tuple[float, float]:
        """Run `dbt <args>`; returns (wall seconds of the process, sum of dbt's model seconds)."""
        command = [str(Path(sys.executable).parent / "dbt"), *args]
        for flag, value in (
            ("--project-dir", DBT_PROJECT),
            ("--profiles-dir", DBT_PROJECT),
            ("--target", "local"),
            ("--target-path", self.work_dir / "target"),
            ("--log-path", self.work_dir / "logs"),
        ):
            command += [flag, str(value)]
        if dbt_vars is not None:
            command += ["--vars", json.dumps(dbt_vars)]
        env = {
            **os.environ,
            "CRYPTOPIPE_DUCKDB_PATH": str(self.db_path),
            "CRYPTOPIPE_DBT_TARGET": "local",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(
                f"dbt {' '.join(args)} failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
            )
        run_results = json.loads((self.work_dir / "target" / "run_results.json").read_text())
        return seconds, sum(float(r["execution_time"]) for r in run_results["results"])

    def load(self, candles: pd.DataFrame) -> None:
        """MERGE candles into raw.candles exactly as ingestion does (idempotent)."""
        self.warehouse.merge_candles(candles[CANDLE_COLUMNS].assign(source="rest", ingested_at=INGESTED_AT))

    def count(self, sql: str) -> int:
        return int(self.warehouse.query_df(sql).iloc[0, 0])


def history_candles(data_dir: Path, days: int) -> pd.DataFrame:
    """The recorded 1h candles of the `days` days before NEW_DAY."""
    frame = load_recordings(data_dir)
    start = NEW_DAY - pd.Timedelta(days=days)
    chosen = frame[
        (frame["exchange"] == EXCHANGE)
        & (frame["symbol"] == SYMBOL)
        & (frame["ts"] >= start)
        & (frame["ts"] < NEW_DAY)
    ]
    if chosen["ts"].min() > start:
        raise ValueError(f"{NAME}: the recording starts after {start:%Y-%m-%d}; use fewer days")
    return chosen[CANDLE_COLUMNS].reset_index(drop=True)


def new_day_minutes(data_dir: Path) -> pd.DataFrame:
    """NEW_DAY's 1m candles as the simulator serves them: the exact children of the recorded hours."""
    return derived_minute_candles(MarketStore(data_dir).get(EXCHANGE, SYMBOL), int(NEW_DAY.timestamp()))


def window_vars() -> dict:
    """The vars the transform asset passes for one daily partition of one exchange."""
    end = NEW_DAY + pd.Timedelta(days=1)
    return {
        "window_start": NEW_DAY.strftime("%Y-%m-%d %H:%M:%S"),
        "window_end": end.strftime("%Y-%m-%d %H:%M:%S"),
        "exchanges": [EXCHANGE],
    }


def measure(work: Path, history: pd.DataFrame, day: pd.DataFrame, multiple: int, repeat: int) -> Record:
    """Build one warehouse, then time the incremental run and the full refresh on it."""
    db = DbtWarehouse(work)
    db.load(history)
    # Built with the same vars (a missing mart is built whole anyway) so that every timed run below
    # reuses dbt's partial parse: otherwise the first run after a change of vars pays a full parse.
    build_s, _ = db.dbt("run", dbt_vars=window_vars())
    incremental: list[tuple[float, float]] = []
    for _ in range(repeat):
        db.load(day)
        incremental.append(db.dbt("run", "--select", "marts", dbt_vars=window_vars()))
    size = db.count("select count(*) from raw.candles")
    hours = db.count("select count(*) from marts.ohlcv_1h")
    if size != len(history) + len(day) or hours != len(history) + 24:
        raise AssertionError(f"{NAME}: {size} candles / {hours} hourly bars, expected {len(history) + 1440}")
    full = [
        db.dbt("run", "--select", "marts", "--full-refresh", dbt_vars=window_vars()) for _ in range(repeat)
    ]
    ours, theirs = min(incremental), min(full)
    say(
        f"{NAME}: {multiple}x history ({size:,} candles): incremental {ours[0]:.2f} s "
        f"(models {ours[1]:.2f} s), full refresh {theirs[0]:.2f} s (models {theirs[1]:.2f} s)"
    )
    return Record(
        NAME,
        size,
        "refresh_s",
        ours[0],
        "full_refresh",
        theirs[0],
        details={
            "scope": f"{multiple}x history",
            "history_multiple": multiple,
            "history_days": len(history) // 24,
            "models_s": round(ours[1], 3),
            "baseline_models_s": round(theirs[1], 3),
            "incremental_runs_s": [round(s, 3) for s, _ in incremental],
            "full_refresh_runs_s": [round(s, 3) for s, _ in full],
            "initial_build_s": round(build_s, 3),
            "new_day": f"{NEW_DAY:%Y-%m-%d}: 1,440 1m candles",
            "models": "ohlcv_1h, ohlcv_1d, indicators_1h, indicators_1d",
        },
    )


def slope_record(measured: list[Record], base_days: int) -> Record:
    """Least-squares slope of the incremental seconds over the history multiple."""
    multiples = [r.details["history_multiple"] for r in measured]

    def slope_of(values: list[float]) -> float:
        return float(np.polyfit(multiples, values, 1)[0])

    slope = slope_of([r.value for r in measured])
    models_s = [r.details["models_s"] for r in measured]
    full_models_s = [r.details["baseline_models_s"] for r in measured]
    return Record(
        NAME,
        None,
        "slope_s_per_history_x",
        slope,
        details={
            "scope": f"1x = {base_days} days of 1h candles",
            "history_multiples": multiples,
            "refresh_s": [round(r.value, 3) for r in measured],
            "full_refresh_s": [round(r.baseline_value, 3) for r in measured],
            "full_refresh_slope_s_per_history_x": round(slope_of([r.baseline_value for r in measured]), 4),
            "models_s": models_s,
            "models_slope_s_per_history_x": round(slope_of(models_s), 4),
            "full_refresh_models_s": full_models_s,
            "full_refresh_models_slope_s_per_history_x": round(slope_of(full_models_s), 4),
        },
    )


def run(data_dir: Path, quick: bool = False) -> list[Record]:
    """Every history multiple, then the slope; see the module docstring."""
    base_days = QUICK_BASE_DAYS if quick else BASE_DAYS
    multiples = QUICK_MULTIPLES if quick else MULTIPLES
    repeat = 1 if quick else 3
    day = new_day_minutes(Path(data_dir))
    records = []
    with tempfile.TemporaryDirectory(prefix="cryptopipe-bench-") as tmp:
        for multiple in multiples:
            history = history_candles(Path(data_dir), base_days * multiple)
            say(f"{NAME}: building a warehouse with {multiple}x history ({len(history):,} 1h candles)")
            work = Path(tmp) / f"{multiple}x"
            work.mkdir()
            records.append(measure(work, history, day, multiple, repeat))
    return [*records, slope_record(records, base_days)]
