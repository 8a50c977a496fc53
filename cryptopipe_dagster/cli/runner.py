"""Glue between CLI commands and Dagster: load definitions, run backfills, print the summary."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import pandas as pd
from rich.console import Console
from rich.table import Table

from cryptopipe_dagster.cli.backfill import ChunkResult, check_dates, day_chunks, execute_range, run_backfill
from cryptopipe_dagster.cli.instance import local_instance
from cryptopipe_dagster.cli.live import LIVE_MARKETS, LIVE_START, LiveResult, run_live
from cryptopipe_dagster.cli.simulator_process import free_port, start_simulator, stop_simulator
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.markets_config import (
    BackfillSpec,
    MarketsConfig,
    load_markets_config,
    parse_date,
    validate_exchange_id,
    validate_symbols,
    validate_timeframes,
)
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse import open_warehouse

BACKFILL_JOB = "historical_candles_job"
TRANSFORM_JOB = "transform_job"
RECONCILIATION_JOB = "trade_reconciliation_job"


def load_job(name: str = BACKFILL_JOB) -> dg.JobDefinition:
    """A job as Dagster itself loads it (definitions.py), so CLI runs equal UI runs."""
    from cryptopipe_dagster.definitions import defs

    return defs().resolve_job_def(name)


def build_spec(
    markets: MarketsConfig, exchange: str, symbols: list[str], timeframes: list[str], start: str, end: str
) -> BackfillSpec:
    """Validate CLI arguments against the markets file; errors name the bad value."""
    configured = markets.markets_of(validate_exchange_id(exchange))
    symbols_t = validate_symbols(symbols, "--symbols") if symbols else configured.symbols
    unknown = sorted(set(symbols_t) - set(configured.symbols))
    if unknown:
        raise ConfigError(
            f"--symbols {unknown} not configured for {exchange} (configured: {configured.symbols})"
        )
    timeframes_t = validate_timeframes(timeframes, "--timeframes") if timeframes else configured.timeframes
    return BackfillSpec(
        exchange, symbols_t, timeframes_t, parse_date(start, "--start"), parse_date(end, "--end")
    )


def backfill_command(
    exchange: str,
    symbols: list[str],
    timeframes: list[str],
    start: str,
    end: str,
    refetch: bool,
    days_per_run: int | None,
    console: Console,
) -> list[ChunkResult]:
    settings = load_settings()
    markets = load_markets_config(settings.markets_file)
    spec = build_spec(markets, exchange, symbols, timeframes, start, end)
    check_dates(spec, markets.history_start)
    if days_per_run is not None:
        day_chunks(spec.start, spec.end, days_per_run)  # validates --days-per-run before Dagster loads
    results = run_backfill(
        load_job(),
        local_instance(settings),
        spec,
        refetch=refetch,
        days_per_run=days_per_run,
        console=console,
    )
    if not all(r.success for r in results):
        open_gaps = open_warehouse(settings).list_gaps(state="open", exchange=spec.exchange)
        if not open_gaps.empty:
            raise ConfigError(
                f"backfill loaded what {spec.exchange} served, but {len(open_gaps)} open gap(s) fail the "
                "blocking completeness check until the scheduled repair fills or confirms them: "
                "`cryptopipe gaps list`, `cryptopipe gaps repair` (README, 'Gap ledger')"
            )
        raise ConfigError("backfill stopped on a failed run (see the Dagster UI); re-run to resume")
    return results


def demo_command(port: int, console: Console) -> None:
    """Simulator up, every demo backfill of the markets file, summary; safe to run again."""
    settings = load_settings()
    markets = load_markets_config(settings.markets_file)
    port = port or free_port()
    simulator = start_simulator(settings.data_dir, port)
    os.environ["CRYPTOPIPE_EXCHANGE_API_URL"] = f"http://127.0.0.1:{port}"
    # The demo's exchange is a recording: a span it does not serve never will, so one "no data"
    # answer confirms the gap and the blocking completeness check passes (production waits for 5
    # answers over 24 h: README, "Gap ledger").
    os.environ.setdefault("CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS", "1")
    os.environ.setdefault("CRYPTOPIPE_GAP_CONFIRM_AFTER_S", "0")
    totals: dict[str, int] = {}
    try:
        job, instance = load_job(), local_instance(load_settings())
        for spec in markets.demo:
            check_dates(spec, markets.history_start)
            for result in run_backfill(job, instance, spec, console=console):
                if not result.success:
                    raise ConfigError(f"demo run {result.run_id} failed; see `make dev` for its logs")
                for key in ("rows", "duplicates_dropped", "dead_letters", "already_present"):
                    totals[key] = totals.get(key, 0) + int(result.metadata.get(key, 0))
        run_transforms(markets, instance, console)
        live = run_live(settings, os.environ["CRYPTOPIPE_EXCHANGE_API_URL"], instance, console)
        reconciliation = reconcile_live(instance, console)
    finally:
        stop_simulator(simulator)
    print_summary(settings, markets, totals, console)
    print_live_summary(settings, live, reconciliation, console)


def reconcile_live(instance: dg.DagsterInstance, console: Console) -> dict:
    """dbt over the live day (trade-built 1m candles), then the reconciliation check; its metadata."""
    day = dt.date.fromisoformat(LIVE_START[:10])
    job = load_job(TRANSFORM_JOB)
    for exchange in sorted({m.split(":")[0] for m in LIVE_MARKETS} & set(configured_exchanges())):
        with console.status(f"dbt build {exchange} {day} (live trades)"):
            result = execute_range(job, instance, exchange, day, day)
        if not result.success:
            raise ConfigError(f"dbt run {result.run_id} failed for {exchange}; see `make dev` for its logs")
    result = load_job(RECONCILIATION_JOB).execute_in_process(instance=instance, raise_on_error=False)
    evaluations = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    if not result.success or not evaluations:
        raise ConfigError(f"reconciliation run {result.run_id} failed; see `make dev`")
    evaluation = evaluations[0]
    metadata = {key: getattr(value, "value", value) for key, value in evaluation.metadata.items()}
    return {"passed": evaluation.passed, **metadata}


def configured_exchanges() -> list[str]:
    """Exchanges of the markets file (the partition dimension dbt runs over)."""
    return sorted(load_markets_config(load_settings().markets_file).exchanges)


def print_live_summary(settings: Settings, live: LiveResult, reconciliation: dict, console: Console) -> None:
    """Trades per market (emitted vs loaded), what the collector survived, the reconciliation."""
    warehouse = open_warehouse(settings)
    start = pd.Timestamp(LIVE_START)
    per_market = warehouse.market_summary("raw.trades", start, start + pd.Timedelta(days=1))
    console.print(rich_table("raw.trades (live path)", _utc_text(per_market, "%Y-%m-%d %H:%M:%S")))
    report = live.report
    console.print(
        f"live: {sum(live.emitted.values()):,} trades emitted, {sum(live.loaded.values()):,} in raw.trades "
        f"in {live.seconds:.0f}s, loaded by {live.ticks} market_data_sensor ticks; "
        f"collector: {report.reconnects} reconnects, "
        f"{report.gap_fills} REST fills, {report.duplicates_dropped} duplicates dropped, "
        f"{report.dead_letters} dead letters"
    )
    verdict = "passed" if reconciliation.get("passed") else "FAILED"
    console.print(
        f"reconciliation (trade-built vs exchange 1m candles): {verdict}, "
        f"{reconciliation.get('minutes_compared', 0)} minutes compared, "
        f"{reconciliation.get('minutes_mismatched', 0)} mismatched"
    )
    if settings.bigquery_endpoint and not reconciliation.get("passed"):
        console.print(
            "  on a BigQuery emulator: volume and last-half-second price mismatches come from its "
            "rounding (BIGNUMERIC, UNIX_SECONDS): README, 'BigQuery emulator gaps'"
        )
    console.print("run it continuously: README, section 'Live path'")


def run_transforms(markets: MarketsConfig, instance: dg.DagsterInstance, console: Console) -> None:
    """dbt build over each exchange's whole demo range, as one Dagster run per exchange."""
    job = load_job(TRANSFORM_JOB)
    for exchange in sorted({spec.exchange for spec in markets.demo}):
        specs = [spec for spec in markets.demo if spec.exchange == exchange]
        first, last = min(s.start for s in specs), max(s.end for s in specs)
        with console.status(f"dbt build {exchange} {first}..{last}"):
            result = execute_range(job, instance, exchange, first, last)
        if not result.success:
            raise ConfigError(f"dbt run {result.run_id} failed for {exchange}; see `make dev` for its logs")
        console.print(f"dbt build {exchange} {first}..{last}: ok (run {result.run_id[:8]})")


def rich_table(title: str, frame) -> Table:
    """A DataFrame as a rich table."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*[str(v) for v in row])
    return table


_UTC_NAMES = {"first_ts": "first_utc", "last_ts": "last_utc", "ts": "ts_utc"}


def _utc_text(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """Timestamp columns as UTC text (first_ts -> first_utc, ...), for a table people read."""
    shown = frame.copy()
    for column in set(_UTC_NAMES) & set(shown.columns):
        shown[column] = pd.to_datetime(shown[column], utc=True).dt.strftime(fmt)
    return shown.rename(columns=_UTC_NAMES)


def print_summary(
    settings: Settings, markets: MarketsConfig, totals: dict[str, int], console: Console
) -> None:
    """Rows per market, dead letters, duplicates dropped, where the data lives, how to see it."""
    warehouse = open_warehouse(settings)
    first = pd.Timestamp(min(spec.start for spec in markets.demo), tz="UTC")
    last = pd.Timestamp(max(spec.end for spec in markets.demo), tz="UTC")
    per_market = warehouse.market_summary("raw.candles", first, last)
    console.print(rich_table("raw.candles", _utc_text(per_market, "%Y-%m-%d %H:%M")))
    indicators = warehouse.latest_indicators(since=first).round(
        {
            "sma_20": 2,
            "ema_20": 2,
            "rsi_14": 1,
            "macd": 2,
            "bb_upper": 2,
            "bb_lower": 2,
            "atr_14": 2,
            "vwap_24": 2,
        }
    )
    console.print(
        rich_table("latest indicators (marts.indicators_1h / _1d)", _utc_text(indicators, "%Y-%m-%d %H:%M"))
    )
    dead = warehouse.dead_letters(limit=None)
    console.print(
        f"this run: rows loaded={totals.get('rows', 0):,} already present="
        f"{totals.get('already_present', 0):,} duplicates dropped={totals.get('duplicates_dropped', 0):,}"
        f" dead letters={totals.get('dead_letters', 0):,}"
    )
    by_reason = dead["reason_code"].value_counts().to_dict() if len(dead) else {}
    console.print(f"dead letters in ops.dead_letters: {len(dead)} {by_reason or ''}".rstrip())
    console.print(f"warehouse: {warehouse.display_name}")
    console.print(f"Dagster instance: {settings.dagster_home}  -> `make dev`, then http://127.0.0.1:3000")
