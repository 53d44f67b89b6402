"""What the reliability scenarios share: a workload, a paced streamer, settling, the comparison.

- `build_workload`: a seeded random scenario (tests/differential/scenario.py) plus cohorts with
  exact-count (`eq`) operators, so one event counted twice, or lost, changes membership.
- `Streamer`: a thread producing persons, events and static adds interleaved, at a steady pace over
  a chosen duration, so the worker can be killed "while events stream in".
- `wait_settled`: quiescence read from the broker only (committed offsets of the worker group against
  end offsets), because worker metrics restart from zero with every killed process.
- `mismatches`: last flip per (cohort, person) against `cohorts.reference.reference_members`.

Sizes come from `RELIABILITY_*` variables so the same tests run small in CI and big on demand
(docs/reliability.md). Nothing here is a test; it never kills a process it did not start.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from cohorts.reference import reference_members
from cohorts.topics import Topics, person_key
from cohorts.validate import definition_from_record
from cohorts.wire import CatalogRecord, ControlMessage, MembershipChange
from tests.differential.scenario import DAY, HOUR, MINUTE, NOW, Scenario, generate
from tests.integration.worker_harness import (
    TopicReader,
    WorkerProcess,
    finished_reports,
    posthog_event,
    posthog_person,
    send_control,
)

__all__ = [
    "ADVANCES_US",
    "NOW",
    "Size",
    "Streamer",
    "Workload",
    "announcer_position",
    "build_workload",
    "kill",
    "mismatches",
    "record_figures",
    "settle_and_compare",
    "wait_calculated",
    "wait_settled",
    "wipe",
]

#: Clock moves after streaming: window edges pass, ticks carrying the new now reach every partition.
ADVANCES_US = (HOUR + 3 * MINUTE, 8 * DAY, 31 * DAY)


@dataclass(frozen=True)
class Size:
    """How big a run is; CI uses the defaults, `RELIABILITY_*` variables scale it up."""

    events: int
    persons: int
    stream_s: float
    seed: int

    @classmethod
    def from_env(cls, *, events: int, persons: int, stream_s: float, seed: int) -> Size:
        return cls(
            events=int(os.environ.get("RELIABILITY_EVENTS", events)),
            persons=int(os.environ.get("RELIABILITY_PERSONS", persons)),
            stream_s=float(os.environ.get("RELIABILITY_STREAM_S", stream_s)),
            seed=int(os.environ.get("RELIABILITY_SEED", seed)),
        )


@dataclass
class Workload:
    """One team's catalog and inputs, as PostHog-shaped messages and as the reference sees them."""

    scenario: Scenario
    catalog: list[tuple[bytes, bytes]]
    persons: list[tuple[bytes, dict[str, Any]]]
    events: list[tuple[bytes, dict[str, Any]]]
    statics: list[tuple[bytes, bytes]]

    @property
    def team_id(self) -> int:
        return self.scenario.team_id

    def expected(self, now_us: int) -> dict[int, set[str]]:
        s = self.scenario
        return reference_members(s.definitions(), s.events, s.persons, s.static_members, now_us)


def _exact_count_leaf(event: str, count: int, amount: int, unit: str, negation: bool = False) -> dict[str, Any]:
    return {
        "type": "behavioral",
        "key": event,
        "value": "performed_event_multiple",
        "event_type": "events",
        "operator": "eq",
        "operator_value": count,
        "time_value": amount,
        "time_interval": unit,
        "negation": negation,
    }


def _typical_count(scenario: Scenario, event: str, days: int) -> int:
    """The median count of `event` in the last `days` days over persons: where `eq` splits them."""
    since = NOW - days * DAY
    counts: dict[str, int] = {}
    for e in scenario.events:
        if e.event == event and since <= e.timestamp_us <= NOW:
            counts[e.person_id] = counts.get(e.person_id, 0) + 1
    ordered = sorted(counts.values())
    return ordered[len(ordered) // 2] if ordered else 1


def _exact_count_records(scenario: Scenario, first_id: int) -> list[CatalogRecord]:
    """Cohorts an event counted twice (or lost) must change: exact counts around the median count."""
    specs: list[tuple[str, int, int, str, bool]] = []
    windows = (("$pageview", 30, "day", 30), ("purchase", 7, "day", 7), ("signup", 1, "week", 7))
    for event, amount, unit, days in windows:
        typical = _typical_count(scenario, event, days)
        specs += [(event, typical - 1, amount, unit, False), (event, typical, amount, unit, False)]
        specs.append((event, typical + 1, amount, unit, True))
    team_id = scenario.team_id
    records = []
    for n, (event, count, amount, unit, negation) in enumerate(specs):
        leaf = _exact_count_leaf(event, max(count, 0), amount, unit, negation)
        filters = {"properties": {"type": "OR", "values": [{"type": "AND", "values": [leaf]}]}}
        records.append(CatalogRecord(id=first_id + n, team_id=team_id, version=1, name=f"eq{n}", filters=filters))
    # An event filter: ingest forwards the properties filters read, so hostile values there reach the fold.
    on_path = {
        "type": "behavioral",
        "key": "$pageview",
        "value": "performed_event_multiple",
        "event_type": "events",
        "operator": "eq",
        "operator_value": 1,
        "time_value": 14,
        "time_interval": "day",
        "event_filters": [{"type": "event", "key": "path", "value": "/pricing", "operator": "exact"}],
    }
    specs_filters = {"properties": {"type": "OR", "values": [{"type": "AND", "values": [on_path]}]}}
    records.append(CatalogRecord(id=first_id + 50, team_id=team_id, version=1, name="path", filters=specs_filters))
    # A cohort reading an exact-count cohort: a double count there must propagate here too.
    nested = {"type": "cohort", "key": "id", "value": first_id + 1, "negation": False}
    filters = {
        "properties": {
            "type": "OR",
            "values": [{"type": "AND", "values": [nested, _exact_count_leaf("purchase", 0, 1, "day", True)]}],
        }
    }
    records.append(CatalogRecord(id=first_id + len(specs), team_id=team_id, version=1, name="nested", filters=filters))
    for record in records:
        definition_from_record(record)  # the api would accept it
    return records


def build_workload(size: Size, *, team_id: int = 7, cohorts: int = 12) -> Workload:
    """The differential generator's scenario at `size`, plus the exact-count cohorts."""
    scenario = generate(size.seed, team_id=team_id, persons=size.persons, events=size.events, cohorts=cohorts)
    scenario.records += _exact_count_records(scenario, team_id * 1_000 + 500)
    catalog = [(str(r.id).encode(), r.to_bytes()) for r in scenario.records]
    persons = [
        (p.person_id.encode(), posthog_person(p.team_id, p.person_id, p.version, deleted=p.is_deleted, **p.properties))
        for p in scenario.persons
    ]
    events = [
        (f"{n}".encode(), posthog_event(e.team_id, e.person_id, e.event, e.timestamp_us, **e.properties))
        for n, e in enumerate(scenario.events)
    ]
    statics = [
        (
            person_key(team_id, person_id).encode(),
            ControlMessage("static_add", team_id, cohort_id, person_id).to_bytes(),
        )
        for cohort_id, ids in scenario.static_members.items()
        for person_id in sorted(ids)
    ]
    return Workload(scenario, catalog, persons, events, statics)


# --- producing --------------------------------------------------------------------------------


def producer(bootstrap: str) -> Producer:
    """murmur2 keys (design §3); a long delivery timeout, so a broker outage only delays messages."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": 300_000,
            "message.max.bytes": 4 * 1024 * 1024,
        }
    )


def _encoded(value: Any) -> Any:
    return orjson.dumps(value) if isinstance(value, dict | list) else value


class Streamer(threading.Thread):
    """Produces the workload's persons, events and static adds interleaved, paced over `duration_s`.

    Every input kind is spread over the whole duration, so a kill at any moment finds all of them in
    flight. `sent` counts messages handed to the producer so far; `finish` re-raises the thread's error.
    """

    def __init__(self, bootstrap: str, topics: Topics, workload: Workload, duration_s: float, chunks: int = 200):
        super().__init__(name="reliability-streamer", daemon=True)
        self.bootstrap = bootstrap
        self.topics = topics
        self.workload = workload
        self.duration_s = duration_s
        self.chunks = chunks
        self.sent = 0
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._go.set()

    def pause(self) -> None:
        """Hold back the next chunks (the pacing resumes where it stopped)."""
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    @property
    def total(self) -> int:
        return len(self.workload.events) + len(self.workload.persons) + len(self.workload.statics)

    def wait_progress(self, fraction: float) -> int:
        """Block until `fraction` of the messages were handed to the producer; returns how many."""
        while self.sent < fraction * self.total and self.is_alive():
            time.sleep(0.02)
        return self.sent

    def _plan(self) -> Iterator[list[tuple[str, bytes, Any]]]:
        w, t = self.workload, self.topics
        streams = [
            [(t.persons, k, v) for k, v in w.persons],
            [(t.events, k, v) for k, v in w.events],
            [(t.control, k, v) for k, v in w.statics],
        ]
        for i in range(self.chunks):
            chunk: list[tuple[str, bytes, Any]] = []
            for stream in streams:
                lo, hi = len(stream) * i // self.chunks, len(stream) * (i + 1) // self.chunks
                chunk += stream[lo:hi]
            yield chunk

    def run(self) -> None:
        try:
            out = producer(self.bootstrap)
            started = time.monotonic()
            for i, chunk in enumerate(self._plan()):
                if not self._go.is_set():
                    held = time.monotonic()
                    self._go.wait()
                    started += time.monotonic() - held
                for topic, key, value in chunk:
                    while True:
                        try:
                            out.produce(topic, key=key, value=_encoded(value))
                            break
                        except BufferError:  # local queue full (e.g. the broker is down): wait, retry
                            out.poll(0.2)
                    self.sent += 1
                out.poll(0)
                pause = started + self.duration_s * (i + 1) / self.chunks - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            left = out.flush(300)
            if left:
                raise AssertionError(f"{left} messages not delivered")
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout_s: float = 400) -> None:
        """Wait for every message to be delivered; re-raise the thread's error."""
        self.resume()
        self.join(timeout_s)
        assert not self.is_alive(), "streamer did not finish"
        if self.error is not None:
            raise self.error


# --- processes and state ----------------------------------------------------------------------


def kill(worker: WorkerProcess) -> None:
    """SIGKILL: no shutdown code runs, nothing is flushed or committed."""
    worker.process.kill()
    worker.process.wait(10)


def wipe(data_dir: Path) -> None:
    """Delete a stopped worker's whole state directory (RocksDB of every partition)."""
    shutil.rmtree(data_dir / "worker")


# --- settling and comparing -------------------------------------------------------------------


def wait_calculated(reports: TopicReader, workload: Workload, partitions: int, timeout_s: float = 60) -> None:
    records = [CatalogRecord.from_bytes(v) for _, v in workload.catalog]
    reports.wait_for(
        lambda ms: all(len(finished_reports(ms, r.id, r.version)) == partitions for r in records), timeout_s
    )


def _offsets(consumer: Consumer, topics: Iterable[str], partitions: int) -> dict[TopicPartition, tuple[int, int]]:
    """(committed by the worker group, end offset) per partition."""
    tps = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=10)}
    found = {}
    for tp in tps:
        _, high = consumer.get_watermark_offsets(tp, timeout=10)
        found[tp] = (max(committed[(tp.topic, tp.partition)], 0), high)
    return found


def wait_settled(
    bootstrap: str,
    topics: Topics,
    flips: TopicReader,
    *,
    timeout_s: float = 90,
    alive: Callable[[], None] | None = None,
) -> None:
    """Every input consumed and committed by the worker's groups, every flip it produced read.

    Control messages are held to the end offsets seen on entry: the leader's timer keeps adding
    ticks, which the worker handles within a commit interval. Passes twice in a row, a second apart.
    `alive` raises if a worker died (checked every round).
    """
    groups = topics.worker_groups()
    consumers = {
        group: Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        for group in groups
    }
    owner = {topic: consumers[group] for group, owned in groups.items() for topic in owned}

    def offsets(names: Iterable[str], partitions: int) -> dict[TopicPartition, tuple[int, int]]:
        """(committed by the group that consumes it, end offset), each topic read through its group."""
        return {tp: pair for name in names for tp, pair in _offsets(owner[name], [name], partitions).items()}

    try:
        control_floor = {tp: high for tp, (_, high) in offsets([topics.control], topics.partitions).items()}
        inputs = [topics.events, topics.persons, topics.distinct_ids, topics.person_inputs]
        deadline = time.monotonic() + timeout_s
        stable, last_flips = 0, -1
        while time.monotonic() < deadline:
            if alive is not None:
                alive()
            state = offsets(inputs, topics.partitions)
            state |= offsets([topics.control], topics.partitions)
            state |= offsets([topics.catalog], 1)
            behind = {
                f"{tp.topic}[{tp.partition}]": high - done
                for tp, (done, high) in state.items()
                if done < control_floor.get(tp, high)
            }
            ends = _offsets(owner[topics.control], [topics.membership_changed], topics.partitions)
            flip_ends = sum(high for _, high in ends.values())
            while len(flips.messages) < flip_ends and flips.poll(0.5):
                pass
            done = not behind and len(flips.messages) == flip_ends and flip_ends == last_flips
            last_flips = flip_ends
            stable = stable + 1 if done else 0
            if stable >= 2:
                return
            time.sleep(1.0)
        raise AssertionError(
            f"not settled after {timeout_s}s: behind {behind}, flips read {len(flips.messages)} of {flip_ends}"
        )
    finally:
        for consumer in consumers.values():
            consumer.close()


def last_statuses(messages: list[tuple[bytes | None, bytes | None]], team_id: int) -> dict[tuple[int, str], str]:
    last: dict[tuple[int, str], str] = {}
    for _, value in messages:
        change = MembershipChange.from_bytes(value or b"")
        if change.team_id == team_id:
            last[(change.cohort_id, change.person_id)] = change.status
    return last


def mismatches(workload: Workload, messages: list[tuple[bytes | None, bytes | None]], now_us: int) -> dict:
    """(cohort, person) -> (expected member?, last status on the topic), wherever they disagree.

    Both ways: a lost `entered` shows as a missing member, a lost `left` as a stale one.
    """
    expected = workload.expected(now_us)
    last = last_statuses(messages, workload.team_id)
    wrong: dict[tuple[int, str], tuple[bool, str | None]] = {}
    for cohort_id, persons in expected.items():
        for person_id in persons:
            if last.get((cohort_id, person_id)) != "entered":
                wrong[(cohort_id, person_id)] = (True, last.get((cohort_id, person_id)))
    for (cohort_id, person_id), status in last.items():
        if status == "entered" and person_id not in expected.get(cohort_id, set()):
            wrong[(cohort_id, person_id)] = (False, status)
    return wrong


def settle_and_compare(
    bootstrap: str,
    topics: Topics,
    workload: Workload,
    flips: TopicReader,
    workers: Callable[[], list[WorkerProcess]],
    *,
    advances_us: Iterable[int] = ADVANCES_US,
    timeout_s: float | None = None,
) -> dict[str, int]:
    """Compare at NOW, then after each clock advance (every live worker's clock, plus explicit ticks).

    Returns figures for the report: comparisons made, flips read, members expected at NOW.
    """

    if timeout_s is None:  # a big on-demand run drains a longer backlog after the last input
        timeout_s = float(os.environ.get("RELIABILITY_SETTLE_S", 90))

    def alive() -> None:
        for worker in workers():
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")

    wait_settled(bootstrap, topics, flips, timeout_s=timeout_s, alive=alive)
    wrong = mismatches(workload, flips.messages, NOW)
    assert not wrong, f"at NOW: {len(wrong)} mismatches, e.g. {sorted(wrong.items())[:10]}"
    members_at_now = sum(len(p) for p in workload.expected(NOW).values())
    comparisons = 1
    for advance in advances_us:
        now_us = NOW + advance
        for worker in workers():
            worker.set_now(now_us)
        send_control(bootstrap, topics.control, ControlMessage(type="tick", now_us=now_us), topics.partitions)
        wait_settled(bootstrap, topics, flips, timeout_s=timeout_s, alive=alive)
        wrong = mismatches(workload, flips.messages, now_us)
        assert not wrong, f"at NOW + {advance / HOUR:.1f} h: {len(wrong)} mismatches, e.g. {sorted(wrong.items())[:10]}"
        comparisons += 1
    return {"comparisons": comparisons, "flips_read": len(flips.messages), "members_at_now": members_at_now}


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Append one JSON line of figures to `$RELIABILITY_REPORT` (docs/reliability.md quotes them)."""
    path = os.environ.get("RELIABILITY_REPORT")
    line = orjson.dumps({"scenario": name, **figures}).decode()
    print(f"reliability figures: {line}")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def seeded(size: Size, salt: int) -> random.Random:
    """The RNG for kill moments and the like: reproducible from the seed in the figures."""
    return random.Random(size.seed * 1_000 + salt)


def announcer_position(bootstrap: str, topics: Topics) -> str:
    """How far the catalog announcer's group has committed, against the catalog's end: shown with a
    stalled announcement."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topics.announce_group})
    try:
        (tp,) = consumer.committed([TopicPartition(topics.catalog, 0)], timeout=10)
        _, end = consumer.get_watermark_offsets(TopicPartition(topics.catalog, 0), timeout=10)
    finally:
        consumer.close()
    return f"catalog: announcer committed {tp.offset}, end {end}"


def control_messages(
    bootstrap: str, topics: Topics, timeout_s: float = 30
) -> dict[int, list[tuple[int, ControlMessage]]]:
    """Every control partition's messages as (offset, message), read to the end offsets taken first.

    A partition not read to its end within `timeout_s` is returned as far as it was read, so a
    check on the result fails rather than waits."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}"})
    try:
        partitions = range(topics.partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topics.control, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topics.control, p, 0) for p in partitions])
        found: dict[int, list[tuple[int, ControlMessage]]] = {p: [] for p in partitions}
        read = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout_s
        while any(read[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1_000, timeout=0.5):
                if msg.error():
                    continue
                read[msg.partition()] = msg.offset() + 1
                found[msg.partition()].append((msg.offset(), ControlMessage.from_bytes(msg.value() or b"")))
    finally:
        consumer.close()
    return found
