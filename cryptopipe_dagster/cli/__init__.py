"""The `cryptopipe` command line: what is not a Dagster run (simulator, backfills, demo, dev UI)."""

from cryptopipe_dagster.cli.app import app

__all__ = ["app"]
