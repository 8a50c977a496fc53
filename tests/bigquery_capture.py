"""Capture every SQL statement sent to BigQuery: a recording reverse proxy in front of the emulator,
and a check that each statement prunes the date-partitioned tables it reads or writes.

Every client (the pipeline's google-cloud-bigquery, dbt-bigquery in its own process, the Dagster
daemon's code server) reaches BigQuery through CRYPTOPIPE_BIGQUERY_ENDPOINT, so pointing that at the
proxy records everything the pipeline really sends: jobs.insert (configuration.query.query) and
jobs.query (query). Nothing is changed on the way.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass

import aiohttp
import sqlglot
from aiohttp import web
from sqlglot import exp

from cryptopipe_dagster.lib.warehouse.tables import LANDING_TABLES, TABLES


class CapturingProxy:
    """`with CapturingProxy(emulator.endpoint) as proxy:` -> proxy.endpoint, proxy.statements."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.statements: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CapturingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("capturing proxy did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self._record(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method, f"{self.upstream}{request.rel_url}", headers=headers, data=body
            ) as upstream,
        ):
            payload = await upstream.read()
            kept = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("transfer-encoding", "content-length", "connection")
            }
            return web.Response(status=upstream.status, body=payload, headers=kept)

    def _record(self, body: bytes) -> None:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return  # uploads (Parquet, multipart) carry no SQL
        if not isinstance(document, dict):
            return
        query = document.get("configuration", {}).get("query", {}).get("query") or document.get("query")
        if isinstance(query, str):
            self.statements.append(query)


@dataclass(frozen=True)
class Violation:
    statement: str
    table: str
    partition_column: str

    def __str__(self) -> str:
        return f"{self.table} read without a filter on {self.partition_column}: {self.statement[:300]}"


PARTITIONED = {
    spec.name: spec.partition_source
    for spec in (*TABLES.values(), *LANDING_TABLES.values())
    if spec.partition_source
}


def partition_filter_violations(statements: list[str], datasets: set[str]) -> list[Violation]:
    """Each reference to a date-partitioned pipeline table (raw.candles, raw.trades, the landing
    tables) whose enclosing query, MERGE or DML has no predicate on the partition column."""
    found = []
    for statement in statements:
        for tree in sqlglot.parse(statement, read="bigquery"):
            if tree is None or _defines_a_view(tree):
                continue  # a view's body runs (and is checked) when a query reads the view
            for table in tree.find_all(exp.Table):
                column = PARTITIONED.get(table.name)
                if column is None or table.db not in datasets:
                    continue
                if not _pruned(table, column):
                    found.append(Violation(statement, f"{table.db}.{table.name}", column))
    return found


def _defines_a_view(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "VIEW"


def _pruned(table: exp.Table, column: str) -> bool:
    """Whether the query, MERGE or DML that reads `table` filters on its partition column."""
    alias = table.alias_or_name
    scope = table.find_ancestor(exp.Select, exp.Merge, exp.Update, exp.Delete)
    if scope is None:
        return False
    clauses = [scope.args.get("where"), scope.args.get("on")]
    clauses += [join.args.get("on") for join in scope.args.get("joins") or []]
    for clause in filter(None, clauses):
        for reference in clause.find_all(exp.Column):
            if reference.name == column and reference.table in ("", alias, table.name):
                return True
    return False
