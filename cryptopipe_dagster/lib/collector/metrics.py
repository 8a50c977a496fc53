"""Prometheus metrics of the collector, on their own registry (several collectors per test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_MARKET = ("exchange", "symbol")


class CollectorMetrics:
    """Counters and gauges labelled by market; `serve` exposes them at http://host:port/metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "cryptopipe_collector_records_received",
            "Records received",
            (*_MARKET, "kind", "transport"),
            registry=r,
        )
        self.published = Counter(
            "cryptopipe_collector_records_published",
            "Records handed to Pub/Sub",
            (*_MARKET, "kind"),
            registry=r,
        )
        self.batches = Counter(
            "cryptopipe_collector_batches_confirmed",
            "Micro-batches Pub/Sub confirmed",
            (*_MARKET, "kind"),
            registry=r,
        )
        self.publish_failures = Counter(
            "cryptopipe_collector_publish_failures",
            "Batches the publisher gave up on (re-queued)",
            _MARKET,
            registry=r,
        )
        self.duplicates = Counter(
            "cryptopipe_collector_duplicates_dropped",
            "Records dropped as already seen",
            (*_MARKET, "kind"),
            registry=r,
        )
        self.dead_letters = Counter(
            "cryptopipe_collector_dead_letters",
            "Records rejected at the edge",
            (*_MARKET, "reason"),
            registry=r,
        )
        self.reconnects = Counter(
            "cryptopipe_collector_reconnects", "Stream reconnects by cause", (*_MARKET, "cause"), registry=r
        )
        self.unhealthy = Gauge(
            "cryptopipe_collector_stream_unhealthy",
            "1 while a stream fails the same way again and again (retried slowly), else 0",
            (*_MARKET, "stream"),
            registry=r,
        )
        self.gap_fills = Counter(
            "cryptopipe_collector_gap_fills",
            "REST fills by trigger and outcome",
            (*_MARKET, "trigger", "outcome"),
            registry=r,
        )
        self.queue_depth = Gauge(
            "cryptopipe_collector_queue_depth",
            "Records buffered or in flight, not yet confirmed",
            _MARKET,
            registry=r,
        )
        self.lag = Gauge(
            "cryptopipe_collector_event_lag_seconds",
            "Wall clock minus the newest published event time",
            _MARKET,
            registry=r,
        )
        self.last_message_age = Gauge(
            "cryptopipe_collector_last_message_age_seconds",
            "Seconds since the stream's last message",
            _MARKET,
            registry=r,
        )
        self.receive_to_publish = Histogram(
            "cryptopipe_collector_receive_to_confirm_seconds",
            "From a record's arrival to Pub/Sub's confirmation of its batch",
            _MARKET,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self._server = None

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP server on a daemon thread; returns the bound port."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop the HTTP server, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests, reports); 0 when absent."""
        found = self.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0

    def total(self, name: str) -> float:
        """Sum of a metric's samples over all label values."""
        return sum(
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == name
        )
