"""DuckDB connection handling: one connection per operation, or one per `with` session.

Connections are opened per operation and closed right after, so a Dagster run and the CLI never
hold the single-writer file lock longer than one transaction; `with warehouse:` keeps one
connection open across several calls when that is wanted. Opening retries while another process
holds the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import duckdb
import pandas as pd
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from cryptopipe_dagster.lib.errors import WarehouseBusy


def _is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


# Another process (the CLI, a second Dagster run) may hold the file's write lock for a moment.
LOCK_WAIT_S = 30.0


class DuckDBConnections:
    """Opens the DuckDB file per operation (or once per `with` block), always with TimeZone=UTC."""

    def __init__(self, path: str | Path, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s  # how long to wait for a file another process holds
        self._session: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> Self:
        self._session = self._open(read_only=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        waiting = Retrying(
            retry=retry_if_exception(_is_lock_conflict),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(self.lock_wait_s),
            reraise=True,
        )
        try:
            return waiting(self._connect, read_only)
        except duckdb.IOException as error:
            if _is_lock_conflict(error):
                raise WarehouseBusy(
                    f"{self.path} still locked after {self.lock_wait_s:g}s: {error}"
                ) from error
            raise

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = duckdb.connect(str(self.path), read_only=read_only)
        connection.execute("SET TimeZone = 'UTC'")  # CAST(ts AS DATE) must mean the UTC date
        return connection

    def is_busy(self) -> bool:
        """Whether another process holds the file right now (one try, no waiting)."""
        if self._session is not None:
            return False
        try:
            self._connect(read_only=False).close()
        except duckdb.IOException as error:
            if _is_lock_conflict(error):
                return True
            raise
        return False

    @contextmanager
    def _connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._session is not None:
            yield self._session
            return
        connection = self._open(read_only=read_only and self.path.exists())
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connection() as connection:
            connection.begin()
            try:
                yield connection
            except BaseException:  # including KeyboardInterrupt: nothing half-written may commit
                connection.rollback()
                raise
            connection.commit()

    def query_df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a parameterized query on a read-only connection (outside a `with` session)."""
        with self._connection(read_only=True) as connection:
            return connection.execute(sql, params or {}).df()
