"""Google's Pub/Sub emulator as a context manager: a free loopback port, a temp data dir, a clean stop.

The emulator is the Java fake shipped with the Cloud SDK (Debian package
``google-cloud-cli-pubsub-emulator``). Client libraries talk to it when ``PUBSUB_EMULATOR_HOST``
is set; `PubSubEmulator` can set that variable for its lifetime (``set_env=True``) or leave it to
the caller (tests patch it per test, so one session-wide emulator does not leak into other tests).

It keeps everything in memory: the jar has no persistence, so ``data_dir`` only holds its log and
the ``env.yaml`` that ``gcloud beta emulators pubsub env-init --data-dir=DIR`` reads.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptopipe_dagster.lib.errors import EmulatorUnavailable
from cryptopipe_dagster.lib.process_group import stop_process_group

log = logging.getLogger("cryptopipe.pubsub.emulator")

EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"
BINARY_ENV = "CRYPTOPIPE_PUBSUB_EMULATOR"  # explicit path wins over the search below
_SDK_ROOTS = (
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/share/google-cloud-sdk"),
    Path.home() / "google-cloud-sdk",
)
_RELATIVE_BINARY = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")


def find_emulator_binary() -> Path:
    """Path of ``cloud-pubsub-emulator``: $CRYPTOPIPE_PUBSUB_EMULATOR, then PATH, then the SDK dirs."""
    explicit = os.environ.get(BINARY_ENV)
    candidates = [Path(explicit)] if explicit else []
    on_path = shutil.which("cloud-pubsub-emulator")
    candidates += [Path(on_path)] if on_path else []
    candidates += [root / _RELATIVE_BINARY for root in _SDK_ROOTS]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmulatorUnavailable(
        "Pub/Sub emulator not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "): install the google-cloud-cli-pubsub-emulator package or set "
        + BINARY_ENV
    )


def find_java() -> Path:
    """The java the emulator's launcher will run ($JAVA_HOME/bin/java, else java on PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if java.is_file():
            return java
        raise EmulatorUnavailable(f"JAVA_HOME={java_home!r} has no bin/java (the emulator needs Java 11+)")
    on_path = shutil.which("java")
    if on_path is None:
        raise EmulatorUnavailable("java not found on PATH: the Pub/Sub emulator needs a Java 11+ runtime")
    return Path(on_path)


def free_loopback_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class PubSubEmulator:
    """The Pub/Sub emulator on a free loopback port; ``with PubSubEmulator() as emu: emu.host``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 60.0,
        set_env: bool = True,
    ) -> None:
        self.bind_host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.set_env = set_env
        self.host = ""  # "127.0.0.1:PORT" once started
        self.data_dir: Path | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._previous_env: str | None = None

    def start(self) -> PubSubEmulator:
        """Launch the emulator and return self once it answers HTTP; EmulatorUnavailable otherwise."""
        binary = find_emulator_binary()
        find_java()  # fail with a clear message before the launcher script prints a vague one
        self._tempdir = tempfile.TemporaryDirectory(prefix="cryptopipe-pubsub-")
        self.data_dir = Path(self._tempdir.name)
        # A port found free can be taken before the JVM binds it: try a few before giving up.
        attempts = 1 if self.port else 3
        for attempt in range(1, attempts + 1):
            port = self.port or free_loopback_port(self.bind_host)
            try:
                self._launch(binary, port)
                break
            except EmulatorUnavailable:
                self._terminate()
                if attempt == attempts:
                    self._cleanup_dir()
                    raise
        self.port = port
        self.host = f"{self.bind_host}:{port}"
        (self.data_dir / "env.yaml").write_text(f"{EMULATOR_HOST_ENV}: {self.host}\n")
        if self.set_env:
            self._previous_env = os.environ.get(EMULATOR_HOST_ENV)
            os.environ[EMULATOR_HOST_ENV] = self.host
        log.info("pubsub_emulator_started host=%s data_dir=%s pid=%s", self.host, self.data_dir, self.pid)
        return self

    def stop(self) -> None:
        """Stop the emulator (its whole process group, so the JVM goes too) and delete data_dir."""
        self._terminate()
        if self.set_env and self.host and os.environ.get(EMULATOR_HOST_ENV) == self.host:
            if self._previous_env is None:
                os.environ.pop(EMULATOR_HOST_ENV, None)
            else:
                os.environ[EMULATOR_HOST_ENV] = self._previous_env
        self._cleanup_dir()

    def __enter__(self) -> PubSubEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """Process id of the emulator (its launcher execs the JVM, so this is the JVM)."""
        return self._process.pid if self._process else None

    @property
    def log_path(self) -> Path | None:
        """The emulator's stdout+stderr (it logs a harmless stack trace per cancelled pull)."""
        return self.data_dir / "emulator.log" if self.data_dir else None

    def _launch(self, binary: Path, port: int) -> None:
        assert self.data_dir is not None and self.log_path is not None
        with self.log_path.open("ab") as log_file:
            # start_new_session: the launcher script and the JVM share a process group we own, so
            # stop() can signal both without touching any other process.
            self._process = subprocess.Popen(
                [str(binary), f"--host={self.bind_host}", f"--port={port}"],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready(port)

    def _wait_until_ready(self, port: int) -> None:
        # The emulator answers "Ok" on GET / once its gRPC/HTTP server is listening.
        url = f"http://{self.bind_host}:{port}/"
        deadline = time.monotonic() + self.startup_timeout_s
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmulatorUnavailable(
                    f"Pub/Sub emulator exited with code {self._process.returncode} on port {port}: "
                    + self._log_tail()
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            # HTTPException: another server (a gRPC one answers HTTP/2 frames) took the port first;
            # our JVM then fails to bind and exits, which the poll above turns into a retry.
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise EmulatorUnavailable(
            f"Pub/Sub emulator did not answer on {url} within {self.startup_timeout_s}s: " + self._log_tail()
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        stop_process_group(process)

    def _log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _cleanup_dir(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
            self.data_dir = None
