"""`cryptopipe backfill`: run historical_candles_job over a date range as a few Dagster runs.

Runs go through the local Dagster instance, so they, their checks and lineage show in `make dev`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cryptopipe_dagster.defs.historical.partitions import partition_range_tags
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.markets_config import BackfillSpec
from cryptopipe_dagster.lib.timeframes import timeframe_seconds

# A run's candles: 92 days of 1m bars for three markets (~400k rows, tens of MB in memory).
ROWS_PER_RUN = 92 * 1440 * 3
# A run's partitions at most: a year keeps the progress bar moving and one failure's redo small.
MAX_CLI_DAYS_PER_RUN = 366
DAY_SECONDS = 86_400
QUIET_LOGGERS = {"console": {"config": {"log_level": "WARNING"}}}  # events still reach the instance

ASSET_OP = "raw__candles"


@dataclass
class ChunkResult:
    """One Dagster run of a backfill."""

    first_day: dt.date
    last_day: dt.date
    run_id: str
    success: bool
    metadata: dict


def day_chunks(start: dt.date, end: dt.date, days_per_run: int) -> list[tuple[dt.date, dt.date]]:
    """[start, end] (inclusive) cut into runs of at most days_per_run days."""
    if days_per_run < 1:
        raise ConfigError(f"--days-per-run must be >= 1, got {days_per_run}")
    chunks, first = [], start
    while first <= end:
        last = min(end, first + dt.timedelta(days=days_per_run - 1))
        chunks.append((first, last))
        first = last + dt.timedelta(days=1)
    return chunks


def auto_days_per_run(spec: BackfillSpec) -> int:
    """Days per run that keep a run near ROWS_PER_RUN candles: a quarter for 1m bars of three
    markets (the old fixed size), a year for daily or hourly bars, where a quarter is a few hundred
    rows and the run's fixed cost (seconds) would dominate."""
    bars_per_day = len(spec.symbols) * sum(DAY_SECONDS // timeframe_seconds(tf) for tf in spec.timeframes)
    return max(1, min(MAX_CLI_DAYS_PER_RUN, ROWS_PER_RUN // max(1, bars_per_day)))


def check_dates(spec: BackfillSpec, history_start: dt.date) -> None:
    """Dates must be closed UTC days inside the partitions."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    if spec.end < spec.start:
        raise ConfigError(f"--end {spec.end} is before --start {spec.start}")
    if spec.end > yesterday:
        raise ConfigError(f"--end {spec.end} is not a closed UTC day yet (latest: {yesterday})")
    if spec.start < history_start:
        raise ConfigError(f"--start {spec.start} is before history_start {history_start} of the markets file")


def _metadata_values(result: dg.ExecuteInProcessResult) -> dict:
    events = result.asset_materializations_for_node(ASSET_OP)
    if not events:
        return {}
    return {
        key: getattr(value, "value", value)
        for key, value in events[0].metadata.items()
        if isinstance(getattr(value, "value", None), int | float)
    }


def execute_range(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    exchange: str,
    first: dt.date,
    last: dt.date,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of `job` over the days [first, last] of one exchange, on the given instance."""
    # The progress bar is the terminal's view; every event still goes to the instance (the UI).
    config = {**(run_config or {}), "loggers": QUIET_LOGGERS}
    return job.execute_in_process(
        run_config=config,
        instance=instance,
        raise_on_error=False,
        tags=partition_range_tags(first.isoformat(), last.isoformat(), exchange),
    )


def run_backfill(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    spec: BackfillSpec,
    *,
    refetch: bool = False,
    days_per_run: int | None = None,
    console: Console | None = None,
) -> list[ChunkResult]:
    """Launch the runs (days_per_run days each; default auto_days_per_run), showing days done, rows,
    rate and ETA; returns one result per run."""
    console = console or Console()
    run_config = {
        "ops": {
            ASSET_OP: {
                "config": {
                    "symbols": list(spec.symbols),
                    "timeframes": list(spec.timeframes),
                    "refetch": refetch,
                }
            }
        },
        # The progress bar is the terminal's view; every event still goes to the instance (the UI).
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    chunks = day_chunks(spec.start, spec.end, days_per_run or auto_days_per_run(spec))
    results: list[ChunkResult] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        label = f"{spec.exchange} {','.join(spec.symbols)} {','.join(spec.timeframes)}"
        task = progress.add_task(label, total=(spec.end - spec.start).days + 1, rows=0)
        rows = 0
        for first, last in chunks:
            result = job.execute_in_process(
                run_config=run_config,
                instance=instance,
                raise_on_error=False,
                tags=partition_range_tags(first.isoformat(), last.isoformat(), spec.exchange),
            )
            metadata = _metadata_values(result)
            rows += int(metadata.get("rows", 0))
            results.append(ChunkResult(first, last, result.run_id, result.success, metadata))
            progress.update(task, advance=(last - first).days + 1, rows=rows)
            if not result.success:
                console.print(
                    f"[red]run {result.run_id} failed for {first}..{last}; "
                    f"re-run the same command to resume from the checkpoint[/red]"
                )
                break
    return results
