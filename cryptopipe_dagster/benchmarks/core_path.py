"""core_path: normalize + validate (Pandera) + dedup + idempotent load into DuckDB, rows per second.

Ours, from the same input forms users feed a loader: the raw ccxt dicts (normalize_trades) and an
Arrow table (normalize_trades_table), each ending in one MERGE into raw.trades (plus dead letters)
in a fresh DuckDB file. Baselines measured in the same run on the same records:

- per_row_txn: the seed's "before" design: each record validated alone and loaded in its own
  transaction. Measured on a sample and extrapolated (rows/s of the sample; it does not get
  faster with size).
- floor (not a baseline: a bound): the part of our path that is not our code, timed alone on the
  same rows. From Arrow, DuckDB's INSERT of the valid rows into a fresh raw.trades; from dicts, also
  reading the six fields out of the Python dicts into Arrow (itemgetter + pa.array, what any loader
  of ccxt dicts pays). ceiling_rows_per_s = size / floor: the rate if our code took no time at all,
  which says whether a target is reachable by changing our code.
- dlt_dicts / dlt_arrow: dlt's DuckDB destination with write_disposition="merge" on the trade key,
  fed the raw ccxt dicts and the Arrow table. dlt neither validates nor rejects: its rows/s is for
  loading everything, invalid records included. From dicts dlt runs at ~1-2k rows/s here (it infers
  a schema per record and unnests `info`/`fees` into child tables), so it is measured from dicts at
  the smallest size only: a million dicts would take it over ten minutes.
"""

from __future__ import annotations

import operator
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.benchmarks.harness import Record, best, say, time_call
from cryptopipe_dagster.benchmarks.trade_data import SEED_TRADES, TradeInput, build_input, seed_trades
from cryptopipe_dagster.lib.edge.normalize_trades import (
    TRADE_FIELDS,
    normalize_trades,
    normalize_trades_table,
)
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.lib.warehouse.sql import safe_identifier, staged_select
from cryptopipe_dagster.lib.warehouse.tables import TRADES

NAME = "core_path"
EXCHANGE = "kraken"
PER_ROW_SAMPLE = 1_000
FLOORS = {
    "arrow": "DuckDB INSERT of the valid rows",
    "dicts": "reading the dicts' six fields into Arrow + DuckDB INSERT of the valid rows",
}
NOW = pd.Timestamp("2030-01-01", tz="UTC")  # tiled trades run into the future; none is "in the future"


def load_ours(records, db_path: Path, *, arrow: bool) -> tuple[int, int, pa.Table]:
    """The core path; returns (rows in raw.trades, dead letters written, those rows as Arrow)."""
    normalize = normalize_trades_table if arrow else normalize_trades
    batch = normalize(records, exchange=EXCHANGE, source="ws", now=NOW)
    warehouse = DuckDBWarehouse(db_path)
    warehouse.merge_trades(batch.valid_arrow, unique_keys=True)
    dead = warehouse.write_dead_letters(batch.dead_letters) if len(batch.dead_letters) else 0
    return len(batch.valid), dead, batch.valid_arrow


def insert_only(valid: pa.Table, db_path: Path) -> None:
    """DuckDB alone: the warehouse's own INSERT of the valid rows into a fresh raw.trades (its
    branch for a date range the table does not hold yet), without checks, MERGE or dead letters."""
    columns = ", ".join(safe_identifier(c) for c in TRADES.column_names)
    with duckdb.connect(str(db_path)) as connection:
        connection.register("valid_rows", valid)
        connection.execute(
            f"INSERT INTO {TRADES.qualified} ({columns}) {staged_select(TRADES, 'valid_rows')}"
        )


def read_fields(records: list[dict]) -> list[pa.Array | list]:
    """CPython alone: the six trade fields of every dict, as Arrow arrays (a field of mixed types,
    as the benchmark's invalid records have, stays a list: it was read all the same)."""
    columns: list[pa.Array | list] = []
    for name in TRADE_FIELDS:
        try:
            values = list(map(operator.itemgetter(name), records))
        except KeyError:
            values = [record.get(name) for record in records]
        try:
            columns.append(pa.array(values, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns.append(values)
    return columns


def floor_seconds(form: str, payload, valid: pa.Table, work: Path, repeat: int) -> float:
    """The best time of the work on our path that is not our code (see the module docstring)."""

    def outside_ours() -> None:
        if form == "dicts":
            read_fields(payload)
        insert_only(valid, _fresh(work))

    return best(time_call(outside_ours, warmup=1, repeat=repeat))


def load_per_row(records: list[dict], db_path: Path) -> int:
    """The 'before' design: validate one record, load it in its own transaction, repeat."""
    warehouse = DuckDBWarehouse(db_path)
    loaded = 0
    for record in records:
        batch = normalize_trades([record], exchange=EXCHANGE, source="ws", now=NOW)
        if len(batch.valid):
            warehouse.merge_trades(batch.valid)
            loaded += 1
        elif len(batch.dead_letters):
            warehouse.write_dead_letters(batch.dead_letters)
    return loaded


def load_dlt(data, db_path: Path, work: Path) -> int:
    """dlt, as its docs show: a pipeline to DuckDB, merge on the primary key."""
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{uuid.uuid4().hex[:8]}",
        destination=dlt.destinations.duckdb(str(db_path)),
        dataset_name="raw",
        pipelines_dir=str(work / "dlt"),
    )
    pipeline.run(data, table_name="trades", write_disposition="merge", primary_key=["symbol", "id"])
    with pipeline.sql_client() as client:
        return int(client.execute_sql("select count(*) from trades")[0][0])


def _fresh(work: Path) -> Path:
    path = work / f"{uuid.uuid4().hex[:8]}.duckdb"
    DuckDBWarehouse(path).ensure_schema()
    return path


def _rate(size: int, seconds: float) -> float:
    return size / seconds if seconds > 0 else float("nan")


def run(
    data_dir: Path,
    sizes: tuple[int, ...],
    *,
    dict_sizes: tuple[int, ...],
    dlt_sizes: tuple[int, ...],
    dlt_dict_sizes: tuple[int, ...] = (),
    repeat: int = 3,
    seed_count: int = SEED_TRADES,
) -> list[Record]:
    """Every size x input form x baseline; one Record per (size, form, baseline)."""
    say(f"{NAME}: fetching {seed_count:,} seed trades from the simulator")
    seed = seed_trades(data_dir, seed_count)
    records: list[Record] = []
    per_row_rate = None
    with tempfile.TemporaryDirectory(prefix="cryptopipe-bench-") as tmp:
        work = Path(tmp)
        for size in sizes:
            data = build_input(seed, size, with_dicts=size in dict_sizes)
            say(f"{NAME}: {size:,} records ({data.duplicates:,} duplicates, {data.invalid:,} invalid)")
            if per_row_rate is None:
                per_row_rate = _per_row_rate(data, work)
            for form in ("dicts", "arrow"):
                if form == "dicts" and data.dicts is None:
                    continue
                payload = data.dicts if form == "dicts" else data.table
                dlt_at = dlt_sizes if form == "arrow" else dlt_dict_sizes
                records += _measure_form(form, payload, data, size, work, per_row_rate, dlt_at, repeat)
            del data
    return records


def _measure_form(
    form, payload, data: TradeInput, size, work, per_row_rate, dlt_sizes, repeat
) -> list[Record]:
    counts: list[tuple[int, int, pa.Table]] = []

    def ours() -> None:
        counts.append(load_ours(payload, _fresh(work), arrow=form == "arrow"))

    seconds = best(
        time_call(ours, warmup=1, repeat=repeat if size <= 1_000_000 else 1)  # warm, as the floor
    )
    rows, dead, valid = counts[-1]
    if rows != data.unique:
        raise AssertionError(f"{NAME}: loaded {rows} rows, expected {data.unique}")
    rate = _rate(size, seconds)
    floor = floor_seconds(form, payload, valid, work, repeat if size <= 1_000_000 else 1)
    say(
        f"{NAME}: ours from {form}: {rate:,.0f} rows/s "
        f"({seconds:.2f} s; {rows:,} rows, {dead:,} dead letters); outside our code {floor:.2f} s "
        f"(ceiling {_rate(size, floor):,.0f} rows/s)"
    )
    details = {
        "input": form,
        "seconds": round(seconds, 4),
        "rows_loaded": rows,
        "dead_letters": dead,
        "duplicates_in_input": data.duplicates,
        "floor_seconds": round(floor, 4),
        "floor": FLOORS[form],
        "ceiling_rows_per_s": round(_rate(size, floor)),
        "share_outside_ours": round(floor / seconds, 3),
    }
    out = [
        Record(
            NAME,
            size,
            "rows_per_s",
            rate,
            "per_row_txn",
            per_row_rate,
            details={**details, "baseline_note": f"per-row rate of a {PER_ROW_SAMPLE:,}-record sample"},
        )
    ]
    if size in dlt_sizes:
        started = time.perf_counter()
        dlt_rows = load_dlt(payload, work / f"dlt_{uuid.uuid4().hex[:8]}.duckdb", work)
        dlt_seconds = time.perf_counter() - started
        dlt_rate = _rate(size, dlt_seconds)
        say(f"{NAME}: dlt from {form}: {dlt_rate:,.0f} rows/s ({dlt_seconds:.2f} s; {dlt_rows:,} rows)")
        out.append(
            Record(
                NAME,
                size,
                "rows_per_s",
                rate,
                f"dlt_{form}",
                dlt_rate,
                details={
                    **details,
                    "baseline_seconds": round(dlt_seconds, 4),
                    "baseline_rows_loaded": dlt_rows,
                    "baseline_note": "dlt loads invalid records too (no validation)",
                },
            )
        )
    return out


def _per_row_rate(data: TradeInput, work: Path) -> float:
    sample = data.table.slice(0, PER_ROW_SAMPLE).to_pylist()
    path = _fresh(work)
    started = time.perf_counter()
    load_per_row(sample, path)
    seconds = time.perf_counter() - started
    rate = _rate(len(sample), seconds)
    say(f"{NAME}: per_row_txn baseline: {rate:,.0f} rows/s on a {len(sample):,}-record sample")
    return rate
