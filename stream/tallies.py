"""Counters and a histogram that the worker's per-input path updates with plain additions.

prometheus_client's `Counter.inc` takes a lock and checks its arguments (1.1 µs here) and
`Histogram.observe` does that per bucket and for the sum (2.4 µs); these take 0.13 and 0.35 µs
(`bench.output_micro`). The person fold made four to six such calls per input, 4% of its time in
a profile of benchmark 1 (docs/benchmarks.md). These keep a float per series and hand Prometheus
the same samples (`_total` and `_created`; `_bucket`, `_count`, `_sum` and `_created`) from a
collector, at scrape time, so nothing lags.

Updated from the worker's event loop only (the agents, the fold task and the `/metrics` view all
run there); they are not safe for threads that would update one series concurrently.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["Tally", "TallyCounter", "TallyHistogram"]


class Tally:
    """One series of a counter."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class TallyCounter:
    """prometheus_client's `Counter`, for the calls the worker makes: `inc`, `labels(*values).inc`."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (), *, registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], Tally] = {} if labelnames else {(): Tally()}
        registry.register(self)

    def labels(self, *values: object) -> Tally:
        if len(values) != len(self._labelnames) or not values:
            raise ValueError(f"{self._name} takes the labels {self._labelnames}, got {values}")
        key = tuple(str(value) for value in values)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Tally()
        return series

    def inc(self, amount: float = 1) -> None:
        if self._labelnames:
            raise ValueError(f"{self._name} has labels {self._labelnames}: use labels(...).inc()")
        self._series[()].inc(amount)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for key, series in list(self._series.items()):
            family.add_metric(key, series.value, created=series.created)
        yield family


class TallyHistogram:
    """prometheus_client's unlabelled `Histogram`, for `observe` (a value lands in the first bucket
    whose upper bound is at or above it, as there)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], *, registry: CollectorRegistry) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self._name = name
        self._documentation = documentation
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, self._counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family = HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=self._sum)
        family.samples.append(Sample(f"{self._name}_created", {}, self._created))
        yield family
