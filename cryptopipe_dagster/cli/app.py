"""Typer app; each command validates its arguments and turns errors into one clear line."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cryptopipe_dagster.cli.dlq import dlq_app
from cryptopipe_dagster.lib.errors import CryptopipeError

app = typer.Typer(
    help="cryptopipe: crypto market data from exchanges to a validated warehouse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dlq_app, name="dlq")
console = Console()


def fail(error: Exception) -> None:
    """Print one line naming the bad value and exit 2 (no traceback for user errors)."""
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=2)


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@app.command()
def sim(
    data: Annotated[Path, typer.Option(help="Folder of recorded candle CSV files.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed for derived 1m candles, trades and faults.")] = 0,
    faults: Annotated[str, typer.Option(help="Fault spec, e.g. 'rate_limit:0.05,server_error@3'.")] = "",
    now: Annotated[str, typer.Option(help="Simulated clock (ISO 8601 UTC); default: wall clock.")] = "",
) -> None:
    """Serve recorded market data through real exchange APIs (Coinbase Exchange, Bitstamp)."""
    from cryptopipe_dagster.lib.settings import load_settings
    from cryptopipe_dagster.lib.simulator.server import run_simulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        clock = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None
        if clock is not None and clock.tzinfo is None:
            clock = clock.replace(tzinfo=dt.UTC)
        run_simulator(host, port, data or load_settings().data_dir, seed=seed, faults=faults, now=clock)
    except (ValueError, OSError, CryptopipeError) as error:
        fail(error)


@app.command()
def backfill(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, e.g. coinbaseexchange.")],
    start: Annotated[str, typer.Option(help="First UTC day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last UTC day (inclusive), YYYY-MM-DD.")],
    symbols: Annotated[str, typer.Option(help="Comma-separated BASE/QUOTE; default: all configured.")] = "",
    timeframes: Annotated[str, typer.Option(help="Comma-separated, e.g. 1m,1h; default: configured.")] = "",
    refetch: Annotated[
        bool, typer.Option(help="Fetch again windows the checkpoints say are loaded.")
    ] = False,
    days_per_run: Annotated[int, typer.Option(help="Days per Dagster run.")] = 92,
) -> None:
    """Materialize raw/candles for a date range through Dagster (runs and checks show in the UI)."""
    from cryptopipe_dagster.cli.runner import backfill_command

    try:
        backfill_command(
            exchange, _csv(symbols), _csv(timeframes), start, end, refetch, days_per_run, console
        )
    except CryptopipeError as error:
        fail(error)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the demo's exchange simulator (0: any free).")] = 0,
) -> None:
    """Start the simulator, backfill the demo markets of the markets file, print a summary."""
    from cryptopipe_dagster.cli.runner import demo_command

    try:
        demo_command(port, console)
    except CryptopipeError as error:
        fail(error)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Dagster UI port.")] = 3000,
    sim_port: Annotated[int, typer.Option(help="Exchange simulator port.")] = 8765,
) -> None:
    """Dagster UI on the local instance, with the exchange simulator beside it."""
    from cryptopipe_dagster.cli.instance import prepare_dagster_home
    from cryptopipe_dagster.cli.simulator_process import simulator_is_up, start_simulator, stop_simulator
    from cryptopipe_dagster.lib.settings import load_settings

    settings = load_settings()
    prepare_dagster_home(settings)
    sim_url = f"http://127.0.0.1:{sim_port}"
    os.environ.setdefault("CRYPTOPIPE_SIMULATOR_URL", sim_url)
    simulator = None if simulator_is_up(sim_url) else start_simulator(settings.data_dir, sim_port)
    console.print(f"exchange simulator: {sim_url}   Dagster UI: http://127.0.0.1:{port}")
    started: list[subprocess.Popen] = []

    def stop_ui(signum: int, frame: object) -> None:
        # dagster dev stops cleanly on SIGINT to its own process group.
        for process in started:
            os.killpg(process.pid, signal.SIGINT)

    # Handlers first: a child inherits an *ignored* SIGINT (as in a background shell job) and
    # dagster dev would then never stop; a handled one is reset to the default in the child.
    signal.signal(signal.SIGINT, stop_ui)
    signal.signal(signal.SIGTERM, stop_ui)
    ui = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)],
        start_new_session=True,
    )
    started.append(ui)
    try:
        ui.wait()
    finally:
        if simulator is not None:
            stop_simulator(simulator)
