"""`cryptopipe gaps list|repair`: the gap ledger (ops.gaps) for operators, readable at 80 columns."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from cryptopipe_dagster.lib.errors import ConfigError, CryptopipeError

gaps_app = typer.Typer(help="Gap ledger: list missing spans, repair the due ones.", no_args_is_help=True)

SHORT_STATE = {"confirmed_exchange_gap": "confirmed"}  # the legend under the table says what it means


def _warehouse():
    from cryptopipe_dagster.lib.settings import load_settings
    from cryptopipe_dagster.lib.warehouse import open_warehouse

    return open_warehouse(load_settings())  # CRYPTOPIPE_WAREHOUSE: DuckDB or BigQuery


def _stamp(value: object, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime(fmt)


def _length(start: pd.Timestamp, end: pd.Timestamp) -> str:
    span = pd.Timestamp(end) - pd.Timestamp(start)
    if span >= pd.Timedelta(days=1) and span % pd.Timedelta(days=1) == pd.Timedelta(0):
        return f"{span.days}d"
    if span >= pd.Timedelta(hours=1):
        return f"{span / pd.Timedelta(hours=1):g}h"
    return f"{span / pd.Timedelta(minutes=1):g}m"


def _instant(text: str | None) -> pd.Timestamp:
    if not text:
        return pd.Timestamp.now(tz="UTC")
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"invalid --now {text!r}: expected an ISO 8601 instant") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def gaps_table(gaps: pd.DataFrame, title: str) -> Table:
    """One line per gap: market, span start and length, state, attempts (n), next attempt, answers."""
    from cryptopipe_dagster.lib.historical.gap_ledger import evidence_summary

    # One space between columns and none at the edges: a row of a Bitstamp market fits 80 columns.
    table = Table(title=title, box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for column in ("market", "from (UTC)", "span", "state", "n", "next"):
        wrap = {"no_wrap": True} if column != "market" else {"overflow": "fold"}
        table.add_column(column, justify="right" if column == "n" else "left", **wrap)
    table.add_column("answers", overflow="fold")
    for row in gaps.itertuples(index=False):
        table.add_row(
            f"{row.exchange} {row.symbol} {row.timeframe}",
            _stamp(row.span_start),
            _length(row.span_start, row.span_end),
            SHORT_STATE.get(row.state, row.state),
            str(row.attempts),
            _stamp(row.next_attempt, "%m-%d %H:%M"),
            evidence_summary(row.evidence),
        )
    return table


@gaps_app.command("list")
def list_command(
    state: Annotated[str | None, typer.Option(help="open, repaired or confirmed_exchange_gap.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Exchange id, e.g. bitstamp.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
) -> None:
    """Show the ledger's gaps and their counts by state."""
    from cryptopipe_dagster.cli.app import console, fail
    from cryptopipe_dagster.lib.historical.gap_ledger import STATES

    try:
        if state is not None and state not in STATES:
            raise ConfigError(f"invalid state {state!r}: expected one of {', '.join(STATES)}")
        if limit < 1:
            raise ConfigError(f"invalid limit {limit!r}: expected a positive integer")
        every = _warehouse().list_gaps(state=state, exchange=exchange)
    except CryptopipeError as error:
        fail(error)
        return
    console.print(gaps_table(every.head(limit), f"gaps ({min(limit, len(every))} of {len(every)})"))
    counts = every["state"].value_counts().sort_index() if len(every) else pd.Series(dtype=int)
    console.print("by state: " + (", ".join(f"{s}={int(n)}" for s, n in counts.items()) or "none"))
    console.print(
        "confirmed = confirmed_exchange_gap: the exchange has no data there (not filled, by design)"
    )


@gaps_app.command("repair")
def repair_command(
    now: Annotated[
        str | None, typer.Option(help="Repair as of this instant (ISO 8601); default: now.")
    ] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange's gaps.")] = None,
) -> None:
    """One attempt at every open gap that is due (the scheduled gap_repair_job does the same)."""
    from cryptopipe_dagster.cli.app import console, fail
    from cryptopipe_dagster.lib.exchanges.clients import create_exchange
    from cryptopipe_dagster.lib.historical.gap_ledger import GapPolicy
    from cryptopipe_dagster.lib.historical.gap_repair import repair_due_gaps
    from cryptopipe_dagster.lib.settings import load_settings

    try:
        settings = load_settings()
        report = repair_due_gaps(
            _warehouse(),
            lambda exchange_id: create_exchange(exchange_id, exchange_api_url=settings.exchange_api_url),
            now=_instant(now),
            policy=GapPolicy.from_env(),
            exchange=exchange,
        )
    except CryptopipeError as error:
        fail(error)
        return
    if report.gaps:
        console.print(gaps_table(pd.DataFrame(report.gaps), "attempted"))
    console.print(
        f"attempted={report.attempted} repaired={report.repaired} confirmed={report.confirmed} "
        f"still_open={report.still_open} candles_filled={report.candles_filled}"
    )
