"""Typer app; each command validates its arguments and turns errors into one clear line."""

from __future__ import annotations

import contextlib
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
from cryptopipe_dagster.cli.gaps import gaps_app
from cryptopipe_dagster.lib.errors import CryptopipeError

app = typer.Typer(
    help="cryptopipe: crypto market data from exchanges to a validated warehouse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(gaps_app, name="gaps")
console = Console()


def fail(error: Exception) -> None:
    """Print one line naming the bad value and exit 2 (no traceback for user errors)."""
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=2)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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
    stream_speed: Annotated[
        str, typer.Option(help="WebSocket replay speed: 1 = real time, 10 = ten times, or 'max'.")
    ] = "1",
    stream_start: Annotated[
        str, typer.Option(help="Instant the replay starts from (ISO 8601 UTC); default: the clock.")
    ] = "",
    stream_stop_after: Annotated[
        str, typer.Option(help="Stop each replay after N trades or at an instant; default: never.")
    ] = "",
    stall_seconds: Annotated[float, typer.Option(help="How long a ws_stall fault holds a feed.")] = 2.0,
    derived_markets: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also serve N markets derived from the recordings (S001/USD, ...), spread over the venues.",
        ),
    ] = 0,
) -> None:
    """Serve recorded market data through real exchange APIs: REST (Coinbase Exchange, Bitstamp,
    Kraken) and WebSocket trade/candle streams replayed from the recordings, plus `--derived-markets`
    more markets derived from them for load tests (see simulator/derived.py)."""
    from cryptopipe_dagster.lib.settings import load_settings
    from cryptopipe_dagster.simulator.server import run_simulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        clock = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None
        if clock is not None and clock.tzinfo is None:
            clock = clock.replace(tzinfo=dt.UTC)
        stop_after: int | str | None = stream_stop_after or None
        if stream_stop_after.isdigit():
            stop_after = int(stream_stop_after)
        run_simulator(
            host,
            port,
            data or load_settings().data_dir,
            seed=seed,
            faults=faults,
            now=clock,
            stream_speed=stream_speed,
            stream_start=stream_start or None,
            stream_stop_after=stop_after,
            stall_seconds=stall_seconds,
            derived_markets=derived_markets,
        )
    except (ValueError, OSError, CryptopipeError) as error:
        fail(error)


@app.command()
def collect(
    markets: Annotated[
        str,
        typer.Option(help="Comma-separated EXCHANGE:BASE/QUOTE; default: every market of the markets file."),
    ] = "",
    candles: Annotated[
        str, typer.Option(help="Comma-separated EXCHANGE:BASE/QUOTE whose closed 1m candles to stream too.")
    ] = "",
    project: Annotated[str, typer.Option(help="Pub/Sub project; default: CRYPTOPIPE_PUBSUB_PROJECT.")] = "",
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: run until SIGTERM).")
    ] = 0.0,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port (0: any free port).")] = 9108,
    metrics_host: Annotated[str, typer.Option(help="Address /metrics listens on.")] = "127.0.0.1",
    state_file: Annotated[
        Path, typer.Option(help="Checkpoint file; default: CRYPTOPIPE_HOME/collector/checkpoint.json.")
    ] = None,
    stall_timeout: Annotated[float, typer.Option(help="Reconnect a stream silent this many seconds.")] = 10.0,
    sweep_interval: Annotated[float, typer.Option(help="Seconds between REST sweeps per market.")] = 30.0,
    batch_max_age: Annotated[
        float, typer.Option(help="Publish a market's buffer after this many seconds.")
    ] = 0.2,
) -> None:
    """Stream trades (and 1m candles) over WebSocket, validate at the edge, publish to Pub/Sub.

    Reconnects with backoff and jitter, fills gaps over REST, drops duplicates, dead-letters bad
    records, logs JSON lines, serves Prometheus metrics, and flushes in-flight batches on SIGTERM."""
    from cryptopipe_dagster.cli.collect import collect_command

    try:
        collect_command(
            _csv(markets),
            _csv(candles),
            project,
            duration,
            metrics_host,
            metrics_port,
            state_file,
            stall_timeout,
            sweep_interval,
            batch_max_age,
            console,
        )
    except CryptopipeError as error:
        fail(error)


@app.command()
def live(
    speed: Annotated[
        str, typer.Option(help="Replay speed of the simulator's streams (1 = real time, or 'max').")
    ] = "10",
    start: Annotated[str, typer.Option(help="Instant the replay starts from (ISO 8601 UTC).")] = "",
    markets: Annotated[
        int,
        typer.Option(
            help="How many markets to stream: 3 = the demo's BTC/USD trio; more = the simulator's "
            "streamable markets, derived from the recordings past the five recorded ones (e.g. 100)."
        ),
    ] = 3,
    emulator_port: Annotated[
        int, typer.Option(help="Pub/Sub emulator port (make dev's sensor uses it).")
    ] = 8085,
    sim_port: Annotated[
        int, typer.Option(help="Exchange simulator port (started unless already up).")
    ] = 8765,
    metrics_port: Annotated[int, typer.Option(help="The collector's Prometheus /metrics port.")] = 9108,
) -> None:
    """Run the live path continuously on the local default: simulator streams, the Pub/Sub emulator
    and the collector, until Ctrl-C/SIGTERM. Load with `make dev` + market_data_sensor."""
    from cryptopipe_dagster.cli.live import live_command

    try:
        live_command(speed, start, markets, emulator_port, sim_port, metrics_port, console)
    except CryptopipeError as error:
        fail(error)


@app.command()
def bench(
    only: Annotated[
        str, typer.Option(help="Comma-separated benchmark names; default: all (see `make help`).")
    ] = "",
    out: Annotated[Path, typer.Option(help="Where results.json, results.md and charts/ go.")] = Path(
        "benchmarks"
    ),
    quick: Annotated[bool, typer.Option(help="Small sizes: checks the harness, not the numbers.")] = False,
) -> None:
    """Run the benchmarks (each with its baseline, in the same run) and write JSON, markdown, PNGs."""
    from cryptopipe_dagster.benchmarks.run import run_benchmarks
    from cryptopipe_dagster.lib.settings import load_settings

    command = "cryptopipe bench" + (f" --only {only}" if only else "") + (" --quick" if quick else "")
    try:
        paths = run_benchmarks(_csv(only), load_settings().data_dir, out, quick=quick, command=command)
    except CryptopipeError as error:
        fail(error)
    for label, path in paths.items():
        console.print(f"{label}: {path}")


@app.command()
def chaos(
    seed: Annotated[int | None, typer.Option(help="Reproduce a run; default: random, printed.")] = None,
    only: Annotated[str, typer.Option(help="Comma-separated scenario names; default: all.")] = "",
    trades: Annotated[int, typer.Option(help="Trades each market's replay emits.", min=10)] = 150,
    out: Annotated[Path, typer.Option(help="Where report.json and report.md go.")] = Path("chaos"),
) -> None:
    """Fault scenarios on the live path, each against the simulator's ledger: lost, duplicated,
    recovery time. Exit code 1 when any scenario lost or duplicated a trade."""
    from cryptopipe_dagster.chaos.suite import new_seed, passed, pick, run_suite, table
    from cryptopipe_dagster.lib.settings import load_settings

    try:
        scenarios = pick(_csv(only))
    except CryptopipeError as error:
        fail(error)
    seed = new_seed() if seed is None else seed
    # The collector's reconnect warnings are the faults working; its errors still show.
    logging.getLogger("cryptopipe.collector").setLevel(logging.ERROR)
    console.print(f"chaos: seed {seed} (reproduce: make chaos SEED={seed}), {len(scenarios)} scenario(s)")
    rows = run_suite(scenarios, seed, load_settings().data_dir, out, trades=trades, say=console.print)
    console.print(table(rows), soft_wrap=True)
    console.print(f"report: {out / 'report.json'}")
    if not passed(rows):
        raise typer.Exit(code=1)


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
    days_per_run: Annotated[
        int | None,
        typer.Option(help="Days per Dagster run; default: ~400k candles a run, at most 366 days."),
    ] = None,
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
def doctor(
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds each API call may take, retries included.")
    ] = 10.0,
) -> None:
    """Check the configured environment without writing anything: warehouse tables (schema,
    partitioning, clustering), Pub/Sub topics and subscriptions, and the credentials' permissions.
    One line per problem; exit 2 if there is any, 0 with a short summary otherwise."""
    from cryptopipe_dagster.cli.doctor import doctor_command

    try:
        code = doctor_command(timeout, console)
    except CryptopipeError as error:
        fail(error)
    raise typer.Exit(code=code)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the demo's exchange simulator (0: any free).")] = 0,
) -> None:
    """Start the simulator, backfill the demo markets of the markets file, print a summary.

    With CRYPTOPIPE_WAREHOUSE=bigquery and no CRYPTOPIPE_BIGQUERY_ENDPOINT, a BigQuery emulator is
    started for the run (and stopped after): the same pipeline on BigQuery's SQL, no cloud account."""
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the simulator and the emulators stop too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with _demo_bigquery():
            # Imported inside: the Dagster definitions read the warehouse settings when loaded.
            from cryptopipe_dagster.cli.runner import demo_command

            demo_command(port, console)
    except CryptopipeError as error:
        fail(error)


@contextlib.contextmanager
def _demo_bigquery():
    """The demo's own BigQuery emulator when BigQuery is asked for without an endpoint."""
    wants_bigquery = os.environ.get("CRYPTOPIPE_WAREHOUSE", "").strip().lower() == "bigquery"
    if not wants_bigquery or os.environ.get("CRYPTOPIPE_BIGQUERY_ENDPOINT"):
        yield
        return
    from cryptopipe_dagster.lib.warehouse.bigquery_emulator import emulator_environment

    with console.status("starting the BigQuery emulator"), emulator_environment() as emulator:
        console.print(f"BigQuery emulator on {emulator.endpoint} (project {emulator.project})")
        yield


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Dagster UI port.")] = 3000,
    sim_port: Annotated[int, typer.Option(help="Exchange simulator port.")] = 8765,
) -> None:
    """Dagster UI on the local instance, with the exchange simulator beside it.

    Ctrl-C/SIGTERM stops all it started, code servers included, within seconds (bounded waits)."""
    import contextlib

    from cryptopipe_dagster.cli.instance import prepare_dagster_home
    from cryptopipe_dagster.cli.process_tree import ProcessTree, stop_tree
    from cryptopipe_dagster.cli.simulator_process import simulator_is_up, start_simulator
    from cryptopipe_dagster.lib.settings import load_settings

    # Handlers first: a child inherits an *ignored* SIGINT (as in a background shell job) and
    # dagster dev would then never stop; a handled one is reset to the default in the child. Set
    # before anything starts, so a stop during startup also unwinds into the cleanup below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    settings = load_settings()
    prepare_dagster_home(settings)
    sim_url = f"http://127.0.0.1:{sim_port}"
    os.environ.setdefault("CRYPTOPIPE_EXCHANGE_API_URL", sim_url)
    tree = ProcessTree(os.getpid())
    ui: subprocess.Popen | None = None
    simulator: subprocess.Popen | None = None

    def graceful_stop() -> None:
        if ui is not None and ui.poll() is None:
            # dagster dev stops its webserver and daemon cleanly on SIGINT to its own process group.
            with contextlib.suppress(ProcessLookupError):  # it exited since poll()
                os.killpg(ui.pid, signal.SIGINT)
        if simulator is not None:
            simulator.terminate()

    def stopped() -> bool:
        return all(child.poll() is not None for child in (ui, simulator) if child is not None)

    try:
        if not simulator_is_up(sim_url):  # else someone else's simulator: used, never stopped
            simulator = start_simulator(settings.data_dir, sim_port)
        console.print(f"exchange simulator: {sim_url}   Dagster UI: http://127.0.0.1:{port}")
        ui = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)],
            start_new_session=True,
        )
        ui.wait()
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the usual way to end dev, not an error
    except CryptopipeError as error:
        fail(error)
    finally:
        # A second Ctrl-C must not cut the (bounded) cleanup short and strand what it is stopping.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for line in stop_tree(tree, graceful_stop, stopped).report():
            console.print(line, markup=False, highlight=False, soft_wrap=True)
