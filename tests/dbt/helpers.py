"""Run the dbt project against DuckDB files in tmp dirs, and build the candle fixtures it reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd

from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.market_data import MarketStore
from cryptopipe_dagster.simulator.series import derived_minute_candles

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT = ROOT / "dbt_project"
BIN = Path(sys.executable).parent
MARTS = ("ohlcv_1h", "ohlcv_1d", "indicators_1h", "indicators_1d")
INGESTED_AT = pd.Timestamp("2024-01-01", tz="UTC")
CANDLE_COLUMNS = ["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]


def dbt_env(db_path: Path) -> dict[str, str]:
    """The environment dbt and sqlfluff run in: the warehouse path and no telemetry."""
    return {
        **os.environ,
        "CRYPTOPIPE_DUCKDB_PATH": str(db_path),
        "CRYPTOPIPE_DBT_TARGET": "local",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(
    args: tuple[str, ...], target: str, work_dir: Path, env: dict[str, str], dbt_vars: dict | None = None
) -> subprocess.CompletedProcess:
    """`dbt <args> --target <target>` with its target and log dirs in work_dir (never
    dbt_project/target); fails the test with dbt's output if dbt fails."""
    command = [
        str(BIN / "dbt"),
        *args,
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target",
        target,
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
    ]
    if dbt_vars is not None:
        command += ["--vars", json.dumps(dbt_vars)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout[-8000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"dbt {' '.join(args)} --target {target} failed:\n{output}"
    return result


@dataclass
class DbtProjectRun:
    """One warehouse file and the dbt target/log dirs that belong to it (never dbt_project/target)."""

    db_path: Path
    work_dir: Path

    def dbt(self, *args: str, dbt_vars: dict | None = None) -> subprocess.CompletedProcess:
        """`dbt <args>` against this warehouse; fails the test with dbt's output if dbt fails."""
        return run_dbt(args, "local", self.work_dir, dbt_env(self.db_path), dbt_vars)

    def query(self, sql: str) -> pd.DataFrame:
        """A read-only query on the warehouse file (UTC session, as the warehouse code uses)."""
        with duckdb.connect(str(self.db_path), read_only=True) as connection:
            connection.execute("SET TimeZone = 'UTC'")
            return connection.execute(sql).df()

    def execute(self, sql: str) -> None:
        with duckdb.connect(str(self.db_path)) as connection:
            connection.execute(sql)

    def mart(self, name: str, where: str = "true") -> pd.DataFrame:
        """A mart's rows ordered by key, ts as UTC timestamps."""
        frame = self.query(f"select * from marts.{name} where {where} order by exchange, symbol, ts")
        frame["ts"] = frame["ts"].dt.tz_convert("UTC")
        return frame


def load_candles(db_path: Path, candles: pd.DataFrame) -> None:
    """Merge candles (CANDLE_COLUMNS) into raw.candles exactly as ingestion does."""
    warehouse = DuckDBWarehouse(db_path)
    warehouse.ensure_schema()
    if not candles.empty:
        frame = candles[CANDLE_COLUMNS].assign(source="recording", ingested_at=INGESTED_AT)
        warehouse.merge_candles(frame)


def recorded_candles(recordings: pd.DataFrame) -> pd.DataFrame:
    """The recorded bars in CANDLE_COLUMNS."""
    return recordings[CANDLE_COLUMNS].reset_index(drop=True)


def derived_minutes(store: MarketStore, exchange: str, symbol: str, day: str) -> pd.DataFrame:
    """The simulator's exact 1m children of every recorded bar opening on `day` (UTC)."""
    return derived_minute_candles(store.get(exchange, symbol), int(pd.Timestamp(day, tz="UTC").timestamp()))


def exact_total(volumes: pd.Series) -> float:
    """The double nearest to the exact decimal sum of stored volumes (their shortest texts)."""
    return float(sum((Decimal(repr(float(v))) for v in volumes), Decimal(0)))


def aggregate_bars(candles: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Reference rollup in pandas: first open, max high, min low, last close, exact volume sum."""
    ordered = candles.sort_values("ts").assign(bar=lambda f: f["ts"].dt.floor(freq))
    grouped = ordered.groupby(["exchange", "symbol", "bar"], sort=True)
    out = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", exact_total),
        source_candles=("ts", "size"),
    )
    return out.reset_index().rename(columns={"bar": "ts"})
