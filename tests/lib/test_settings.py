"""Settings from the environment: the warehouse contract variables and their bad values."""

from __future__ import annotations

import pytest

from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.settings import load_settings, warehouse_env

BIGQUERY = {"CRYPTOPIPE_WAREHOUSE": "bigquery", "CRYPTOPIPE_GCP_PROJECT": "my-project-1"}


def test_the_warehouse_follows_the_environment_unless_named():
    assert load_settings({}).warehouse == "duckdb"
    assert (
        load_settings({"CRYPTOPIPE_ENV": "prod", "CRYPTOPIPE_GCP_PROJECT": "my-project-1"}).warehouse
        == "bigquery"
    )
    assert load_settings({"CRYPTOPIPE_ENV": "prod", "CRYPTOPIPE_WAREHOUSE": "duckdb"}).warehouse == "duckdb"
    settings = load_settings(
        {**BIGQUERY, "CRYPTOPIPE_BQ_DATASET_PREFIX": "dev_", "CRYPTOPIPE_BQ_LOCATION": "europe-west1"}
    )
    assert (settings.gcp_project, settings.bq_dataset_prefix, settings.bq_location) == (
        "my-project-1",
        "dev_",
        "europe-west1",
    )
    assert settings.bigquery_endpoint is None
    child = warehouse_env(settings)
    assert child["CRYPTOPIPE_BQ_DATASET_PREFIX"] == "dev_" and "CRYPTOPIPE_BIGQUERY_ENDPOINT" not in child


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CRYPTOPIPE_WAREHOUSE": "postgres"}, "CRYPTOPIPE_WAREHOUSE"),
        ({"CRYPTOPIPE_WAREHOUSE": "bigquery"}, "CRYPTOPIPE_GCP_PROJECT"),
        ({**BIGQUERY, "CRYPTOPIPE_GCP_PROJECT": "Bad Project!"}, "CRYPTOPIPE_GCP_PROJECT"),
        ({**BIGQUERY, "CRYPTOPIPE_BQ_DATASET_PREFIX": "dev-; drop"}, "CRYPTOPIPE_BQ_DATASET_PREFIX"),
        ({**BIGQUERY, "CRYPTOPIPE_BIGQUERY_ENDPOINT": "localhost:9050"}, "CRYPTOPIPE_BIGQUERY_ENDPOINT"),
        ({**BIGQUERY, "CRYPTOPIPE_BQ_LOCATION": "us central"}, "CRYPTOPIPE_BQ_LOCATION"),
    ],
)
def test_bad_values_are_one_clear_error_naming_the_variable(environ, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(environ)


@pytest.mark.parametrize("variable", ["CRYPTOPIPE_EXCHANGE_API_URL", "CRYPTOPIPE_SIMULATOR_URL"])
def test_prod_refuses_an_exchange_override(variable):
    with pytest.raises(ConfigError, match=f"{variable} must not be set with CRYPTOPIPE_ENV=prod"):
        load_settings(
            {"CRYPTOPIPE_ENV": "prod", "CRYPTOPIPE_GCP_PROJECT": "my-project-1", variable: "http://x"}
        )
    local = load_settings({"CRYPTOPIPE_EXCHANGE_API_URL": "http://127.0.0.1:9"})
    assert local.exchange_api_url == "http://127.0.0.1:9"
