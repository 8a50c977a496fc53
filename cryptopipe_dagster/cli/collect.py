"""`cryptopipe collect`: settings from arguments and environment, signals, the run, a summary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from rich.console import Console

from cryptopipe_dagster.defs.streaming.resources import LOCAL_PROJECT
from cryptopipe_dagster.lib.collector import Collector, CollectorReport, CollectorSettings, parse_market
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.logs import configure_json_logging
from cryptopipe_dagster.lib.markets_config import load_markets_config
from cryptopipe_dagster.lib.pubsub.emulator import EMULATOR_HOST_ENV
from cryptopipe_dagster.lib.settings import load_settings


def collector_settings(
    markets: list[str], candles: list[str], project: str, state_file: Path | None, **knobs: float
) -> CollectorSettings:
    """Validated settings; the markets file's markets when none are given."""
    settings = load_settings()
    if not markets:
        config = load_markets_config(settings.markets_file)
        markets = [f"{e}:{s}" for e, m in sorted(config.exchanges.items()) for s in m.symbols]
    candle_keys = {parse_market(m).key for m in candles}
    specs = tuple(parse_market(m) for m in markets)
    unknown = candle_keys - {spec.key for spec in specs}
    if unknown:
        raise ConfigError(f"--candles {sorted(unknown)} are not among the collected markets")
    specs = tuple(parse_market(spec.key, candles=spec.key in candle_keys) for spec in specs)
    return CollectorSettings(
        markets=specs,
        project_id=project or os.environ.get("CRYPTOPIPE_PUBSUB_PROJECT", LOCAL_PROJECT),
        exchange_api_url=settings.exchange_api_url,
        state_path=state_file or settings.home / "collector" / "checkpoint.json",
        **knobs,
    )


def collect_command(
    markets: list[str],
    candles: list[str],
    project: str,
    duration: float,
    metrics_host: str,
    metrics_port: int,
    state_file: Path | None,
    stall_timeout: float,
    sweep_interval: float,
    batch_max_age: float,
    console: Console,
) -> CollectorReport:
    """Run the collector until SIGTERM/SIGINT (or `duration`); print the report as JSON."""
    if duration < 0:
        raise ConfigError(f"--duration must be >= 0, got {duration}")
    if not 0 <= metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be a TCP port, got {metrics_port}")
    settings = collector_settings(
        markets,
        candles,
        project,
        state_file,
        stall_timeout_s=stall_timeout,
        sweep_interval_s=sweep_interval,
        batch_max_age_s=batch_max_age,
    )
    if settings.exchange_api_url is None and os.environ.get(EMULATOR_HOST_ENV) is None:
        console.print(
            "[yellow]note:[/yellow] no simulator URL and no Pub/Sub emulator: real exchanges, real Pub/Sub"
        )
    configure_json_logging()
    collector = Collector(settings, metrics_host=metrics_host, metrics_port=metrics_port)
    report = asyncio.run(run_until_signal(collector, duration))
    console.print_json(json.dumps(report.as_dict()))
    return report


async def run_until_signal(collector: Collector, duration: float) -> CollectorReport:
    """Run until SIGTERM/SIGINT (or `duration` seconds when > 0), then flush and report."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # graceful: flush in-flight batches, then exit
    return await collector.run(stop, duration_s=duration or None)
