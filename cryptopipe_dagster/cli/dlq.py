"""`cryptopipe dlq list|replay`: inspect dead letters and push them through the normal path again."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from cryptopipe_dagster.lib.errors import ConfigError, CryptopipeError

dlq_app = typer.Typer(help="Dead letters: list them, replay them once fixed.", no_args_is_help=True)

PAYLOAD_CHARS = 60


def _warehouse():
    from cryptopipe_dagster.lib.settings import load_settings
    from cryptopipe_dagster.lib.warehouse import open_warehouse

    return open_warehouse(load_settings())  # CRYPTOPIPE_WAREHOUSE: DuckDB or BigQuery


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _payload(value: object) -> str:
    text = _text(value)
    return text if len(text) <= PAYLOAD_CHARS else text[: PAYLOAD_CHARS - 1] + "…"


@dlq_app.command("list")
def list_command(
    dataset: Annotated[str | None, typer.Option(help="candles or trades.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Exchange id, e.g. coinbaseexchange.")] = None,
    reason: Annotated[str | None, typer.Option(help="Reason code, e.g. ohlc_inconsistent.")] = None,
    replayed: Annotated[
        bool | None, typer.Option("--replayed/--not-replayed", help="Only replayed / not replayed.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show (oldest first).")] = 50,
) -> None:
    """Show stored dead letters and their counts by reason."""
    from cryptopipe_dagster.cli.app import console, fail
    from cryptopipe_dagster.lib.edge.dlq_replay import check_dataset, check_reason_code

    try:
        check_dataset(dataset)
        check_reason_code(reason)
        if limit < 1:
            raise ConfigError(f"invalid limit {limit!r}: expected a positive integer")
        warehouse = _warehouse()
        filters = {"dataset": dataset, "exchange": exchange, "reason_code": reason, "replayed": replayed}
        every = warehouse.dead_letters(**filters, limit=None)
    except CryptopipeError as error:
        fail(error)
        return
    shown = every.head(limit)
    table = Table(title=f"dead letters ({len(shown)} of {len(every)})")
    columns = (
        "id",
        "dataset",
        "exchange",
        "symbol",
        "timeframe",
        "reason_code",
        "check_name",
        "first_seen_at",
        "replayed_at",
        "payload",
    )
    for column in columns:
        table.add_column(column, overflow="fold" if column == "payload" else "ellipsis")
    for _, row in shown.iterrows():
        table.add_row(
            str(row["dead_letter_id"])[:12],
            *(_text(row[name]) for name in columns[1:-1]),
            _payload(row["raw_payload"]),
        )
    console.print(table)
    counts = every["reason_code"].value_counts().sort_index() if len(every) else pd.Series(dtype=int)
    summary = Table(title="by reason")
    summary.add_column("reason_code")
    summary.add_column("count", justify="right")
    for code, count in counts.items():
        summary.add_row(str(code), str(int(count)))
    console.print(summary)


@dlq_app.command("replay")
def replay_command(
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange id.")] = None,
    dataset: Annotated[str | None, typer.Option(help="candles or trades.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only; change nothing.")] = False,
) -> None:
    """Re-normalize not-yet-replayed dead letters; load and mark replayed the ones now valid."""
    from cryptopipe_dagster.cli.app import console, fail
    from cryptopipe_dagster.lib.edge.dlq_replay import check_dataset, check_reason_code, replay_dead_letters

    try:
        check_dataset(dataset)
        check_reason_code(reason)
        stats = replay_dead_letters(
            _warehouse(), dataset=dataset, reason_code=reason, exchange=exchange, dry_run=dry_run
        )
    except CryptopipeError as error:
        fail(error)
        return
    prefix = "dry run: " if dry_run else ""
    console.print(
        f"{prefix}considered={stats.considered} loaded={stats.loaded} still_invalid={stats.still_invalid}"
    )
    if stats.still_invalid_reasons:
        reasons = ", ".join(f"{code}={n}" for code, n in sorted(stats.still_invalid_reasons.items()))
        console.print(f"still invalid by reason: {reasons}")
