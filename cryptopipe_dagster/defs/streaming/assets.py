"""Micro-batch loaders: landed Pub/Sub batches -> validated, deduplicated, MERGEd.

- ``raw/trades`` loads trade batches into raw.trades on (exchange, symbol, trade_id).
- ``live_candles_job`` loads closed 1m candle batches from the collector into the same raw.candles
  table as the historical path, on the same key, and records a materialization of the ``raw/candles``
  partitions it touched, so lineage and the candle checks see live data like backfilled data.
"""

import time

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.historical.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    daily_exchange_partitions,
)
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.lib.landing import LandingArea
from cryptopipe_dagster.lib.pubsub.codec import KEY_COLUMNS
from cryptopipe_dagster.lib.schemas import CandleSchema, TradeSchema
from cryptopipe_dagster.lib.validation import validate_frame

RAW_TRADES_OP = "raw__trades"
LIVE_CANDLES_OP = "load_live_candles"
DEAD_LETTER_SOURCE = "pubsub"
_SCHEMAS = {"trades": TradeSchema, "candles": CandleSchema}


class MicrobatchConfig(dg.Config):
    """The landed batch ids this run loads (set by market_data_sensor)."""

    batch_ids: list[str]


def load_landed(landing: LandingArea, store, batch_ids: list[str], kind: str) -> tuple[dict, pd.DataFrame]:
    """Validate + dedup + MERGE the batches' records; dead letters; mark loaded. (counters, loaded rows)."""
    records, found = landing.read_records(batch_ids)
    missing = sorted(set(batch_ids) - set(found["batch_id"]))
    if missing:
        raise dg.Failure(
            description=f"{len(missing)} batch(es) not landed: {missing[:5]}", allow_retries=False
        )
    if records.empty:
        valid, dead = records, pd.DataFrame()
    else:
        # The records left the collector as schema-valid frames; validating again is the same code as
        # the historical path (validate_frame + the schema) and catches a publisher that skipped it.
        valid, dead = validate_frame(records, _SCHEMAS[kind], dataset=kind, source=DEAD_LETTER_SOURCE)
    before = len(valid)
    if kind == "candles":
        # A live candle can arrive in several versions (closed early by the stream, completed later):
        # the most complete one wins, here and against what is stored (volume only grows).
        valid = valid.sort_values("volume", kind="stable")
    # A record re-sent in a later batch (same key) is loaded once; the last one wins, as in normalize.
    valid = valid.loc[~valid.duplicated(subset=list(KEY_COLUMNS[kind]), keep="last")]
    if kind == "candles" and len(valid):
        valid = drop_less_complete(store, valid)
    stats = store.merge_trades(valid) if kind == "trades" else store.merge_candles(valid)
    dead_written = store.write_dead_letters(dead) if len(dead) else 0
    # After the MERGE, not in its transaction: a crash in between re-runs a MERGE that changes nothing.
    landing.mark_loaded(batch_ids)
    oldest = found["published_at"].min()
    counters = {
        "batches": len(found),
        "records_in": len(records),
        "rows": len(valid),
        "inserted": stats.inserted,
        "updated": stats.updated,
        "unchanged": stats.unchanged,
        "duplicates_dropped": before - len(valid),
        "dead_letters": len(dead),
        "dead_letters_written": dead_written,
        "publish_to_load_ms": (
            round((pd.Timestamp.now(tz="UTC") - oldest).total_seconds() * 1000, 1)
            if pd.notna(oldest)
            else 0.0
        ),
    }
    return counters, valid


def drop_less_complete(store, candles: pd.DataFrame) -> pd.DataFrame:
    """Candles whose stored version has more volume are left out (a stale version never wins)."""
    stored = []
    for (exchange, symbol, timeframe), part in candles.groupby(
        ["exchange", "symbol", "timeframe"], observed=True
    ):
        stored.append(
            store.query_df(
                "select exchange, symbol, timeframe, ts, volume as stored_volume from raw.candles "
                "where exchange = $exchange and symbol = $symbol and timeframe = $timeframe "
                "and ts between $first and $last",
                {
                    "exchange": exchange,
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "first": part["ts"].min(),
                    "last": part["ts"].max(),
                },
            )
        )
    existing = pd.concat(stored, ignore_index=True)
    if existing.empty:
        return candles
    existing = existing.astype({"exchange": str, "symbol": str, "timeframe": str})
    existing["ts"] = pd.to_datetime(existing["ts"], utc=True)
    keyed = candles.astype({"exchange": str, "symbol": str, "timeframe": str}).merge(
        existing, on=["exchange", "symbol", "timeframe", "ts"], how="left"
    )
    keep = (keyed["stored_volume"].isna() | (keyed["volume"] >= keyed["stored_volume"])).to_numpy()
    return candles.loc[keep]


@dg.asset(
    key=["raw", "trades"],
    group_name="streaming",
    kinds={"pubsub", "duckdb", "pandas"},
    description="Trades from Pub/Sub micro-batches landed by market_data_sensor: validated against "
    "TradeSchema, deduplicated and MERGEd into raw.trades on (exchange, symbol, trade_id).",
)
def raw_trades(
    context: dg.AssetExecutionContext, config: MicrobatchConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    started = time.monotonic()
    store = warehouse.get_warehouse()
    counters, _ = load_landed(LandingArea(store.path), store, list(config.batch_ids), "trades")
    counters["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    context.log.info("microbatch_loaded %s", counters)
    return dg.MaterializeResult(metadata=counters)


microbatch_job = dg.define_asset_job(
    "microbatch_job",
    # Without the reconciliation check (defs/quality/trade_checks.py): micro-batches stay sub-second.
    selection=dg.AssetSelection.assets(raw_trades).without_checks(),
    description="Load one group of landed Pub/Sub trade batches into raw.trades (run by market_data_sensor).",
)


def candle_partitions(loaded: pd.DataFrame) -> list[str]:
    """The raw/candles partition keys (date|exchange) the loaded candles fall in (known ones only)."""
    if loaded.empty:
        return []
    days = loaded["ts"].dt.strftime("%Y-%m-%d")
    known = set(daily_exchange_partitions.get_partition_keys())
    keys = {
        str(dg.MultiPartitionKey({DATE_DIMENSION: day, EXCHANGE_DIMENSION: exchange}))
        for day, exchange in zip(days, loaded["exchange"].astype(str), strict=True)
    }
    return sorted(keys & known)


@dg.op(
    name=LIVE_CANDLES_OP,
    description="MERGE landed live 1m candle batches into raw.candles; materializes raw/candles partitions.",
)
def load_live_candles(context: dg.OpExecutionContext, config: MicrobatchConfig, warehouse: WarehouseResource):
    started = time.monotonic()
    store = warehouse.get_warehouse()
    counters, loaded = load_landed(LandingArea(store.path), store, list(config.batch_ids), "candles")
    counters["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    context.log.info("live_candles_loaded %s", counters)
    partitions = candle_partitions(loaded)
    for key in partitions:
        yield dg.AssetMaterialization(
            asset_key=["raw", "candles"],
            partition=key,
            description="live 1m candles from the collector (source=ws/rest)",
            metadata={"rows_in_run": counters["rows"], "source": "collector"},
        )
    counters["partitions"] = len(partitions)
    yield dg.Output(None, metadata=counters)


@dg.job(
    description="Load one group of landed live 1m candle batches into raw.candles "
    "(run by market_data_sensor)."
)
def live_candles_job():
    load_live_candles()
