"""Counters and histograms on a per-app ``prometheus_client`` registry (never the global one).

The app owns one :class:`Metrics`; ``/metrics`` renders it together with gauges read at scrape
time (e.g. the outbox backlog, which lives in the database so every replica reports the truth).
Metrics are created on first use with the label names of that call; names and labels are the ones
docs/operations.md and the README list. The ``*_created`` series prometheus_client adds are left out.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

Labels = tuple[tuple[str, str], ...]
Gauges = dict[str, tuple[str, dict[Labels, float]]]  # name → (help, {labels: value})

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_HELP = {
    "siyu_callbacks_total": "Callbacks received, by platform, event kind and outcome.",
    "siyu_dedup_hits_total": "Callbacks whose receipt already existed (WeChat retries, duplicates).",
    "siyu_handler_seconds": "Time to run an event's handlers and commit, by event kind.",
    "siyu_handler_runs_total": "Handler transactions, by event kind and outcome.",
    "siyu_handler_batches_total": "Handler transactions committed (one or more receipts each).",
    "siyu_handler_batched_receipts_total": "Receipts run in those transactions (÷ batches = mean batch size).",
    "siyu_outbox_calls_total": "Platform calls made from the outbox, by api and outcome.",
    "siyu_receipts_failed_total": "Receipts that ended failed after their delivery was accepted, by event kind.",
    "siyu_passive_replies_total": "Official Account passive replies, by outcome (inline, late).",
}


class _Scrape:
    """One scrape: the registry without ``*_created`` samples, then the scrape-time gauges."""

    def __init__(self, registry: CollectorRegistry, gauges: Gauges) -> None:
        self._registry, self._gauges = registry, gauges

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric
        for name, (help_text, series) in sorted(self._gauges.items()):
            gauge = GaugeMetricFamily(name, help_text)
            for labels, value in sorted(series.items()):
                gauge.add_sample(name, dict(labels), value)
            yield gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        counter = self._counters.get(name)
        if counter is None:
            if not name.endswith("_total"):
                raise ValueError(f"counter {name!r}: Prometheus counter names end in _total")
            counter = Counter(name, _HELP.get(name, name), sorted(labels), registry=self.registry)
            self._counters[name] = counter
        (counter.labels(**labels) if labels else counter).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        hist = self._histograms.get(name)
        if hist is None:
            hist = Histogram(name, _HELP.get(name, name), sorted(labels), registry=self.registry, buckets=_BUCKETS)
            self._histograms[name] = hist
        (hist.labels(**labels) if labels else hist).observe(value)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def total(self, name: str) -> float:
        return sum(s.value for m in self.registry.collect() for s in m.samples if s.name == name)

    def render(self, gauges: Gauges | None = None) -> str:
        """Prometheus text format 0.0.4 (``generate_latest``)."""
        return generate_latest(_Scrape(self.registry, gauges or {})).decode()
