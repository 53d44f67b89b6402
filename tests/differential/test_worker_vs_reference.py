"""Differential, through the real broker: the worker's flips against the batch reference evaluator.

Scenario: a seeded random catalog is written to `cohort_catalog`; once every partition has reported
each cohort's calculation, persons (PostHog `clickhouse_person`, with stale and deleted versions),
events over the past three months (`clickhouse_events_json`) and static adds (`cohort_control`)
stream through a worker running on an injected clock. The last flip per (cohort, person) must
equal `reference_members` at the same now. The clock then moves past window edges, ticks carrying
the new now reach every partition, and the comparison is repeated with no new input.

Quiescence is read from the worker's own metrics: every input consumed, every re-keyed input
folded, every control message handled, and every flip it produced received.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from cohorts.reference import reference_members
from cohorts.settings import Settings
from cohorts.topics import Topics, person_key
from cohorts.wire import ControlMessage
from infra.kafka_admin import ensure_topics
from tests.differential.scenario import DAY, HOUR, MINUTE, NOW, generate
from tests.integration.worker_harness import (
    TopicReader,
    WorkerProcess,
    finished_reports,
    members,
    posthog_event,
    posthog_person,
    produce,
    send_control,
    start_worker,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 3
ADVANCES_US = (0, HOUR + 3 * MINUTE, DAY, 8 * DAY, 31 * DAY)
_SAMPLE = re.compile(r'^(cohorts_worker_messages_(?:in|out))_total\{topic="([^"]+)"\} ([0-9.e+]+)$', re.M)


def _counts(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).text
    return {(name.rsplit("_", 1)[1], topic): float(value) for name, topic, value in _SAMPLE.findall(text)}


def _wait_quiescent(
    worker: WorkerProcess, topics: Topics, produced: dict[str, int], flips: TopicReader, timeout_s: float = 45
) -> None:
    """Every counted message is through, twice in a row half a second apart."""
    deadline = time.monotonic() + timeout_s
    stable = 0
    while time.monotonic() < deadline:
        c = _counts(worker)
        flips.poll(0.2)
        done = (
            c.get(("in", topics.events), 0) == produced.get(topics.events, 0)
            and c.get(("in", topics.persons), 0) == produced.get(topics.persons, 0)
            and c.get(("in", topics.person_inputs), 0) == c.get(("out", topics.person_inputs), 0)
            and c.get(("in", topics.control), 0) == produced.get(topics.control, 0) + c.get(("out", topics.control), 0)
            and len(flips.messages) == c.get(("out", topics.membership_changed), 0)
        )
        stable = stable + 1 if done else 0
        if stable >= 2:
            return
        time.sleep(0.5)
    raise AssertionError(f"worker not quiescent: {_counts(worker)}, produced {produced}, flips {len(flips.messages)}")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_worker_flips_match_the_reference_evaluator(seed: int, kafka_bootstrap: str, tmp_path: Path):
    scenario = generate(seed, team_id=7, persons=20, events=250, cohorts=12)
    topics = Topics(prefix=f"d{uuid.uuid4().hex[:10]}_", partitions=PARTITIONS)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS, data_dir=tmp_path / "d"
    )
    worker = start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=3_600)
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    try:
        produce(kafka_bootstrap, topics.catalog, [(str(r.id).encode(), r.to_bytes()) for r in scenario.records])
        reports.wait_for(
            lambda ms: all(len(finished_reports(ms, r.id, r.version)) == PARTITIONS for r in scenario.records), 45
        )
        persons = [
            (
                p.person_id.encode(),
                posthog_person(p.team_id, p.person_id, p.version, deleted=p.is_deleted, **p.properties),
            )
            for p in scenario.persons
        ]
        events = [
            (f"{n}".encode(), posthog_event(e.team_id, e.person_id, e.event, e.timestamp_us, **e.properties))
            for n, e in enumerate(scenario.events)
        ]
        statics = [
            (
                person_key(scenario.team_id, person_id).encode(),
                ControlMessage("static_add", scenario.team_id, cohort_id, person_id).to_bytes(),
            )
            for cohort_id, ids in scenario.static_members.items()
            for person_id in sorted(ids)
        ]
        produce(kafka_bootstrap, topics.persons, persons)
        produce(kafka_bootstrap, topics.events, events)
        produce(kafka_bootstrap, topics.control, statics)
        produced = {topics.events: len(events), topics.persons: len(persons), topics.control: len(statics)}
        definitions = scenario.definitions()
        for advance in ADVANCES_US:
            now_us = NOW + advance
            if advance:
                worker.set_now(now_us)
                send_control(kafka_bootstrap, topics.control, ControlMessage(type="tick", now_us=now_us), PARTITIONS)
                produced[topics.control] += PARTITIONS
            _wait_quiescent(worker, topics, produced, flips)
            expected = reference_members(
                definitions, scenario.events, scenario.persons, scenario.static_members, now_us
            )
            got = members(flips.messages, scenario.team_id)
            diff = {
                cohort_id: (
                    expected[cohort_id] - got.get(cohort_id, set()),
                    got.get(cohort_id, set()) - expected[cohort_id],
                )
                for cohort_id in expected
                if expected[cohort_id] != got.get(cohort_id, set())
            }
            assert not diff, f"seed {seed}, now = NOW + {advance / HOUR:.2f} h: (missing, extra) per cohort {diff}"
    finally:
        flips.close()
        reports.close()
        worker.stop()
