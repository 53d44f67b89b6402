"""Several cohorts created together, through a real worker and broker: recalculations that arrive
together share a scan of each partition (stream.control_batches), and each keeps its own count,
reports and flips.

One worker (injected clock, 3 partitions) serves both tests; they run in order on one team.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from cohorts.settings import Settings
from cohorts.timestamps import parse_timestamp
from cohorts.topics import Topics
from cohorts.wire import CalculationReport, ControlMessage, MembershipChange
from infra.kafka_admin import ensure_topics
from tests.integration.worker_harness import (
    TopicReader,
    WorkerProcess,
    members,
    posthog_event,
    posthog_person,
    produce,
    start_worker,
)
from tests.unit.stream.cohort_records import group, in_cohort, performed, performed_multiple, person_prop, record

pytestmark = pytest.mark.kafka

NOW = parse_timestamp("2025-01-15 12:00:00")
DAY = 86_400_000_000
PARTITIONS = 3
TEAM = 301
PLANS = ("pro", "free", "enterprise")
COUNTRIES = ("DE", "US", "FR", "GB")


@dataclass
class Env:
    settings: Settings
    topics: Topics
    worker: WorkerProcess
    flips: TopicReader
    reports: TopicReader

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    def report_list(self, cohorts: set[int]) -> list[CalculationReport]:
        found = [CalculationReport.from_bytes(v or b"") for _, v in self.reports.messages]
        return [r for r in found if r.cohort_id in cohorts]

    def wait_finished(self, cohorts: set[int], times: int, timeout_s: float = 60.0) -> list[CalculationReport]:
        """Every cohort finished `times` times on every partition; the reports of those cohorts."""

        def done(_messages: list) -> bool:
            finished = Counter((r.cohort_id, r.partition) for r in self.report_list(cohorts) if r.finished_at)
            return all(finished[(c, p)] >= times for c in cohorts for p in range(PARTITIONS))

        try:
            self.reports.wait_for(done, timeout_s)
        except AssertionError:
            raise AssertionError(f"not finished {times}x:\n{self.worker.log()[-3000:]}") from None
        return self.report_list(cohorts)

    def scans(self) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.worker.web_port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "cohorts_worker_recalculation_scans_total":
                    return sample.value
        raise AssertionError("cohorts_worker_recalculation_scans_total is not exported")


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp_path: Path = tmp_path_factory.mktemp("worker")
    topics = Topics(prefix=f"r{uuid.uuid4().hex[:10]}_", partitions=PARTITIONS)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS, data_dir=tmp_path / "data"
    )
    worker = start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0)
    flips = TopicReader(kafka_bootstrap, topics.membership_changed)
    reports = TopicReader(kafka_bootstrap, topics.calculation_reports)
    try:
        yield Env(settings, topics, worker, flips, reports)
    finally:
        flips.close()
        reports.close()
        worker.stop()


#: Persons p0..p29: plan, country and how many pageviews they made yesterday.
PERSONS = {f"p{n}": (PLANS[n % 3], COUNTRIES[n % 4], n % 3) for n in range(30)}

#: The cohorts created together, and who belongs to each.
NEW = {
    3011: (group(person_prop("plan", "pro")), {p for p, (plan, _, _) in PERSONS.items() if plan == "pro"}),
    3012: (group(person_prop("country", "DE")), {p for p, (_, c, _) in PERSONS.items() if c == "DE"}),
    3013: (
        group(person_prop("plan", "free"), person_prop("country", "US")),
        {p for p, (plan, c, _) in PERSONS.items() if plan == "free" and c == "US"},
    ),
    # refers to a cohort created in the same flush (its recalculation comes first on every partition)
    3014: (
        group(in_cohort(3011), person_prop("plan", "enterprise"), type_="OR"),
        {p for p, (plan, _, _) in PERSONS.items() if plan in ("pro", "enterprise")},
    ),
    3015: (
        group(person_prop("plan", "pro", negation=True)),
        {p for p, (plan, _, _) in PERSONS.items() if plan != "pro"},
    ),
    3016: (
        group(performed_multiple("$pageview", "gte", 2, 7)),
        {p for p, (_, _, views) in PERSONS.items() if views >= 2},
    ),
}


def test_cohorts_created_together_each_get_their_members_count_and_one_report_pair_per_partition(env: Env):
    """Scenario: 30 persons and their pageviews are folded (cohort 3009 keeps $pageview counts,
    3010 holds everyone); then six cohorts are written to the catalog in one flush, one of them
    referring to another of them. Each gets exactly its members as flips, finished reports whose
    counts add up to its member count, and exactly one started and one finished report on every
    partition, without error."""
    held = [
        (b"3009", record(3009, group(performed("$pageview", 30)), team_id=TEAM)),
        (b"3010", record(3010, group(*(person_prop("plan", plan) for plan in PLANS), type_="OR"), team_id=TEAM)),
    ]
    produce(env.bootstrap, env.topics.catalog, held)
    env.wait_finished({3009, 3010}, 1)
    produce(
        env.bootstrap,
        env.topics.persons,
        [(p.encode(), posthog_person(TEAM, p, 1, plan=plan, country=c)) for p, (plan, c, _) in PERSONS.items()],
    )
    produce(
        env.bootstrap,
        env.topics.events,
        [
            (f"{p}-{n}".encode(), posthog_event(TEAM, p, "$pageview", NOW - DAY + n))
            for p, (_, _, views) in PERSONS.items()
            for n in range(views)
        ],
    )
    viewers = {p for p, (_, _, views) in PERSONS.items() if views}
    env.flips.wait_for(lambda ms: members(ms, TEAM) == {3009: viewers, 3010: set(PERSONS)})
    assert NEW[3016][1] and NEW[3016][1] != viewers  # 3016 reads the counts, not just "any pageview"

    produce(
        env.bootstrap,
        env.topics.catalog,
        [(str(c).encode(), record(c, filters, team_id=TEAM)) for c, (filters, _) in NEW.items()],
    )
    reports = env.wait_finished(set(NEW), 1)

    def done(ms: list) -> bool:
        got = members(ms, TEAM)
        return all(got.get(c, set()) == expected for c, (_, expected) in NEW.items())

    try:
        env.flips.wait_for(done, 30)
    except AssertionError:
        got = members(env.flips.messages, TEAM)
        raise AssertionError({c: (got.get(c), expected) for c, (_, expected) in NEW.items()}) from None
    started = Counter((r.cohort_id, r.partition) for r in reports if r.finished_at is None)
    finished = Counter((r.cohort_id, r.partition) for r in reports if r.finished_at is not None)
    every = {(c, p): 1 for c in NEW for p in range(PARTITIONS)}
    assert dict(started) == every and dict(finished) == every
    for cohort_id, (_, expected) in NEW.items():
        done_reports = [r for r in reports if r.cohort_id == cohort_id and r.finished_at]
        assert sum(r.count or 0 for r in done_reports) == len(expected), cohort_id
        assert all(r.error is None and r.version == 1 and r.team_id == TEAM for r in done_reports)
        assert all(r.started_at <= r.finished_at for r in done_reports)


def test_recalculations_arriving_together_share_a_scan_and_a_replay_changes_nothing(env: Env):
    """Scenario: with the worker paused (SIGSTOP), `recalculate` for the six cohorts above is sent to
    every partition (what a replay after a crash delivers); then it resumes. The worker takes them
    as runs: at most two scans per partition (one, unless a fetch already under way when it paused
    returns only the first of them), where one per message would be 18. Each cohort gets a second
    started/finished pair per partition with the same counts, and no flip is sent."""
    first = env.wait_finished(set(NEW), 1)
    counts = {(r.cohort_id, r.partition): r.count for r in first if r.finished_at}
    flips_before = sum(1 for _, v in env.flips.messages if MembershipChange.from_bytes(v or b"").team_id == TEAM)
    scans_before = env.scans()
    producer = Producer({"bootstrap.servers": env.bootstrap})
    os.kill(env.worker.process.pid, signal.SIGSTOP)
    try:  # a short pause: the group's session timeout is 6 s here
        for cohort_id in NEW:
            message = ControlMessage(type="recalculate", team_id=TEAM, cohort_id=cohort_id, version=1)
            for partition in range(PARTITIONS):
                producer.produce(env.topics.control, key=b"recalculate", value=message.to_bytes(), partition=partition)
        assert producer.flush(5) == 0
    finally:
        os.kill(env.worker.process.pid, signal.SIGCONT)
    reports = env.wait_finished(set(NEW), 2)
    second: dict[tuple[int, int], list[CalculationReport]] = {}
    for r in reports:
        if r.finished_at:
            second.setdefault((r.cohort_id, r.partition), []).append(r)
    assert {key: [r.count for r in found] for key, found in second.items()} == {
        key: [count, count] for key, count in counts.items()
    }
    started = Counter((r.cohort_id, r.partition) for r in reports if r.finished_at is None)
    assert set(started.values()) == {2}
    scans = env.scans() - scans_before
    assert 1 * PARTITIONS <= scans <= 2 * PARTITIONS, scans
    time.sleep(2)
    env.flips.poll(1)
    flips_after = sum(1 for _, v in env.flips.messages if MembershipChange.from_bytes(v or b"").team_id == TEAM)
    assert flips_after == flips_before
