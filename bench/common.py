"""What every ingest benchmark phase shares: the data set, its generator, the broker, child runs.

- `Dataset`: one preloaded data set (broker, topic prefix, sizes, seed, time base), saved as a JSON
  manifest so every phase (baselines, worker) reads the same messages from the same broker.
- `persons_then_events`: the deterministic PostHog-shaped messages (`cli.demo_data`) of a data set;
  the same manifest gives the same bytes, so two runs measure the same work.
- `local_broker`: the configured cluster, else a throwaway single-node Kafka for the run.
- `run_child`: one measured phase as a subprocess with a deadline; the child writes a JSON result
  (`spawn`, `stop_process` and `process_cpu_s` serve phases that are watched from outside).

Invariants: a phase that does not finish within its deadline, or exits without a result, raises
`PhaseError`; it never yields a number. Nothing here connects or starts anything at import.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from cli.demo_data import DemoPopulation
from cli.local_kafka import LocalKafka, free_port, project_root
from cohorts.topics import Topics

__all__ = [
    "DEFAULT_BASE_US",
    "DEFAULT_SPAN_US",
    "Broker",
    "Dataset",
    "PhaseError",
    "PhaseResult",
    "delete_prefixed_topics",
    "local_broker",
    "message_counts",
    "metric_sum",
    "persons_then_events",
    "process_cpu_s",
    "process_rss_bytes",
    "read_result",
    "run_child",
    "spawn",
    "stop_process",
    "write_result",
]

#: The instant the data set ends at (2025-06-01T00:00:00Z): fixed, so the bytes never depend on
#: when the benchmark runs. The worker is given this instant as its clock (`--now-us`).
DEFAULT_BASE_US = 1_748_736_000_000_000

#: Events are spread evenly (in order, with the generator's few seconds of jitter) over this span
#: before `base_us`, so windows from minutes to 30 days all see some of them.
DEFAULT_SPAN_US = 7 * 24 * 3600 * 1_000_000


class PhaseError(RuntimeError):
    """A benchmark phase failed or timed out; the message says which and where its log is."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """A preloaded data set: `events` events over `persons` persons of team `team_id`."""

    bootstrap: str
    prefix: str
    partitions: int = 16
    events: int = 300_000
    persons: int = 100_000
    team_id: int = 1
    seed: int = 7
    base_us: int = DEFAULT_BASE_US
    span_us: int = DEFAULT_SPAN_US
    #: Filled in by preload: how long producing took (seconds), for the report.
    produce_seconds: float | None = None

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.prefix, partitions=self.partitions)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Dataset:
        return cls(**json.loads(path.read_text()))


def persons_then_events(dataset: Dataset) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(topic, key, value) of every message: all person records first, then the events in time order.

    One seeded population serves both, so the order is part of the determinism. Events are keyed
    by uuid, as PostHog keys `clickhouse_events_json`; person records by person id.
    """
    topics = dataset.topics
    population = DemoPopulation(dataset.team_id, size=dataset.persons, seed=dataset.seed)
    start_us = dataset.base_us - dataset.span_us
    for person_id in population.person_ids:
        yield topics.persons, person_id, population.person_record(person_id, start_us)
    for index in range(dataset.events):
        event = population.event(start_us + index * dataset.span_us // max(dataset.events, 1))
        yield topics.events, event["uuid"], event


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One measured phase: `events` consumed in `seconds` (first event to the phase's end mark)."""

    name: str
    events: int
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def write_result(path: Path, result: PhaseResult) -> None:
    """Atomically, so the parent never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), indent=2) + "\n")
    tmp.replace(path)


def read_result(path: Path) -> PhaseResult:
    return PhaseResult(**json.loads(path.read_text()))


@dataclass(frozen=True, slots=True)
class Broker:
    bootstrap: str
    #: "4.1.1 (local broker)" or a note that the configured cluster's version was not probed.
    kafka_version: str
    #: The local broker's process, whose CPU the worker phases report; None for a configured cluster.
    pid: int | None = None


def _local_kafka_version(kafka: LocalKafka) -> str:
    jars = sorted(kafka.libs.glob("kafka_2.13-*.jar"))
    if not jars:
        return "unknown"
    return jars[-1].stem.removeprefix("kafka_2.13-")


@contextmanager
def local_broker(work_dir: Path, configured: str | None) -> Iterator[Broker]:
    """The configured cluster as is, else a local broker under `work_dir`, stopped on exit."""
    if configured:
        yield Broker(configured, "configured cluster (version not probed)")
        return
    kafka = LocalKafka(work_dir / "kafka", port=free_port(), heap="1g")
    kafka.start()
    try:
        yield Broker(kafka.bootstrap, f"{_local_kafka_version(kafka)} (local single-node KRaft broker)", kafka.pid())
    finally:
        kafka.stop()


def delete_prefixed_topics(bootstrap: str, prefix: str) -> None:
    """Remove a run's topics (data set and faust's internal ones) from a configured cluster."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result(timeout=60)


def message_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Messages per topic (high minus low watermark over all partitions)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-counts-{uuid.uuid4().hex}"})
    try:
        counts: dict[str, int] = {}
        metadata = consumer.list_topics(timeout=10)
        for topic in topics:
            total = 0
            for partition in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high - low
            counts[topic] = total
        return counts
    finally:
        consumer.close()


def run_child(
    name: str,
    args: Sequence[str],
    *,
    result_path: Path,
    log_path: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> PhaseResult:
    """Run `python <args>` from the repository root until it exits, then read its result file.

    The child stops itself once it has written its result; after `timeout_s` it is terminated
    and the phase fails (no number).
    """
    result_path.unlink(missing_ok=True)
    process = spawn(args, env=env, log_path=log_path)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        stop_process(process)
        raise PhaseError(f"{name} did not finish within {timeout_s:.0f}s; see {log_path}") from None
    finally:
        stop_process(process)
    if not result_path.exists():
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-5:])
        raise PhaseError(f"{name} exited with {process.returncode} without a result; see {log_path}: {tail}")
    return read_result(result_path)


def spawn(args: Sequence[str], *, env: Mapping[str, str] | None, log_path: Path) -> subprocess.Popen[bytes]:
    """`python <args>` from the repository root in its own process group, output to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=project_root(),
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process, all threads (/proc/PID/stat); None once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may contain spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process (/proc/PID/status VmRSS); None once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def metric_sum(exposition: str, name: str) -> float | None:
    """Sum of every sample of metric `name` (all label sets) in Prometheus text; None when absent."""
    total: float | None = None
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        if metric.split("{", 1)[0].strip() == name:
            total = (total or 0.0) + float(value)
    return total


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM the child's process group, SIGKILL after `grace_s`; a no-op once it has exited."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """`--report`, `--no-report` and `--results-dir`: where a benchmark appends its section and keeps
    its run directory."""
    parser.add_argument("--report", type=Path, default=project_root() / "docs" / "benchmarks.md")
    parser.add_argument("--no-report", action="store_true", help="do not append to the report")
    parser.add_argument("--results-dir", type=Path, default=project_root() / "bench" / "results")


def new_run(results_dir: Path, name: str, module: str, argv: Sequence[str] | None) -> tuple[Path, str]:
    """A fresh run directory `<results_dir>/<name>-<UTC time>` (created and printed) and the command
    line that reruns this benchmark, for its report."""
    run_dir = results_dir / datetime.now(UTC).strftime(f"{name}-%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"run directory: {run_dir}", flush=True)
    given = sys.argv[1:] if argv is None else argv
    return run_dir, " ".join([f".venv/bin/python -m {module}", *map(shlex.quote, given)])


def worker_committed(admin: AdminClient, topics: Topics) -> dict[tuple[str, int], int]:
    """Offsets the worker has committed, over all its consumer groups (`Topics.worker_groups`:
    ingest commits the PostHog topics, the fold the re-keyed inputs, the faust app control, the
    announcer the catalog)."""
    committed: dict[tuple[str, int], int] = {}
    for group in topics.worker_groups():
        result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)
        offsets = result[group].result().topic_partitions or []
        committed.update({(tp.topic, tp.partition): tp.offset for tp in offsets if tp.offset >= 0})
    return committed
