"""The BigQuery emulator (`bqemulator`, DuckDB + SQLGlot) as a context manager on free loopback ports.

It lives in its own virtualenv (.venv-bqemulator, from .ci/bqemulator-requirements.txt; `make
install` creates it) because it needs pandas 3 and DuckDB 1.5.5 while the pipeline pins pandas<3.
Its DuckDB loads the spatial extension from ~/.duckdb/extensions; with no internet it cannot
download it, so the emulator runs with HOME set to its own temp dir, where the extension file
shipped in the venv is linked. Nothing outside that temp dir is touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cryptopipe_dagster.lib.errors import EmulatorUnavailable
from cryptopipe_dagster.lib.process_group import stop_process_group
from cryptopipe_dagster.lib.pubsub.emulator import free_loopback_port
from cryptopipe_dagster.lib.settings import PACKAGE_DIR

log = logging.getLogger("cryptopipe.warehouse.bigquery_emulator")

BINARY_ENV = "CRYPTOPIPE_BQEMULATOR"  # explicit path of the `bqemulator` script
DEFAULT_VENV = PACKAGE_DIR.parent / ".venv-bqemulator"
DUCKDB_VERSION = "v1.5.5"  # pinned in .ci/bqemulator-requirements.txt
INSTALL_HINT = "run `make install` (it creates .venv-bqemulator from .ci/bqemulator-requirements.txt)"


def find_bqemulator() -> Path:
    """The `bqemulator` script: $CRYPTOPIPE_BQEMULATOR, else .venv-bqemulator/bin/bqemulator."""
    explicit = os.environ.get(BINARY_ENV)
    binary = Path(explicit) if explicit else DEFAULT_VENV / "bin" / "bqemulator"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise EmulatorUnavailable(f"BigQuery emulator not found at {binary}: {INSTALL_HINT}")
    return binary


def _spatial_extension(binary: Path) -> Path:
    venv = binary.resolve().parent.parent
    found = sorted(
        venv.glob(f"lib/python*/site-packages/duckdb_extension_spatial/extensions/{DUCKDB_VERSION}/*")
    )
    if not found:
        raise EmulatorUnavailable(
            f"duckdb spatial extension {DUCKDB_VERSION} missing from {venv}: {INSTALL_HINT}"
        )
    return found[0]


class BigQueryEmulator:
    """`with BigQueryEmulator(project="p") as bq: bq.endpoint` -> "http://127.0.0.1:PORT"."""

    def __init__(self, project: str = "cryptopipe-local", *, startup_timeout_s: float = 90.0) -> None:
        self.project = project
        self.startup_timeout_s = startup_timeout_s
        self.rest_port = 0
        self.grpc_port = 0
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The REST endpoint (what CRYPTOPIPE_BIGQUERY_ENDPOINT takes)."""
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_host(self) -> str:
        """host:port of the Storage Read/Write API."""
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> BigQueryEmulator:
        """Launch and wait until the REST API lists datasets; EmulatorUnavailable otherwise."""
        binary = find_bqemulator()
        extension = _spatial_extension(binary)
        self._tempdir = tempfile.TemporaryDirectory(prefix="cryptopipe-bqemulator-")
        home = Path(self._tempdir.name)
        extensions = home / ".duckdb" / "extensions" / DUCKDB_VERSION / "linux_amd64"
        extensions.mkdir(parents=True)
        (extensions / extension.name).symlink_to(extension)
        for attempt in range(3):  # a port found free may be taken before the emulator binds it
            self.rest_port, self.grpc_port = free_loopback_port(), free_loopback_port()
            try:
                self._launch(binary, home)
                log.info("bigquery_emulator_started endpoint=%s", self.endpoint)
                return self
            except EmulatorUnavailable:
                self._terminate()
                if attempt == 2:
                    self._cleanup()
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the emulator's process group and delete its temp dir."""
        self._terminate()
        self._cleanup()

    def __enter__(self) -> BigQueryEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def log_path(self) -> Path | None:
        return Path(self._tempdir.name) / "emulator.log" if self._tempdir else None

    def _launch(self, binary: Path, home: Path) -> None:
        assert self.log_path is not None
        command = [
            str(binary), "start", "--project", self.project, "--log-level", "warning",
            "--rest-host", "127.0.0.1", "--rest-port", str(self.rest_port),
            "--grpc-host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
        ]  # fmt: skip
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                command,
                cwd=home,
                env={**os.environ, "HOME": str(home)},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the group, nothing else
            )
        url = f"{self.endpoint}/bigquery/v2/projects/{self.project}/datasets"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmulatorUnavailable(f"BigQuery emulator exited: {self._log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise EmulatorUnavailable(f"BigQuery emulator did not answer on {url}: {self._log_tail()}")

    def _terminate(self) -> None:
        process, self._process = self._process, None
        stop_process_group(process)

    def _log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _cleanup(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None


DEMO_PROJECT = "cryptopipe-local"


@contextlib.contextmanager
def emulator_environment(project: str = DEMO_PROJECT) -> Iterator[BigQueryEmulator]:
    """A BigQuery emulator for this process and its children: CRYPTOPIPE_BIGQUERY_ENDPOINT and
    CRYPTOPIPE_GCP_PROJECT (unless set) point at it until the block ends, then are restored."""
    with BigQueryEmulator(project=os.environ.get("CRYPTOPIPE_GCP_PROJECT") or project) as emulator:
        values = {
            "CRYPTOPIPE_BIGQUERY_ENDPOINT": emulator.endpoint,
            "CRYPTOPIPE_GCP_PROJECT": emulator.project,
        }
        previous = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield emulator
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
