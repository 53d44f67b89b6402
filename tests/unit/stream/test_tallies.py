"""stream.tallies: the same exposition as prometheus_client's Counter and Histogram for the same calls."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from stream.tallies import TallyCounter, TallyHistogram

BUCKETS = (0.001, 0.01, 0.1)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """Every sample line but the creation times (they differ by construction instant)."""
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created" not in line]


def test_counters_expose_what_prometheus_client_exposes():
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    for registry, counter in ((theirs, Counter), (ours, TallyCounter)):
        labelled = counter("worker_flips", "Flips, by status", ["status"], registry=registry)
        plain = counter("worker_gated", "Gated events", registry=registry)
        labelled.labels("entered").inc()
        labelled.labels("entered").inc(2)
        labelled.labels("left").inc(0)
        plain.inc(5)
    assert _exposition(ours) == _exposition(theirs)
    assert 'worker_flips_total{status="entered"} 3.0' in _exposition(ours)


def test_a_labelled_counter_shows_no_series_before_its_first_labels_call():
    registry = CollectorRegistry()
    TallyCounter("worker_flips", "Flips", ["status"], registry=registry)
    assert not [line for line in _exposition(registry) if not line.startswith("#")]


def test_counters_refuse_what_prometheus_client_refuses():
    registry = CollectorRegistry()
    labelled = TallyCounter("a", "a", ["status"], registry=registry)
    plain = TallyCounter("b", "b", registry=registry)
    with pytest.raises(ValueError):
        labelled.inc()
    with pytest.raises(ValueError):
        labelled.labels("entered", "extra")
    with pytest.raises(ValueError):
        plain.labels("x")
    with pytest.raises(ValueError):
        plain.inc(-1)


@pytest.mark.parametrize("values", [[], [0.001], [0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.2, 7.0]])
def test_the_histogram_puts_each_value_where_prometheus_client_puts_it(values):
    """A value equal to a bucket's bound is in that bucket; above the last bound, only in +Inf."""
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    for registry, histogram in ((theirs, Histogram), (ours, TallyHistogram)):
        made = histogram("worker_fold_seconds", "Fold time", buckets=BUCKETS, registry=registry)
        for value in values:
            made.observe(value)
    assert _exposition(ours) == _exposition(theirs)


def test_the_histogram_exposes_its_creation_time_as_prometheus_client_does():
    registry = CollectorRegistry()
    TallyHistogram("worker_fold_seconds", "Fold time", buckets=BUCKETS, registry=registry)
    assert "worker_fold_seconds_created " in generate_latest(registry).decode()
