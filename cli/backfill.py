"""`cohorts backfill` / `cohorts replay`: re-read `clickhouse_events_json` for state the worker lacks.

The worker keeps event state only for matchers some live cohort needs, so a cohort on a new event
or filter starts from empty history (design-engine §7). This fills it in, in four steps:

1. Read the catalog as the worker does and pick the matchers: those of one cohort and of the
   cohorts it refers to (`backfill`), or of every live cohort of a project (`replay`).
2. Wait until the worker group has calculated the current version of each of those cohorts on
   every partition (`cohort_calculation_reports`): from then on every fold tracks the matchers,
   so nothing sent below is dropped as unknown.
3. Read the events topic from a time or an offset up to its end offsets as they were when the read
   began, decode each event exactly as ingest does, and send each one a picked matcher's filters
   match to `cohort_person_inputs` as a `BackfillInput` keyed `team:person`, with a progress bar.
4. Optionally wait until the worker group has consumed everything sent.

The fold counts an event only where live ingest did not count it, and at most once
(`stream.fold.apply_backfill`), so a second run, or a range live ingest already covered, changes
nothing. Never: commit the worker group's offsets, or write to an input topic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from cli.kafka_read import Range, list_offsets, read_ranges, settled
from cli.producer import json_producer
from cohorts.model import CohortDefinition, referenced_cohort_ids
from cohorts.properties import match_event
from cohorts.requirements import MatcherRequirement, matchers_by_event, state_requirements
from cohorts.settings import Settings
from cohorts.topics import Topics, person_key
from cohorts.wire import BackfillInput, CalculationReport, WireError
from infra.kafka_admin import admin_client
from stream.catalog import Catalog
from stream.posthog import Rejected, decode_event

__all__ = ["BackfillError", "BackfillRequest", "BackfillSummary", "Progress", "run_backfill"]


class BackfillError(RuntimeError):
    """Nothing can be backfilled as asked; the message says why in one line."""


class Progress(Protocol):
    """Where the read reports how far it got (the CLI draws a bar with an ETA)."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


@dataclass(frozen=True)
class BackfillRequest:
    """One cohort (`cohort_id`) or every live cohort of a project (`team_id`), from a time or offset.

    Neither `from_time_us` nor `from_offset`: from the oldest event the topic still holds.
    """

    cohort_id: int | None = None
    team_id: int | None = None
    from_time_us: int | None = None
    from_offset: int | None = None
    wait_calculated_s: float = 60.0
    #: Seconds to wait for the worker to consume what was sent; None: do not wait.
    wait_folded_s: float | None = 300.0


@dataclass
class BackfillSummary:
    team_id: int
    cohorts: list[int]
    matchers: int
    #: Events partition -> the [start, end) offsets read.
    ranges: dict[int, Range] = field(default_factory=dict)
    read: int = 0
    invalid: int = 0
    other_team: int = 0
    sent: int = 0
    seconds: float = 0.0
    #: Whether the worker consumed everything sent (None: not waited for).
    folded: bool | None = None

    def line(self) -> str:
        if not self.matchers:
            return (
                f"cohorts {self.cohorts} of team {self.team_id} have no behavioural condition: nothing to backfill"
                " (person-property and cohort conditions are always exact)"
            )
        spans = ", ".join(f"{p}:[{start},{end})" for p, (start, end) in sorted(self.ranges.items()))
        folded = {None: "", True: "; the worker has folded them", False: "; the worker has NOT folded them yet"}
        return (
            f"backfill of team {self.team_id}, cohorts {self.cohorts} ({self.matchers} matchers): read {self.read:,}"
            f" events ({spans}), sent {self.sent:,}, skipped {self.invalid:,} invalid and {self.other_team:,}"
            f" of other teams, in {self.seconds:.1f} s{folded[self.folded]}"
        )


def run_backfill(
    settings: Settings, request: BackfillRequest, now_us: int, progress: Progress | None = None
) -> BackfillSummary:
    topics = Topics(prefix=settings.topic_prefix, partitions=settings.partitions)
    catalog = _read_catalog(settings, topics)
    team_id, cohorts = _pick_cohorts(catalog, request)
    requirements = state_requirements(cohorts)
    summary = BackfillSummary(team_id, sorted(c.id for c in cohorts), len(requirements))
    if not requirements:
        return summary
    _wait_calculated(settings, topics, cohorts, request.wait_calculated_s)
    started = time.monotonic()
    summary.ranges = _event_ranges(settings, topics, request)
    sent_to = _send(settings, topics, team_id, requirements, summary, now_us, progress)
    summary.seconds = time.monotonic() - started
    if request.wait_folded_s is not None:
        summary.folded = _wait_folded(settings, topics, sent_to, request.wait_folded_s)
    return summary


def _read_catalog(settings: Settings, topics: Topics) -> Catalog:
    admin = admin_client(settings.bootstrap)
    tp = [TopicPartition(topics.catalog, 0)]
    low = list_offsets(admin, tp, OffsetSpec.earliest(), 10.0)
    high = list_offsets(admin, tp, OffsetSpec.latest(), 10.0)
    catalog = Catalog()
    ranges = {key: (low[key], high[key]) for key in high}
    for message in read_ranges(settings, ranges, 60.0, name="backfill"):
        catalog.apply(message.key(), message.value(), message.offset())
    return catalog


def _pick_cohorts(catalog: Catalog, request: BackfillRequest) -> tuple[int, list[CohortDefinition]]:
    """The team and its live dynamic cohorts whose matchers the request covers."""
    if request.cohort_id is not None:
        root = catalog.cohort(request.cohort_id)
        if root is None or root.deleted:
            raise BackfillError(f"cohort {request.cohort_id} is not in the catalog (or is deleted)")
        if root.is_static:
            raise BackfillError(f"cohort {request.cohort_id} is static: its members are not computed from events")
        if request.team_id is not None and request.team_id != root.team_id:
            raise BackfillError(f"cohort {request.cohort_id} belongs to project {root.team_id}, not {request.team_id}")
        return root.team_id, _with_references(catalog, root)
    if request.team_id is None:
        raise BackfillError("name a cohort or a project")
    team = catalog.team(request.team_id)
    cohorts = [d for d in team.ordered if not d.is_static and not d.deleted]
    if not cohorts:
        raise BackfillError(f"project {request.team_id} has no live dynamic cohort")
    return request.team_id, cohorts


def _with_references(catalog: Catalog, root: CohortDefinition) -> list[CohortDefinition]:
    """`root` and every live dynamic cohort it refers to, directly or not: their matchers decide it too."""
    found = {root.id: root}
    pending = list(referenced_cohort_ids(root.root))
    while pending:
        definition = catalog.cohort(pending.pop())
        if definition is None or definition.id in found or definition.deleted:
            continue
        found[definition.id] = definition
        pending.extend(referenced_cohort_ids(definition.root))
    return [d for d in found.values() if not d.is_static]


def _wait_calculated(settings: Settings, topics: Topics, cohorts: Iterable[CohortDefinition], timeout_s: float) -> None:
    """Until every partition reported each cohort's current version finished (the folds track it)."""
    wanted = {(c.id, c.version) for c in cohorts}
    finished: dict[tuple[int, int], set[int]] = {}
    admin = admin_client(settings.bootstrap)
    tps = [TopicPartition(topics.calculation_reports, p) for p in range(topics.partitions)]
    position = list_offsets(admin, tps, OffsetSpec.earliest(), 10.0)
    deadline = time.monotonic() + timeout_s
    while True:
        high = list_offsets(admin, tps, OffsetSpec.latest(), 10.0)
        ranges = {key: (position[key], high[key]) for key in high if position[key] < high[key]}
        for message in read_ranges(settings, ranges, 60.0, name="backfill"):
            try:
                report = CalculationReport.from_bytes(message.value() or b"")
            except WireError:
                continue
            key = (report.cohort_id, report.version)
            if key not in wanted or report.finished_at is None:
                continue
            if report.error is not None:
                raise BackfillError(
                    f"cohort {report.cohort_id} (version {report.version}) could not be calculated: {report.error}"
                )
            finished.setdefault(key, set()).add(report.partition)
        position.update(high)
        missing = sorted(c for c, v in wanted if len(finished.get((c, v), ())) < topics.partitions)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BackfillError(
                f"the worker has not finished calculating cohorts {missing} within {timeout_s:g} s;"
                " is it running? (cohorts status)"
            )
        time.sleep(0.5)


def _event_ranges(settings: Settings, topics: Topics, request: BackfillRequest) -> dict[int, Range]:
    """[start, end) per events partition: from the time or offset asked for, to the end as of now."""
    admin = admin_client(settings.bootstrap)
    metadata = admin.list_topics(topics.events, timeout=10.0).topics[topics.events]
    if metadata.error is not None:
        raise BackfillError(f"topic {topics.events}: {metadata.error.str()}")
    tps = [TopicPartition(topics.events, p) for p in sorted(metadata.partitions)]
    low = list_offsets(admin, tps, OffsetSpec.earliest(), 10.0)
    high = list_offsets(admin, tps, OffsetSpec.latest(), 10.0)
    if request.from_time_us is not None:
        at = list_offsets(admin, tps, OffsetSpec.for_timestamp(request.from_time_us // 1000), 10.0)
        start = {key: high[key] if offset < 0 else offset for key, offset in at.items()}
    elif request.from_offset is not None:
        start = {key: min(max(request.from_offset, low[key]), high[key]) for key in high}
    else:
        start = low
    return {partition: (start[(topic, partition)], high[(topic, partition)]) for topic, partition in high}


def _send(
    settings: Settings,
    topics: Topics,
    team_id: int,
    requirements: dict[str, MatcherRequirement],
    summary: BackfillSummary,
    now_us: int,
    progress: Progress | None,
) -> dict[int, int]:
    """Read the ranges and send the matching events; returns the highest offset sent per inputs partition."""
    by_event = matchers_by_event(requirements)
    sent_to: dict[int, int] = {}
    failures: list[str] = []

    def delivered(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))
            return
        partition, offset = message.partition(), message.offset()  # type: ignore[attr-defined]
        sent_to[partition] = max(offset, sent_to.get(partition, -1))

    producer = json_producer(settings.bootstrap)
    ranges = {(topics.events, p): span for p, span in summary.ranges.items()}
    if progress is not None:
        progress.start(sum(end - start for start, end in ranges.values()))
    unreported = 0
    for message in read_ranges(settings, ranges, None, name="backfill"):
        summary.read += 1
        unreported += 1
        if progress is not None and unreported >= 1000:
            progress.advance(unreported)
            unreported = 0
        position = (message.topic(), message.partition(), message.offset())
        try:
            item = decode_event(message.value(), position, now_us)
        except Rejected:
            summary.invalid += 1
            continue
        if item.team_id != team_id:
            summary.other_team += 1
            continue
        candidates = by_event.get(item.event, ())
        matched = [r.matcher_hash for r in candidates if match_event(r.filters, item.properties, item.timestamp_us)]
        if not matched:
            continue
        read = {f.key for r in candidates for f in r.filters}  # the fold reads nothing else
        properties = {name: value for name, value in item.properties.items() if name in read}
        value = BackfillInput(
            item.team_id, item.person_id, item.event, item.timestamp_us, properties, matched, position
        ).to_bytes()
        key = person_key(item.team_id, item.person_id).encode()
        while True:
            try:
                producer.produce(topics.person_inputs, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        summary.sent += 1
    if progress is not None and unreported:
        progress.advance(unreported)
    if producer.flush(60.0):
        raise BackfillError("could not deliver every backfilled event within 60 s")
    if failures:
        raise BackfillError(f"{len(failures)} backfilled events were not delivered: {failures[0]}")
    return sent_to


def _wait_folded(settings: Settings, topics: Topics, sent_to: dict[int, int], timeout_s: float) -> bool:
    """Whether the person fold committed past everything sent within `timeout_s`."""
    if not sent_to:
        return True
    admin = admin_client(settings.bootstrap)
    group = topics.fold_group
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topics.person_inputs, p) for p in sent_to])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            answer = settled(lambda: admin.list_consumer_group_offsets([request])[group].result(timeout=10.0), 10.0)
        except KafkaException:
            answer = None
        if answer is not None:
            committed = {tp.partition: tp.offset for tp in answer.topic_partitions}
            if all(committed.get(p, -1) > offset for p, offset in sent_to.items()):
                return True
        time.sleep(0.5)
    return False
