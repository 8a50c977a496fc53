"""The dbt project as a whole: docs generate, and sqlfluff (dbt templater) keeps the SQL uniform."""

from __future__ import annotations

import json
import subprocess

from tests.dbt.helpers import BIN, DBT_PROJECT, MARTS, dbt_env


def test_docs_generate_documents_every_mart(full_build):
    full_build.dbt("docs", "generate")
    target = full_build.work_dir / "target"
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())
    assert {f"model.cryptopipe.{m}" for m in MARTS} <= set(catalog["nodes"])
    for name in MARTS:
        node = manifest["nodes"][f"model.cryptopipe.{name}"]
        assert node["description"] and all(c["description"] for c in node["columns"].values()), name
    indicators = manifest["nodes"]["model.cryptopipe.indicators_1h"]["description"]
    for statement in ("Gap rule", "null when the 24 bars' volume is 0", "Precision", "population"):
        assert statement in indicators


def test_models_lint_clean(tmp_path):
    result = subprocess.run(
        [str(BIN / "sqlfluff"), "lint", "models", "--disable-progress-bar"],
        cwd=DBT_PROJECT,
        env={
            **dbt_env(tmp_path / "lint.duckdb"),
            # the templater compiles the project: keep dbt's files out of dbt_project/
            "DBT_TARGET_PATH": str(tmp_path / "target"),
            "DBT_LOG_PATH": str(tmp_path / "logs"),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_prod_target_parses_with_bigquery_partitioning_and_merge(tmp_path):
    """The BigQuery target is exercised against BigQuery in a later issue; here: it parses offline and
    the marts get day partitions on ts, clustering, merge and window-pruned merge predicates."""
    window = {"window_start": "2019-03-25", "window_end": "2019-03-26", "exchanges": ["bitstamp"]}
    result = subprocess.run(
        [
            str(BIN / "dbt"),
            "parse",
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target",
            "prod",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
            "--vars",
            json.dumps(window),
        ],
        env={**dbt_env(tmp_path / "unused.duckdb"), "CRYPTOPIPE_GCP_PROJECT": "offline-check"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    nodes = json.loads((tmp_path / "target" / "manifest.json").read_text())["nodes"]
    for name in MARTS:
        node = nodes[f"model.cryptopipe.{name}"]
        config = node["config"]
        assert node["schema"] == "marts"
        assert config["partition_by"] == {"field": "ts", "data_type": "timestamp", "granularity": "day"}
        assert config["cluster_by"] == ["exchange", "symbol"]
        assert config["incremental_strategy"] == "merge"
        assert config["unique_key"] == ["exchange", "symbol", "ts"]
        # The indicator marts also rewrite the bars after the window that read it: open-ended.
        window_end = "DBT_INTERNAL_DEST.ts < timestamp('2019-03-26 00:00:00+00')"
        assert config["incremental_predicates"] == [
            "DBT_INTERNAL_DEST.ts >= timestamp('2019-03-25 00:00:00+00')",
            *([] if name.startswith("indicators") else [window_end]),
            "DBT_INTERNAL_DEST.exchange in ('bitstamp')",
        ]
