"""Run a real worker as a subprocess (`python -m stream`) and talk to it through the broker.

faust inside the pytest process is fragile (event loops, signal handlers, globals), so
integration and differential tests start the worker as its own process, configured by
`COHORTS_*` variables, and observe it only through Kafka topics and its metrics port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from cli.local_kafka import free_port
from cohorts.settings import Settings
from cohorts.timestamps import format_iso
from cohorts.wire import CalculationReport, ControlMessage, MembershipChange

__all__ = [
    "TopicReader",
    "WorkerProcess",
    "clickhouse_time",
    "finished_reports",
    "members",
    "posthog_event",
    "posthog_person",
    "produce",
    "send_control",
    "start_worker",
    "statuses",
]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int
    clock_file: Path | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def set_now(self, now_us: int) -> None:
        """Move the worker's injected clock (only when started with a clock file)."""
        assert self.clock_file is not None, "worker was started without an injected clock"
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(now_us))
        tmp.replace(self.clock_file)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if "Worker ready" in self.log() or "[^Worker]: Ready" in self.log():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.log()[-4000:]}")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_worker(
    settings: Settings,
    log_dir: Path,
    *,
    now_us: int | None = None,
    tick_interval_s: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start `python -m stream` for `settings`; `now_us` injects a clock the test moves with set_now."""
    web_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "COHORTS_KAFKA_BOOTSTRAP": settings.bootstrap,
            "COHORTS_TOPIC_PREFIX": settings.topic_prefix,
            "COHORTS_PARTITIONS": str(settings.partitions),
            "COHORTS_DATA_DIR": str(settings.data_dir),
            "COHORTS_WORKER_WEB_PORT": str(web_port),
        }
    )
    args = [sys.executable, "-m", "stream"]
    clock_file = None
    if now_us is not None:
        clock_file = log_dir / "clock_us"
        clock_file.write_text(str(now_us))
        args += ["--clock-file", str(clock_file)]
    if tick_interval_s is not None:
        args += ["--tick-interval", str(tick_interval_s)]
    # Short group timeouts: a test's worker joins and rebalances in seconds, not the production 30 s.
    args += ["--session-timeout", "6", "--heartbeat-interval", "0.5", "--rebalance-timeout", "6"]
    args += ["--commit-interval", "0.5"]
    env.update(extra_env or {})
    log_path = log_dir / f"worker-{web_port}.log"
    log_file = log_path.open("wb")
    try:
        process = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    finally:
        log_file.close()
    worker = WorkerProcess(process, log_path, web_port, clock_file)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | str | None, Any]], **kw: Any) -> None:
    """Produce (key, value) pairs; dict values are JSON-encoded, bytes are sent as they are."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value in messages:
        if isinstance(value, dict | list):
            value = orjson.dumps(value)
        producer.produce(topic, key=key, value=value, **kw)
    assert producer.flush(30) == 0


@dataclass
class TopicReader:
    """Reads a topic from the beginning, accumulating every message (all partitions, no group commit)."""

    bootstrap: str
    topic: str
    messages: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    _consumer: Consumer | None = None
    #: The next offset to read, per partition.
    _next: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{self.topic}-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        metadata = self._consumer.list_topics(self.topic, timeout=10)
        parts = metadata.topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])

    def poll(self, timeout_s: float = 0.5) -> int:
        assert self._consumer is not None
        got = 0
        for msg in self._consumer.consume(num_messages=10_000, timeout=timeout_s):
            if msg.error():
                continue
            self.messages.append((msg.key(), msg.value()))
            self._next[msg.partition()] = msg.offset() + 1
            got += 1
        return got

    def read_to_end(self, timeout_s: float = 30.0) -> list[tuple[bytes | None, bytes | None]]:
        """Every message written before the call, for a topic that keeps growing (ticks)."""
        assert self._consumer is not None
        ends = {}
        for tp in self._consumer.assignment():
            _, ends[tp.partition] = self._consumer.get_watermark_offsets(tp, timeout=10)
        return self.wait_for(lambda _: all(self._next.get(p, 0) >= end for p, end in ends.items()), timeout_s)

    def wait_for(
        self, predicate: Callable[[list[tuple[bytes | None, bytes | None]]], bool], timeout_s: float = 30.0
    ) -> list[tuple[bytes | None, bytes | None]]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll(0.3)
            if predicate(self.messages):
                return self.messages
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out on {self.topic}; have {len(self.messages)} messages")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def clickhouse_time(ts_us: int) -> str:
    """PostHog's ClickHouse timestamp text, `YYYY-MM-DD HH:MM:SS.ffffff` (UTC)."""
    return format_iso(ts_us).replace("T", " ").rstrip("Z")


def posthog_event(team_id: int, person_id: str, event: str, ts_us: int, **properties: Any) -> dict[str, Any]:
    """A `clickhouse_events_json` message as PostHog's ingestion writes it (properties as a JSON string)."""
    return {
        "uuid": f"{person_id}-{event}-{ts_us}",
        "event": event,
        "properties": orjson.dumps(properties).decode(),
        "timestamp": clickhouse_time(ts_us),
        "team_id": team_id,
        "project_id": team_id,
        "distinct_id": f"d-{person_id}",
        "elements_chain": "",
        "created_at": clickhouse_time(ts_us),
        "person_id": person_id,
        "person_mode": "full",
    }


def posthog_person(
    team_id: int, person_id: str, version: int, *, deleted: bool = False, **properties: Any
) -> dict[str, Any]:
    """A `clickhouse_person` message (properties as a JSON string, flags as 0/1)."""
    return {
        "id": person_id,
        "team_id": team_id,
        "properties": orjson.dumps(properties).decode(),
        "is_identified": 1,
        "is_deleted": 1 if deleted else 0,
        "version": version,
        "created_at": "2024-01-01 00:00:00.000000",
    }


def statuses(messages: list[tuple[bytes | None, bytes | None]], team_id: int | None = None) -> dict:
    """(cohort_id, person_id) -> status of the last flip, optionally for one team."""
    last: dict[tuple[int, str], str] = {}
    for _, value in messages:
        change = MembershipChange.from_bytes(value or b"")
        if team_id is None or change.team_id == team_id:
            last[(change.cohort_id, change.person_id)] = change.status
    return last


def members(messages: list[tuple[bytes | None, bytes | None]], team_id: int | None = None) -> dict[int, set[str]]:
    """cohort id -> persons whose last flip is `entered`."""
    found: dict[int, set[str]] = {}
    for (cohort_id, person_id), status in statuses(messages, team_id).items():
        if status == "entered":
            found.setdefault(cohort_id, set()).add(person_id)
    return found


def finished_reports(
    messages: list[tuple[bytes | None, bytes | None]], cohort_id: int, version: int
) -> dict[int, CalculationReport]:
    """partition -> finished report of that cohort version."""
    done: dict[int, CalculationReport] = {}
    for _, value in messages:
        report = CalculationReport.from_bytes(value or b"")
        if report.cohort_id == cohort_id and report.version == version and report.finished_at is not None:
            done[report.partition] = report
    return done


def send_control(bootstrap: str, topic: str, message: ControlMessage, partitions: int) -> None:
    """A control message to every partition explicitly (ticks, recalculations)."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for partition in range(partitions):
        producer.produce(topic, key=message.type.encode(), value=message.to_bytes(), partition=partition)
    assert producer.flush(30) == 0
