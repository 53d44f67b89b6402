"""The worker's Prometheus metrics, on a registry of its own (one per app, never the global one).

Names use the domain words of design §3/§5 (`flip`, `deadline`, `dead_letter`). Served on the
worker's web port at `/metrics` (`stream.app`). Counters and the fold's histogram are
`stream.tallies` (plain additions on the per-input path); gauges are prometheus_client's.
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from stream.tallies import TallyCounter, TallyHistogram

__all__ = [
    "FOLD_SECONDS_BUCKETS",
    "LabelledChildren",
    "WorkerMetrics",
    "keep_only",
]


#: Upper bounds of `cohorts_worker_fold_seconds` (bench.output_micro times an observation with them).
FOLD_SECONDS_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_in = TallyCounter(
            "cohorts_worker_messages_in",
            "Messages consumed, by topic (cohort_person_inputs: inputs, each input of a batch counted)",
            ["topic"],
            registry=r,
        )
        self.messages_out = TallyCounter(
            "cohorts_worker_messages_out",
            "Messages produced, by topic (cohort_person_inputs: inputs, each input of a batch counted)",
            ["topic"],
            registry=r,
        )
        self.dead_letters = TallyCounter(
            "cohorts_worker_dead_letters", "Inputs sent to the dead-letter topic, by reason", ["reason"], registry=r
        )
        self.flips = TallyCounter("cohorts_worker_flips", "Membership flips emitted, by status", ["status"], registry=r)
        self.replayed_flips = TallyCounter(
            "cohorts_worker_replayed_flips", "Outbox flips re-emitted after a replay", registry=r
        )
        self.outcomes = TallyCounter(
            "cohorts_worker_fold_outcomes",
            "Fold outcomes (applied, replayed, unmatched, deleted_person, stale_person, ...)",
            ["outcome"],
            registry=r,
        )
        self.gated = TallyCounter(
            "cohorts_worker_gated_events", "Events dropped at ingest because no condition uses them", registry=r
        )
        self.fold_seconds = TallyHistogram(
            "cohorts_worker_fold_seconds",
            "Time to read, fold and write one person record",
            buckets=FOLD_SECONDS_BUCKETS,
            registry=r,
        )
        self.deadlines_scheduled = Gauge(
            "cohorts_worker_deadlines_scheduled",
            "Persons with a pending deadline, by partition",
            ["partition"],
            registry=r,
        )
        self.deadline_backlog = Gauge(
            "cohorts_worker_deadline_backlog",
            "Persons whose deadline had passed when the last tick arrived, by partition",
            ["partition"],
            registry=r,
        )
        self.recalculations = TallyCounter(
            "cohorts_worker_recalculations", "Partition recalculations, by result", ["result"], registry=r
        )
        self.recalculation_scans = TallyCounter(
            "cohorts_worker_recalculation_scans",
            "Scans of a partition's records by recalculations (one serves a run of them)",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "cohorts_worker_consumer_lag", "Messages behind the high watermark", ["topic", "partition"], registry=r
        )
        self.state_bytes = Gauge(
            "cohorts_worker_state_bytes",
            "Bytes on disk of the person table's RocksDB database, by partition held here",
            ["partition"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LabelledChildren:
    """A one-label metric's children by label value, each looked up once (`labels()` costs a few
    microseconds, paid per message otherwise)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[str, Any] = {}

    def get(self, value: str) -> Any:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._metric.labels(value)
        return child


def keep_only(gauge: Gauge, label_values: set[tuple[str, ...]]) -> None:
    """Remove every child of `gauge` whose label values are not in `label_values`: a partition
    another worker now holds must stop being reported here, or sums over workers count it twice."""
    for family in gauge.collect():
        for sample in family.samples:
            values = tuple(sample.labels.values())
            if values not in label_values:
                gauge.remove(*values)
