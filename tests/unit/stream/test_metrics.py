"""Worker metrics helpers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from stream.metrics import keep_only


def test_keep_only_drops_the_children_of_partitions_no_longer_held():
    """Scenario: a rebalance moved partition 1 away; its last lag must not stay on this worker's
    /metrics, where a sum over workers would count it twice."""
    gauge = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    gauge.labels("events", "1").set(5)
    gauge.labels("events", "2").set(7)
    gauge.labels("control", "1").set(1)
    keep_only(gauge, {("events", "2")})
    assert [(s.labels, s.value) for f in gauge.collect() for s in f.samples] == [
        ({"topic": "events", "partition": "2"}, 7.0)
    ]
