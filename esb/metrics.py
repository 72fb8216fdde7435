"""Prometheus metrics, one registry per engine so tests can run several engines."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# `_created` series double every counter's output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class QueueCollector(Collector):
    """Queued deliveries per destination and status, read from the journal at scrape."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "esb_deliveries_queued", "Deliveries in the journal by status", labels=["destination", "status"]
        )
        for destination, status, count in self.read():
            family.add_metric([destination, status], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("esb_route_received", "Messages accepted", ["route"], registry=r)
        self.processed = Counter("esb_route_processed", "Messages routed", ["route"], registry=r)
        self.filtered = Counter("esb_route_filtered", "Messages filtered out", ["route"], registry=r)
        self.failed = Counter("esb_route_failed", "Messages that failed", ["route"], registry=r)
        self.duplicates = Counter(
            "esb_route_duplicates",
            "Messages already taken (same inbound key): not journaled again",
            ["route"],
            registry=r,
        )
        self.clock_offset = Gauge(
            "esb_clock_offset_seconds", "This node's clock offset from its NTP servers (IHE CT)", registry=r
        )
        self.clock_unchecked = Counter(
            "esb_clock_check_failures", "Clock checks where no NTP server answered", registry=r
        )
        self.latency = Histogram(
            "esb_route_latency_seconds",
            "Time from acceptance to route completion",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.delivered = Counter("esb_delivery_ok", "Deliveries that succeeded", ["destination"], registry=r)
        self.delivery_failed = Counter(
            "esb_delivery_failed", "Delivery attempts that failed", ["destination"], registry=r
        )

    def watch_queues(self, read: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self.registry.register(QueueCollector(read))
