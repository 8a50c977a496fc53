"""`make monitor`'s Prometheus config against a real collector: Prometheus scrapes it, evaluates
every alert rule without an error, and sees a broken market's stream as unhealthy."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from cryptopipe_dagster.lib.collector import Collector, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.pubsub.emulator import free_loopback_port
from tests.monitoring.test_alerts import MONITORING, dashboard_queries, prometheus_tool
from tests.waiting import wait_for


def _prometheus(tmp_path: Path, collector_port: int) -> tuple[subprocess.Popen, str]:
    """Prometheus with the shipped config, pointed at `collector_port`, scraping every second."""
    binary = prometheus_tool("prometheus")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{collector_port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_loopback_port()}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    return process, f"http://{address}"


def _get(base: str, path: str, **query: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    try:
        return json.loads(urllib.request.urlopen(url, timeout=2).read())
    except OSError:
        return {}


def test_prometheus_scrapes_the_collector_and_evaluates_every_rule(
    streaming_simulator, market_data_project, tmp_path
) -> None:
    settings = CollectorSettings(
        markets=(parse_market("kraken:BTC/USD"), parse_market("kraken:DOGE/JPY")),  # DOGE/JPY: unlisted
        project_id=market_data_project,
        exchange_api_url=streaming_simulator.base_url,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.1,
        unhealthy_after=2,
    )
    collector = Collector(settings, metrics_port=0)
    with CollectorThread(collector):
        assert wait_for(lambda: collector.metrics_port, 30), "collector metrics never served"
        process, base = _prometheus(tmp_path, collector.metrics_port)
        try:

            def unhealthy_seen() -> bool:
                query = 'cryptopipe_collector_stream_unhealthy{symbol="DOGE/JPY"} == 1'
                return bool(_get(base, "/api/v1/query", query=query).get("data", {}).get("result"))

            def received_seen() -> bool:
                query = 'cryptopipe_collector_records_received_total{symbol="BTC/USD"} > 0'
                return bool(_get(base, "/api/v1/query", query=query).get("data", {}).get("result"))

            log = tmp_path / "prometheus.log"
            assert wait_for(unhealthy_seen, 60), log.read_text()[-2000:]
            assert wait_for(received_seen, 60), log.read_text()[-2000:]
            up = _get(base, "/api/v1/query", query='up{job="cryptopipe-collector"}')["data"]["result"]
            assert [sample["value"][1] for sample in up] == ["1"]

            def rules_evaluated() -> list[dict]:
                groups = _get(base, "/api/v1/rules").get("data", {}).get("groups", [])
                rules = [rule for group in groups for rule in group["rules"]]
                return (
                    rules
                    if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
                    else []
                )

            assert wait_for(rules_evaluated, 30)
            rules = rules_evaluated()
            assert len(rules) == 7 and {rule["health"] for rule in rules} == {"ok"}, rules
            for query in dashboard_queries():  # every panel's query runs against the real series
                answer = _get(base, "/api/v1/query", query=query)
                assert answer.get("status") == "success", (query, answer)
        finally:
            process.terminate()
            process.wait(timeout=30)
