"""The WebSocket collector (`cryptopipe collect`): ccxt.pro streams -> normalized micro-batches -> Pub/Sub."""

from cryptopipe_dagster.lib.collector.service import Collector, CollectorReport
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, MarketSpec, parse_market

__all__ = ["Collector", "CollectorReport", "CollectorSettings", "MarketSpec", "parse_market"]
