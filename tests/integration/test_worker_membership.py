"""The worker through the real broker: catalog records in, PostHog events and persons in, flips out.

One worker per module (started as a subprocess with an injected clock) serves every test here;
tests isolate themselves by team id. Time-moving tests start their own worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from cohorts.settings import Settings
from cohorts.timestamps import parse_timestamp
from cohorts.topics import Topics, partition_for, person_key
from cohorts.wire import ControlMessage, DeadLetter
from infra.kafka_admin import ensure_topics
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
    statuses,
)
from tests.unit.stream.cohort_records import (
    group,
    in_cohort,
    performed,
    performed_multiple,
    person_prop,
    record,
    static,
)

pytestmark = pytest.mark.kafka

NOW = parse_timestamp("2025-01-15 12:00:00")
DAY = 86_400_000_000
HOUR = 3_600_000_000
PARTITIONS = 3


@dataclass
class Env:
    settings: Settings
    topics: Topics
    worker: WorkerProcess
    flips: TopicReader
    reports: TopicReader
    dead: TopicReader

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap

    def write_cohort(self, cohort_id: int, value: bytes | None) -> None:
        produce(self.bootstrap, self.topics.catalog, [(str(cohort_id).encode(), value)])

    def wait_calculated(self, cohort_id: int, version: int, timeout_s: float = 30.0) -> dict:
        messages = self.reports.wait_for(
            lambda ms: len(finished_reports(ms, cohort_id, version)) == PARTITIONS, timeout_s
        )
        return finished_reports(messages, cohort_id, version)

    def events(self, *events: dict) -> None:
        produce(self.bootstrap, self.topics.events, [(e["uuid"].encode(), e) for e in events])

    def persons(self, *persons: dict) -> None:
        produce(self.bootstrap, self.topics.persons, [(p["id"].encode(), p) for p in persons])

    def wait_members(self, team_id: int, expected: dict[int, set[str]], timeout_s: float = 30.0) -> None:
        def done(ms: list) -> bool:
            got = members(ms, team_id)
            return all(got.get(cohort, set()) == persons for cohort, persons in expected.items())

        try:
            self.flips.wait_for(done, timeout_s)
        except AssertionError:
            raise AssertionError(
                f"expected {expected}, got {members(self.flips.messages, team_id)}\n{self.worker.log()[-3000:]}"
            ) from None


def _start_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Env]:
    topics = Topics(prefix=f"w{uuid.uuid4().hex[:10]}_", partitions=PARTITIONS)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        partitions=PARTITIONS,
        data_dir=tmp_path / "data",
    )
    worker = start_worker(settings, tmp_path, now_us=NOW, tick_interval_s=1.0)
    readers = [
        TopicReader(kafka_bootstrap, name)
        for name in (topics.membership_changed, topics.calculation_reports, topics.dead_letters)
    ]
    try:
        yield Env(settings, topics, worker, *readers)
    finally:
        for reader in readers:
            reader.close()
        worker.stop()


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from _start_env(kafka_bootstrap, tmp_path_factory.mktemp("worker"))


@pytest.fixture
def own_env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Env]:
    yield from _start_env(kafka_bootstrap, tmp_path)


def test_events_and_person_updates_flip_memberships(env: Env):
    """Scenario: team 101 has "pageview in the last 7 days" (v2) and "plan = pro"; PostHog-format
    events and person records arrive; flips name the cohort, person, status and version."""
    env.write_cohort(1011, record(1011, group(performed("$pageview", 7)), team_id=101, version=2))
    env.write_cohort(1012, record(1012, group(person_prop("plan", "pro")), team_id=101))
    env.wait_calculated(1011, 2)
    env.wait_calculated(1012, 1)
    env.events(
        posthog_event(101, "alice", "$pageview", NOW - DAY, path="/"),
        posthog_event(101, "bob", "$pageview", NOW - 20 * DAY),
    )
    env.persons(posthog_person(101, "carol", 1, plan="pro"), posthog_person(101, "bob", 1, plan="free"))
    env.wait_members(101, {1011: {"alice"}, 1012: {"carol"}})
    env.persons(posthog_person(101, "carol", 2, plan="free"), posthog_person(101, "bob", 2, plan="pro"))
    env.wait_members(101, {1011: {"alice"}, 1012: {"bob"}})
    last = statuses(env.flips.messages, 101)
    assert last[(1012, "carol")] == "left"
    assert ("bob", 1011) not in {(p, c) for c, p in last}
    from cohorts.wire import MembershipChange

    alice = [
        MembershipChange.from_bytes(v)
        for k, v in env.flips.messages
        if k == b"alice" and MembershipChange.from_bytes(v).team_id == 101
    ]
    assert [(c.cohort_id, c.status, c.version) for c in alice] == [(1011, "entered", 2)]
    assert alice[0].last_updated == "2025-01-15T12:00:00.000000Z"


def test_a_cohort_created_after_its_events_gets_members_from_held_state(env: Env):
    """Scenario: cohort 1021 (pageview in 30 days) makes the worker keep $pageview buckets; events
    arrive; then cohort 1022 (>= 2 pageviews in 7 days) and 1023 (plan = pro) are created. They are
    computed from held state: flips for their members and one finished report per partition whose
    counts add up to the member count."""
    env.write_cohort(1021, record(1021, group(performed("$pageview", 30)), team_id=102))
    env.wait_calculated(1021, 1)
    env.events(
        posthog_event(102, "p1", "$pageview", NOW - 2 * DAY),
        posthog_event(102, "p1", "$pageview", NOW - DAY),
        posthog_event(102, "p2", "$pageview", NOW - DAY),
        posthog_event(102, "p3", "$pageview", NOW - 20 * DAY),
    )
    env.persons(posthog_person(102, "p4", 1, plan="pro"))
    env.wait_members(102, {1021: {"p1", "p2", "p3"}})
    env.write_cohort(1022, record(1022, group(performed_multiple("$pageview", "gte", 2, 7)), team_id=102))
    env.write_cohort(1023, record(1023, group(person_prop("plan", "pro")), team_id=102, version=5))
    reports_1022 = env.wait_calculated(1022, 1)
    reports_1023 = env.wait_calculated(1023, 5)
    env.wait_members(102, {1021: {"p1", "p2", "p3"}, 1022: {"p1"}, 1023: {"p4"}})
    assert sum(r.count for r in reports_1022.values()) == 1
    assert sum(r.count for r in reports_1023.values()) == 1
    assert all(r.error is None and r.started_at <= r.finished_at for r in reports_1022.values())
    assert sorted(reports_1022) == list(range(PARTITIONS))


def test_a_new_version_and_a_deletion_recompute_members(env: Env):
    """Scenario: "plan = pro" becomes "plan = free" (v2): members swap; then the cohort is deleted
    (tombstone): everyone left."""
    env.write_cohort(1031, record(1031, group(person_prop("plan", "pro")), team_id=103))
    env.wait_calculated(1031, 1)
    env.persons(posthog_person(103, "a", 1, plan="pro"), posthog_person(103, "b", 1, plan="free"))
    env.wait_members(103, {1031: {"a"}})
    env.write_cohort(1031, record(1031, group(person_prop("plan", "free")), team_id=103, version=2))
    env.wait_calculated(1031, 2)
    env.wait_members(103, {1031: {"b"}})
    env.write_cohort(1031, None)
    env.wait_members(103, {1031: set()})
    assert statuses(env.flips.messages, 103)[(1031, "b")] == "left"


def test_static_membership_and_cohort_in_cohort(env: Env):
    """Scenario: static cohort 1041 and dynamic 1042 = "in 1041 AND NOT plan = free"; a static add
    through the control topic (keyed team:person) adds the person to both; a remove takes them out."""
    env.write_cohort(1041, static(1041, team_id=104))
    env.write_cohort(
        1042, record(1042, group(in_cohort(1041), person_prop("plan", "free", negation=True)), team_id=104)
    )
    env.wait_calculated(1042, 1)
    env.persons(posthog_person(104, "s1", 1, plan="pro"), posthog_person(104, "s2", 1, plan="free"))
    key = person_key(104, "s1").encode()
    add = ControlMessage(type="static_add", team_id=104, cohort_id=1041, person_id="s1")
    produce(env.bootstrap, env.topics.control, [(key, add.to_bytes())])
    add2 = ControlMessage(type="static_add", team_id=104, cohort_id=1041, person_id="s2")
    produce(env.bootstrap, env.topics.control, [(person_key(104, "s2").encode(), add2.to_bytes())])
    env.wait_members(104, {1041: {"s1", "s2"}, 1042: {"s1"}})
    remove = ControlMessage(type="static_remove", team_id=104, cohort_id=1041, person_id="s1")
    produce(env.bootstrap, env.topics.control, [(key, remove.to_bytes())])
    env.wait_members(104, {1041: {"s2"}, 1042: set()})


def test_deleted_persons_leave_and_negated_roots_hold_for_known_persons(env: Env):
    """Scenario: "NOT pageview in 7 days": a person known only through an unrelated event is a member;
    a person with a recent pageview is not; deleting the member makes them leave."""
    env.write_cohort(1051, record(1051, group(performed("$pageview", 7, negation=True)), team_id=105))
    env.wait_calculated(1051, 1)
    env.events(
        posthog_event(105, "quiet", "$autocapture", NOW - HOUR),
        posthog_event(105, "busy", "$pageview", NOW - HOUR),
    )
    env.wait_members(105, {1051: {"quiet"}})
    env.persons(posthog_person(105, "quiet", 3, deleted=True))
    env.wait_members(105, {1051: set()})
    env.events(posthog_event(105, "quiet", "$autocapture", NOW))
    env.persons(posthog_person(105, "other", 1))
    env.wait_members(105, {1051: {"other"}})
    assert statuses(env.flips.messages, 105)[(1051, "quiet")] == "left"


def test_malformed_inputs_are_dead_lettered_and_the_worker_keeps_going(env: Env):
    good = posthog_event(106, "ok", "$pageview", NOW)
    future = posthog_event(106, "f", "$pageview", NOW + 2 * DAY)
    no_person = posthog_event(106, "x", "$pageview", NOW)
    del no_person["person_id"]
    bad_team = posthog_event(106, "x", "$pageview", NOW) | {"team_id": "106"}
    bad_time = posthog_event(106, "x", "$pageview", NOW) | {"timestamp": "yesterday"}
    iso_time = posthog_event(106, "iso", "$pageview", NOW) | {"timestamp": "2025-01-15T11:00:00Z"}
    object_props = posthog_event(106, "obj", "$pageview", NOW) | {"properties": {"path": "/"}}
    produce(
        env.bootstrap,
        env.topics.events,
        [
            (b"k1", b"not json at all"),
            (b"k2", b"\xff\xfe{}"),
            (b"k3", b"[1, 2]"),
            (b"k4", no_person),
            (b"k5", bad_team),
            (b"k6", bad_time),
            (b"k7", future),
        ],
    )
    produce(env.bootstrap, env.topics.persons, [(b"k8", {"id": "p", "team_id": 106, "properties": "{}"})])
    stray = ControlMessage(type="static_add", team_id=106, cohort_id=1, person_id="z")
    wrong = (partition_for(person_key(106, "z").encode(), PARTITIONS) + 1) % PARTITIONS
    produce(env.bootstrap, env.topics.control, [(b"k9", stray.to_bytes())], partition=wrong)
    produce(env.bootstrap, env.topics.control, [(b"k10", b'{"type": "explode"}')], partition=0)
    env.write_cohort(1061, record(1061, group(performed("$pageview", 7)), team_id=106))
    env.wait_calculated(1061, 1)
    env.events(good, iso_time, object_props)
    env.wait_members(106, {1061: {"ok", "iso", "obj"}})
    expected = {
        b"k1": "not JSON",
        b"k2": "invalid UTF-8",
        b"k3": "not a JSON object",
        b"k4": "missing person_id",
        b"k5": "invalid team_id",
        b"k6": "invalid timestamp",
        b"k7": "timestamp in the future",
        b"k8": "missing version",
        b"k9": "invalid control message",
        b"k10": "invalid control message",
    }
    messages = env.dead.wait_for(lambda ms: {k for k, _ in ms} >= set(expected), 30)
    letters = {k: DeadLetter.from_bytes(v) for k, v in messages if k in expected}
    assert {k: letter.reason for k, letter in letters.items()} == expected
    assert letters[b"k1"].original == b"not json at all"
    assert letters[b"k1"].source_topic == env.topics.events
    assert letters[b"k8"].source_topic == env.topics.persons
    metrics = _metrics(env.worker)
    assert 'cohorts_worker_dead_letters_total{reason="not JSON"} 1.0' in metrics
    assert 'cohorts_worker_flips_total{status="entered"}' in metrics


def test_metrics_name_lag_deadlines_and_state_size_per_partition(env: Env):
    """The series the dashboard and docs/operating.md name, scraped from a worker that has folded
    inputs: consumer lag by topic and partition, deadlines and their backlog, RocksDB bytes."""
    env.write_cohort(1501, record(1501, group(performed("$pageview", 7)), team_id=150))
    env.wait_calculated(1501, 1)
    env.events(*[posthog_event(150, f"m{n}", "$pageview", NOW - DAY) for n in range(12)])
    env.wait_members(150, {1501: {f"m{n}" for n in range(12)}})

    deadline = time.monotonic() + 30
    while True:
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(_metrics(env.worker)):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        sizes = {labels["partition"]: value for labels, value in samples.get("cohorts_worker_state_bytes", [])}
        # the gauge is set at each tick (every second here), so it may trail the last write briefly
        scheduled = sum(value for _, value in samples.get("cohorts_worker_deadlines_scheduled", []))
        if len(sizes) == PARTITIONS and min(sizes.values()) > 0 and scheduled >= 12:
            break
        assert time.monotonic() < deadline, f"state sizes {sizes}, deadlines scheduled {scheduled}"
        time.sleep(1)
    lag_topics = {labels["topic"] for labels, _ in samples["cohorts_worker_consumer_lag"]}
    assert {env.topics.events, env.topics.person_inputs, env.topics.control} <= lag_topics
    assert all(value >= 0 for _, value in samples["cohorts_worker_consumer_lag"])
    assert "cohorts_worker_deadline_backlog" in samples  # every member above leaves when its 7-day window ends


def test_a_tick_with_an_injected_now_makes_a_person_leave_without_an_event(own_env: Env):
    """Scenario: pageview on day D, window 7 days; a tick carrying now = D+8 days reaches every control
    partition; the person leaves although no event arrived. Another person's window still holds."""
    env = own_env
    env.write_cohort(2001, record(2001, group(performed("$pageview", 7)), team_id=200))
    env.wait_calculated(2001, 1)
    env.events(
        posthog_event(200, "old", "$pageview", NOW - 2 * DAY),
        posthog_event(200, "new", "$pageview", NOW),
    )
    env.wait_members(200, {2001: {"old", "new"}})
    edge_old = (NOW - 2 * DAY) // DAY * DAY + 8 * DAY
    send_control(env.bootstrap, env.topics.control, ControlMessage(type="tick", now_us=edge_old), PARTITIONS)
    env.wait_members(200, {2001: {"new"}})
    assert statuses(env.flips.messages, 200)[(2001, "old")] == "left"


def test_the_worker_clock_and_timer_ticks_expire_windows(own_env: Env):
    """Scenario: the injected clock moves past a 1-hour window's edge; the worker's own timer tick
    (every second here) re-evaluates the person within seconds, with no event."""
    env = own_env
    env.write_cohort(2101, record(2101, group(performed("$pageview", 1, interval="hour")), team_id=210))
    env.wait_calculated(2101, 1)
    env.events(posthog_event(210, "h", "$pageview", NOW - 30 * 60_000_000))
    env.wait_members(210, {2101: {"h"}})
    env.worker.set_now(NOW + 2 * HOUR)
    env.wait_members(210, {2101: set()}, timeout_s=20)


def test_the_worker_refuses_a_partition_count_mismatch(kafka_bootstrap: str, tmp_path: Path):
    topics = Topics(prefix=f"m{uuid.uuid4().hex[:10]}_", partitions=2)
    ensure_topics(kafka_bootstrap, topics.specs())
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topics.prefix, partitions=3, data_dir=tmp_path)
    with pytest.raises(AssertionError, match="exited with 2") as info:
        start_worker(settings, tmp_path)
    assert "partition" in str(info.value) and "refusing to start" in str(info.value)


def _metrics(worker: WorkerProcess) -> str:
    import httpx

    return httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).text


def test_static_adds_of_an_aborted_transaction_are_never_applied(env: Env):
    """Scenario: the api writes control records inside Kafka transactions; a fenced or failed write is
    aborted. The worker reads committed records only: the aborted add never makes s9 a member, the
    committed one after it makes s10 one."""
    env.write_cohort(1091, static(1091, team_id=109))
    env.wait_calculated(1091, 1)
    env.persons(posthog_person(109, "s9", 1), posthog_person(109, "s10", 1))
    producer = Producer(
        {"bootstrap.servers": env.bootstrap, "partitioner": "murmur2_random", "transactional.id": uuid.uuid4().hex}
    )
    producer.init_transactions(30)
    for person_id, commit in (("s9", False), ("s10", True)):
        producer.begin_transaction()
        add = ControlMessage(type="static_add", team_id=109, cohort_id=1091, person_id=person_id)
        producer.produce(env.topics.control, key=person_key(109, person_id).encode(), value=add.to_bytes())
        producer.flush(30)
        (producer.commit_transaction if commit else producer.abort_transaction)(30)
    env.wait_members(109, {1091: {"s10"}})
    assert (1091, "s9") not in statuses(env.flips.messages, 109)


def test_health_answers_and_readiness_reports_ready_once_recovered(env: Env):
    """Scenario: a running worker with its catalog loaded and partitions assigned is alive and ready."""
    import httpx

    base = f"http://127.0.0.1:{env.worker.web_port}"
    assert httpx.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
    ready = httpx.get(f"{base}/ready", timeout=5)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
