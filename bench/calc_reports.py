"""Reading `cohort_calculation_reports`: when has every partition finished a cohort's version?

Owns `FinishedReports`, a consumer of the reports topic from its beginning that collects, per
(cohort id, version, partition), the first report with `finished_at` set and its CreateTime, and
`wait_finished`, which blocks until a set of cohort versions is finished on every partition.

Benchmarks use it to know when the worker is ready (its cohorts calculated) and to time a
recalculation to its last partition's `finished` report, read from the broker only.
Never: commits offsets or reads anything but the reports topic.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from cohorts.wire import CalculationReport

__all__ = ["Finished", "FinishedReports", "last_finished_ms"]


@dataclass(frozen=True, slots=True)
class Finished:
    """One partition's `finished` report of one cohort version, and its CreateTime (ms)."""

    report: CalculationReport
    create_ms: int


class FinishedReports:
    """Collects finished reports of `topic` (every partition, from the start) as they come."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-reports-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        self._consumer.assign([TopicPartition(topic, p, 0) for p in sorted(metadata.topics[topic].partitions)])
        self.finished: dict[tuple[int, int, int], Finished] = {}
        self.errors: list[CalculationReport] = []

    def poll(self, timeout_s: float) -> None:
        """Read what arrived within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.05)
            if message is None or message.error() is not None or message.value() is None:
                continue
            report = CalculationReport.from_bytes(message.value())
            if report.error:
                self.errors.append(report)
            if report.finished_at is not None:
                key = (report.cohort_id, report.version, report.partition)
                self.finished.setdefault(key, Finished(report, message.timestamp()[1]))

    def wait_finished(self, versions: list[tuple[int, int]], partitions: int, timeout_s: float) -> list[Finished]:
        """Block until each (cohort id, version) is finished on every partition; TimeoutError after
        `timeout_s`. Returns those reports."""
        wanted = [(cohort, version, p) for cohort, version in versions for p in range(partitions)]
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [key for key in wanted if key not in self.finished]
            if not missing:
                return [self.finished[key] for key in wanted]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} of {len(wanted)} partition reports not finished: {missing[:5]}")
            self.poll(0.5)

    def close(self) -> None:
        self._consumer.close()


def last_finished_ms(reports: list[Finished]) -> int:
    """CreateTime of the last of them: when the recalculation was complete everywhere."""
    return max(found.create_ms for found in reports)
