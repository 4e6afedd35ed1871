"""Per-request counters and latency histograms kept in plain Python, exported at scrape time.

prometheus_client's metric children take a lock and make several calls per `inc`/`observe`;
four of those per `tools/call` (requests, request latency, calls, call latency) were a visible
share of the router's own time. These collectors keep one list per label set on the event loop
thread (one bisect and two additions per observation) and build the same families, names and
labels as prometheus_client's Counter and Histogram when `/metrics` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class TallyCounter(Collector):
    """A counter family (`<name>_total`) whose children are label tuples."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self._values.items()):
            family.add_metric(labels, value)
        yield family


class TallyHistogram(Collector):
    """A histogram family with fixed buckets; per label tuple: a count per bucket, then the sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self._bounds = sorted(buckets)
        self._le = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._states: dict[tuple[str, ...], list[float]] = {}
        registry.register(self)

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        state = self._states.get(labels)
        if state is None:
            state = self._states[labels] = [0.0] * (len(self._bounds) + 2)
        state[bisect_left(self._bounds, seconds)] += 1  # the first bucket whose bound >= seconds
        state[-1] += seconds

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, state in list(self._states.items()):
            cumulative, buckets = 0.0, []
            for le, count in zip(self._le, state[:-1], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(labels), buckets, state[-1])
        yield family
