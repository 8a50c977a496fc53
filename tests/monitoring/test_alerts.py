"""The alert rules: promtool accepts them and their unit tests, every alert has a runbook, every
runbook command exists in the CLI, and every metric an alert reads is one the code exports."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from cryptopipe_dagster.cli.app import app
from cryptopipe_dagster.lib.collector.metrics import CollectorMetrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RUNBOOKS = ROOT / "docs" / "runbooks"
_COMMAND = re.compile(r"`(cryptopipe [^`]+)`")


def _alerts() -> list[dict]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def prometheus_tool(name: str) -> str:
    """Path of `promtool` or `prometheus`; a missing one fails in CI (`make install` installs it)
    and skips elsewhere (a laptop without Debian's prometheus package)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is missing: `make install` installs it (Debian's prometheus package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess:
    command = [prometheus_tool("promtool"), *args]
    return subprocess.run(command, cwd=MONITORING, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert {rule["alert"] for rule in _alerts()} <= tested


def test_every_alert_links_its_own_runbook_which_exists_and_is_listed() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    pages = [rule["annotations"]["runbook_url"] for rule in _alerts()]
    assert len(set(pages)) == len(pages), "one runbook per alert"
    for rule, page in zip(_alerts(), pages, strict=True):
        path = ROOT / page
        assert path.is_file(), f"{rule['alert']}: {page} does not exist"
        assert path.read_text().startswith(f"# {rule['alert']}\n"), page
        assert f"| {rule['alert']} | [{path.name}]({path.name}) |" in index, rule["alert"]


def dashboard_queries() -> list[str]:
    """Every PromQL query of the Grafana dashboards."""
    queries = []
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            queries += [target["expr"] for target in panel.get("targets", [])]
    return queries


def test_every_metric_an_alert_or_a_panel_reads_is_exported() -> None:
    exported = {"up"}
    for family in CollectorMetrics().registry.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported.add(f"{family.name}_total")
        if family.type == "histogram":
            exported.add(f"{family.name}_bucket")
    queries = [rule["expr"] for rule in _alerts()] + dashboard_queries()
    for query in queries:
        names = set(re.findall(r"\b(cryptopipe_[a-z_]+|up)\b", query))
        assert names and names <= exported, f"{query}: {sorted(names - exported)} not exported"


def test_the_dashboard_has_one_row_per_concern() -> None:
    panels = json.loads((MONITORING / "dashboards" / "cryptopipe-collector.json").read_text())["panels"]
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows == [
        "Availability",
        "Freshness",
        "Throughput",
        "Latency",
        "Errors and data quality",
        "Backlog",
    ]


@pytest.mark.parametrize("page", sorted(RUNBOOKS.glob("*.md")), ids=lambda p: p.name)
def test_runbook_commands_and_flags_exist_in_the_cli(page: Path) -> None:
    commands = _COMMAND.findall(page.read_text())
    for text in commands:
        _assert_cli_accepts(text)


def _assert_cli_accepts(text: str) -> None:
    """`cryptopipe SUB [SUB] --flag ...`: each subcommand and each flag exists (values not checked)."""
    command = typer.main.get_command(app)
    words = shlex.split(text.replace("...", ""))[1:]
    while words and hasattr(command, "commands") and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in command.commands, f"{text!r}: no command {name!r}"
        command = command.commands[name]
    flags = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in flags, f"{text!r}: {command.name} has no {word}"
