"""Process-wide settings read from the environment, with the local defaults.

One environment variable, CRYPTOPIPE_ENV, selects the resource set (local | prod); everything the
pipeline writes locally lives under CRYPTOPIPE_HOME (default: .cryptopipe/ in the working tree).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptopipe_dagster.lib.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_MARKETS_FILE = PACKAGE_DIR / "config" / "markets.yaml"
# The recorded market data ships beside the repository (../shared/data), not inside it.
DEFAULT_DATA_DIR = PACKAGE_DIR.parent.parent / "shared" / "data"
ENVIRONMENTS = ("local", "prod")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `load_settings()`."""

    env: str
    home: Path
    markets_file: Path
    exchange_api_url: str | None
    data_dir: Path
    duckdb_path: Path

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read CRYPTOPIPE_* variables; a bad value raises ConfigError naming it."""
    environ = dict(os.environ if environ is None else environ)
    env = environ.get("CRYPTOPIPE_ENV", "local").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"CRYPTOPIPE_ENV={env!r} is not one of {ENVIRONMENTS}")
    home = Path(environ.get("CRYPTOPIPE_HOME") or Path.cwd() / ".cryptopipe").expanduser().resolve()
    markets_file = Path(environ.get("CRYPTOPIPE_MARKETS_FILE") or DEFAULT_MARKETS_FILE).expanduser()
    default_sim = "http://127.0.0.1:8765" if env == "local" else ""
    exchange_api_url = environ.get("CRYPTOPIPE_EXCHANGE_API_URL", default_sim).strip() or None
    if exchange_api_url and not exchange_api_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"CRYPTOPIPE_EXCHANGE_API_URL={exchange_api_url!r} must start with http:// or https://"
        )
    data_dir = Path(environ.get("CRYPTOPIPE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
    # dbt (a child process) reads the same variable, so one value serves the loader and dbt.
    duckdb_path = (
        Path(environ.get("CRYPTOPIPE_DUCKDB_PATH") or home / "warehouse.duckdb").expanduser().resolve()
    )
    return Settings(
        env=env,
        home=home,
        markets_file=markets_file,
        exchange_api_url=exchange_api_url,
        data_dir=data_dir,
        duckdb_path=duckdb_path,
    )
