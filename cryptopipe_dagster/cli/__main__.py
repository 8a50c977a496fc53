from cryptopipe_dagster.cli.app import app

app()
