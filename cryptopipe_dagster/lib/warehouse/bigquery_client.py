"""BigQuery clients and dataset names from the settings (the one place that knows the endpoint).

CRYPTOPIPE_BIGQUERY_ENDPOINT points the client at an emulator (anonymous credentials, as
emulators take no auth); unset, the client uses Google's API with Application Default Credentials
(the workload identity of the process in production, never a key in code or config).
"""

from __future__ import annotations

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from cryptopipe_dagster.lib.settings import Settings
from cryptopipe_dagster.lib.warehouse.tables import safe_identifier


def bigquery_client(settings: Settings) -> bigquery.Client:
    """A client for settings.gcp_project in settings.bq_location (the emulator when an endpoint is set)."""
    if settings.bigquery_endpoint:
        return emulator_client(settings.bigquery_endpoint, settings.gcp_project, settings.bq_location)
    return bigquery.Client(project=settings.gcp_project, location=settings.bq_location)


def emulator_client(endpoint: str, project: str | None, location: str | None) -> bigquery.Client:
    """A client for a BigQuery emulator at `endpoint` (emulators take no credentials)."""
    return bigquery.Client(
        project=project,
        location=location,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def dataset_name(prefix: str, dataset: str) -> str:
    """The BigQuery dataset of a logical schema (raw, ops, marts, ...) under the configured prefix."""
    return safe_identifier(f"{prefix}{dataset}")
