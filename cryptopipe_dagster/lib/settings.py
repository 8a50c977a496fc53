"""Process-wide settings read from the environment, with the local defaults.

One environment variable, CRYPTOPIPE_ENV, selects the resource set (local | prod); everything the
pipeline writes locally lives under CRYPTOPIPE_HOME (default: .cryptopipe/ in the working tree).
CRYPTOPIPE_WAREHOUSE (duckdb | bigquery; default duckdb locally, bigquery in prod) picks the
warehouse, and the CRYPTOPIPE_GCP_PROJECT / _BQ_LOCATION / _BQ_DATASET_PREFIX /
_BIGQUERY_ENDPOINT variables configure BigQuery (the endpoint points the client and dbt at an
emulator). These names are a contract: deployment tooling sets them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptopipe_dagster.lib.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_MARKETS_FILE = PACKAGE_DIR / "config" / "markets.yaml"
# The recorded market data ships beside the repository (../shared/data), not inside it.
DEFAULT_DATA_DIR = PACKAGE_DIR.parent.parent / "shared" / "data"
ENVIRONMENTS = ("local", "prod")
WAREHOUSES = ("duckdb", "bigquery")
# Variables that point the pipeline at something other than the real exchanges: refused in prod.
EXCHANGE_OVERRIDES = ("CRYPTOPIPE_EXCHANGE_API_URL", "CRYPTOPIPE_SIMULATOR_URL")
# A dataset name is letters, digits and underscores; the prefix is glued in front of raw, ops, ...
_DATASET_PREFIX = re.compile(r"[A-Za-z0-9_]{0,100}")
# Project ids: 6-30 lowercase letters, digits, hyphens (domain-scoped "example.com:p" also exists).
_PROJECT = re.compile(r"([a-z][a-z0-9.\-]*:)?[a-z][a-z0-9\-]{4,28}[a-z0-9]")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `load_settings()`."""

    env: str
    home: Path
    markets_file: Path
    exchange_api_url: str | None
    data_dir: Path
    duckdb_path: Path
    warehouse: str = "duckdb"
    gcp_project: str | None = None
    bq_location: str = "US"
    bq_dataset_prefix: str = ""
    bigquery_endpoint: str | None = None

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
    if env == "prod":
        overrides = [name for name in EXCHANGE_OVERRIDES if environ.get(name, "").strip()]
        if overrides:
            raise ConfigError(
                f"{', '.join(overrides)} must not be set with CRYPTOPIPE_ENV=prod: "
                "production reads the real exchanges (unset it, or use CRYPTOPIPE_ENV=local)"
            )
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
        **_bigquery_settings(environ, env),
    )


def _bigquery_settings(environ: dict[str, str], env: str) -> dict:
    warehouse = environ.get("CRYPTOPIPE_WAREHOUSE", "").strip().lower() or (
        "bigquery" if env == "prod" else "duckdb"
    )
    if warehouse not in WAREHOUSES:
        raise ConfigError(f"CRYPTOPIPE_WAREHOUSE={warehouse!r} is not one of {WAREHOUSES}")
    project = environ.get("CRYPTOPIPE_GCP_PROJECT", "").strip() or None
    if project is not None and not _PROJECT.fullmatch(project):
        raise ConfigError(f"CRYPTOPIPE_GCP_PROJECT={project!r} is not a valid Google Cloud project id")
    if warehouse == "bigquery" and project is None:
        raise ConfigError("CRYPTOPIPE_WAREHOUSE=bigquery needs CRYPTOPIPE_GCP_PROJECT (the project id)")
    prefix = environ.get("CRYPTOPIPE_BQ_DATASET_PREFIX", "").strip()
    if not _DATASET_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"CRYPTOPIPE_BQ_DATASET_PREFIX={prefix!r} may hold only letters, digits and underscores"
        )
    endpoint = environ.get("CRYPTOPIPE_BIGQUERY_ENDPOINT", "").strip() or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"CRYPTOPIPE_BIGQUERY_ENDPOINT={endpoint!r} must start with http:// or https://")
    location = environ.get("CRYPTOPIPE_BQ_LOCATION", "").strip() or "US"
    if not re.fullmatch(r"[A-Za-z0-9\-]{2,40}", location):
        raise ConfigError(
            f"CRYPTOPIPE_BQ_LOCATION={location!r} is not a BigQuery location (US, EU, europe-west1)"
        )
    return {
        "warehouse": warehouse,
        "gcp_project": project,
        "bq_location": location,
        "bq_dataset_prefix": prefix,
        "bigquery_endpoint": endpoint,
    }


def warehouse_env(settings: Settings) -> dict[str, str]:
    """The warehouse variables of `settings`, for a child process (the daemon, dbt) to see the same."""
    values = {
        "CRYPTOPIPE_WAREHOUSE": settings.warehouse,
        "CRYPTOPIPE_GCP_PROJECT": settings.gcp_project or "",
        "CRYPTOPIPE_BQ_LOCATION": settings.bq_location,
        "CRYPTOPIPE_BQ_DATASET_PREFIX": settings.bq_dataset_prefix,
        "CRYPTOPIPE_BIGQUERY_ENDPOINT": settings.bigquery_endpoint or "",
    }
    return {name: value for name, value in values.items() if value}
