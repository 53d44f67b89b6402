"""Benchmark 1's subject: the real worker (`python -m stream`) timed to the last flip.

Owns: the benchmark's cohort set (`benchmark_cohorts`, 100 active cohorts of every common kind over
the demo population's properties and events), publishing it to `cohort_catalog`, running one worker
as a subprocess against a preloaded data set, and reading its progress from the broker only:

1. Publish the catalog, start the worker on a fixed clock (`--now-us`, now = the data set's
   `base_us`, so windows and flips do not depend on when the benchmark runs).
2. Poll the committed offsets of the worker's consumer groups (`Topics.worker_groups`: ingest's,
   the fold's and the faust app's) until the events topic, and every other input topic they commit on, is
   consumed to its end, and neither `cohort_membership_changed` nor
   `cohort_person_inputs` has grown for `quiet_s`.
3. Start = the first message ingest wrote to `cohort_person_inputs` (its CreateTime: the worker had
   consumed its first event); end = the last flip's CreateTime on `cohort_membership_changed`.
   The time at which the lag was first seen at zero is reported too (an upper bound: it is
   observed by polling and commits trail processing by up to the commit interval).

With `calculated_first`, the cohorts are calculated before the worker reads any PostHog input:
ingest's group is given positions at the ends of the PostHog topics, the workers start, calculate
the 100 cohorts over an empty store and are stopped once every partition reported them finished;
ingest's group is deleted and the workers start again on the same data directories, and step 2
runs. (Setting the positions back to the beginnings instead made ingest read every event before
any person record, where a fresh group reads the persons first: 17% more flips at a small size.)
Otherwise the workers calculate the cohorts while they ingest (`bench.run_ingest
--calculate-while-ingesting`, every run before 2026-11-27 20:00 UTC); with `report_calculated`,
`calculated_s` then says when the last partition reported them finished, counted from the start
(waiting up to `_CALCULATED_WAIT_S` after the data set is consumed: the calculation outlasts the
fold). Callers that time their own recalculations afterwards (`bench.recalc_worker`,
`bench.recalc_burst`) leave it off and wait for the cohorts themselves.

It never reports a number it did not observe: no flips, a timeout or a dead worker is a PhaseError.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.calc_reports import FinishedReports
from bench.common import (
    Dataset,
    PhaseError,
    PhaseResult,
    message_counts,
    metric_sum,
    process_cpu_s,
    process_rss_bytes,
    spawn,
    stop_process,
    worker_committed,
)
from cli.demo_data import BROWSERS, COUNTRIES, EVENTS, PLANS
from cli.local_kafka import free_port, project_root
from cli.producer import json_producer
from cohorts.validate import normalise_filters
from cohorts.wire import CatalogRecord

__all__ = ["benchmark_cohorts", "measure_worker", "publish_catalog", "worker_unavailable"]

#: How long after the data set is consumed the workers may still take to finish calculating the
#: cohorts (`calculated_s`); beyond it the detail says "n/a".
_CALCULATED_WAIT_S = 600.0


# -- the cohort set -------------------------------------------------------------------------------

_WINDOWS = ((5, "minute"), (1, "hour"), (1, "day"), (7, "day"), (30, "day"))
_EVENT_NAMES = tuple(name for name, _ in EVENTS)


def _group(*values: dict[str, Any], kind: str = "AND") -> dict[str, Any]:
    return {"properties": {"type": kind, "values": list(values)}}


def _person(key: str, operator: str, value: Any) -> dict[str, Any]:
    return {"type": "person", "key": key, "operator": operator, "value": value}


def _behavioral(event: str, value: str, time_value: int, interval: str, **extra: Any) -> dict[str, Any]:
    return {"type": "behavioral", "key": event, "value": value, "event_type": "events",
            "time_value": time_value, "time_interval": interval, **extra}  # fmt: skip


def _browser_is(browser: str) -> dict[str, Any]:
    return {"type": "event", "key": "$browser", "operator": "exact", "value": browser}


def _families() -> list[list[tuple[str, dict[str, Any]]]]:
    """Every distinct cohort of each kind; `benchmark_cohorts` takes from the kinds in turn."""
    plans = sorted(set(PLANS))
    return [
        [(f"plan {o} {p}", _group(_person("plan", o, p))) for p in plans for o in ("exact", "is_not")],
        [(f"country {o} {c}", _group(_person("country", o, c))) for c in COUNTRIES for o in ("exact", "is_not")],
        [(f"older than {a}", _group(_person("age", "gt", a))) for a in range(20, 70, 5)],
        [
            (f"did {e} in {n} {u}", _group(_behavioral(e, "performed_event", n, u)))
            for (n, u), e in itertools.product(_WINDOWS, _EVENT_NAMES)
        ],
        [
            (
                f"did {e} {k}+ times in {n} days",
                _group(_behavioral(e, "performed_event_multiple", n, "day", operator="gte", operator_value=k)),
            )
            for k, n, e in itertools.product((2, 3, 5), (7, 30), _EVENT_NAMES)
        ],
        [
            (f"first {e} in {n} {u}", _group(_behavioral(e, "performed_event_first_time", n, u)))
            for (n, u), e in itertools.product(_WINDOWS[2:], ("signed_up", "checkout"))
        ],
        [
            (
                f"{b} users in {c} who viewed a page this week",
                _group(
                    _person("country", "exact", c),
                    _behavioral("$pageview", "performed_event", 7, "day", event_filters=[_browser_is(b)]),
                ),
            )
            for b, c in itertools.product(sorted(set(BROWSERS)), COUNTRIES)
        ],
        [
            (
                f"{p} plan or {k}+ checkouts in 30 days",
                _group(
                    _person("plan", "exact", p),
                    _behavioral("checkout", "performed_event_multiple", 30, "day", operator="gte", operator_value=k),
                    kind="OR",
                ),
            )
            for p, k in itertools.product(plans, (1, 2, 4))
        ],
    ]


def benchmark_cohorts(team_id: int, count: int = 100) -> list[CatalogRecord]:
    """`count` distinct dynamic cohorts (ids 1..count, version 1), a deterministic mix of kinds.

    Kinds are taken in turn, so any prefix of the set mixes them. Filters are stored as the api
    would store them (`normalise_filters`), so an invalid template fails here, before anything is
    measured. Raises ValueError when more cohorts are asked for than there are distinct ones.
    """
    interleaved = [c for group in itertools.zip_longest(*_families()) for c in group if c is not None]
    if count > len(interleaved):
        raise ValueError(f"at most {len(interleaved)} distinct benchmark cohorts, asked for {count}")
    return [
        CatalogRecord(id=cohort_id, team_id=team_id, version=1, name=name, filters=normalise_filters(filters))
        for cohort_id, (name, filters) in enumerate(interleaved[:count], start=1)
    ]


def publish_catalog(dataset: Dataset, records: list[CatalogRecord]) -> None:
    """Write the definitions to `cohort_catalog`, keyed by cohort id (as the api does)."""
    producer = json_producer(dataset.bootstrap)
    for record in records:
        producer.produce(dataset.topics.catalog, key=str(record.id).encode(), value=record.to_bytes())
    if producer.flush(30) != 0:
        raise PhaseError("could not publish the benchmark cohorts")


# -- is there a worker to measure? -----------------------------------------------------------------


def worker_unavailable() -> str | None:
    """None when `stream.app` imports and has `run_worker`, else why not (checked in a child
    process, so a broken or half-written worker cannot disturb the orchestrator)."""
    probe = "import stream.app as a, stream.__main__; assert callable(a.run_worker), 'no run_worker'"
    try:
        check = subprocess.run(
            [sys.executable, "-c", probe], cwd=project_root(), capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return "importing stream.app took over 120s"
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {check.returncode}"
    return None


# -- observing the worker through the broker --------------------------------------------------------


@dataclass
class _Progress:
    consumed: bool
    events_committed: int
    flips: int
    inputs: int


class _Observer:
    """Committed offsets of the worker's groups against the topics' ends, via one admin client."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.topics = dataset.topics
        self.admin = AdminClient({"bootstrap.servers": dataset.bootstrap})
        topics = self.topics
        self.inputs = [topics.events, topics.persons, topics.distinct_ids, topics.person_inputs]
        self.watched = [
            TopicPartition(t, p) for t in (*self.inputs, topics.membership_changed) for p in range(dataset.partitions)
        ]

    def _ends(self) -> dict[tuple[str, int], int]:
        futures = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in self.watched}, request_timeout=10)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

    def _committed(self) -> dict[tuple[str, int], int]:
        return worker_committed(self.admin, self.topics)

    def already_started(self) -> bool:
        """Whether a worker has consumed this data set before: its figures would be meaningless."""
        return bool(self._committed()) or self.progress().flips > 0

    def progress(self) -> _Progress:
        ends, committed = self._ends(), self._committed()
        committed_topics = {topic for topic, _ in committed}
        must_finish = [t for t in self.inputs if t == self.topics.events or t in committed_topics]
        consumed = all(
            committed.get((t, p), 0) >= ends[(t, p)] for t in must_finish for p in range(self.dataset.partitions)
        )
        events = self.topics.events
        return _Progress(
            consumed=consumed,
            events_committed=sum(committed.get((events, p), 0) for p in range(self.dataset.partitions)),
            flips=sum(ends[(self.topics.membership_changed, p)] for p in range(self.dataset.partitions)),
            inputs=sum(ends[(self.topics.person_inputs, p)] for p in range(self.dataset.partitions)),
        )


def _edge_timestamps_ms(bootstrap: str, topic: str, *, last: bool) -> list[int]:
    """CreateTime (ms) of each non-empty partition's first message, or of its last few (`last`)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-edges-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        assignment = []
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                assignment.append(TopicPartition(topic, partition, max(low, high - 20) if last else low))
        consumer.assign(assignment)
        pending = {tp.partition for tp in assignment}
        stamps: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            partition = message.partition()
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(partition)
                continue
            stamp = message.timestamp()[1]
            if last:
                stamps[partition] = max(stamp, stamps.get(partition, stamp))
            elif partition not in stamps:
                stamps[partition] = stamp
                pending.discard(partition)
        if pending:
            raise PhaseError(f"could not read the edges of {topic} (partitions {sorted(pending)})")
        return list(stamps.values())
    finally:
        consumer.close()


def measure_worker(
    dataset: Dataset,
    work_dir: Path,
    *,
    cohorts: int = 100,
    loop: str = "uvloop",
    timeout_s: float = 900.0,
    quiet_s: float = 5.0,
    workers: int = 1,
    after: Callable[[list[subprocess.Popen[bytes]]], None] | None = None,
    worker_args: Sequence[str] = (),
    calculated_first: bool = False,
    report_calculated: bool = False,
    broker_pid: int | None = None,
) -> PhaseResult:
    """Run `workers` worker processes (one consumer group) over the preloaded data set and time
    them to the last flip (steps in the module doc).

    Besides the rate it records, per worker, the peak resident set size (/proc VmRSS, sampled at
    every poll) and, just before stopping them, the RocksDB bytes each reports on /metrics
    (`cohorts_worker_state_bytes`), plus the bytes of every file under their data directories.
    `after`, when given, runs once the data set is consumed and measured, with the workers still
    running (bench.recalc_worker times a recalculation there); they are stopped when it returns.
    `worker_args` go to every worker's command line (its tuning knobs, `python -m stream --help`).
    `calculated_first`: calculate the cohorts before ingest reads anything; else, with
    `report_calculated`, report when they were calculated (module doc).
    `broker_pid`: a local broker's process; its CPU seconds over the same interval are reported
    (`broker_cpu_s`), since on one machine the broker shares the cores with the workers.
    """
    records = benchmark_cohorts(dataset.team_id, cohorts)
    versions = [(record.id, record.version) for record in records]
    observer = _Observer(dataset)
    if observer.already_started():
        raise PhaseError("a worker already ran on this data set (its group has offsets or flips exist); preload anew")
    publish_catalog(dataset, records)
    work_dir.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(workers)]
    calculation_s: float | None = None
    if calculated_first:
        calculation_s = _calculate_before_ingest(dataset, versions, work_dir, ports, loop, worker_args, timeout_s)
    processes = _start_workers(dataset, work_dir, ports, loop, worker_args, "worker")
    log_path = _log_path(work_dir, "worker", workers - 1, workers)
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    broker_samples: list[tuple[float, float]] = []
    peak_rss = [0] * workers
    topics = dataset.topics
    try:
        lag_zero_wall = _wait_until_done(
            processes, observer, started + timeout_s, quiet_s, log_path, samples, peak_rss, broker_pid, broker_samples
        )
        state_bytes = [_state_bytes(port) for port in ports]
        first_inputs = _edge_timestamps_ms(dataset.bootstrap, topics.person_inputs, last=False)
        last_flips = _edge_timestamps_ms(dataset.bootstrap, topics.membership_changed, last=True)
        counts = message_counts(
            dataset.bootstrap, [topics.membership_changed, topics.dead_letters, topics.person_inputs]
        )
        calculated_ms = (
            _last_finished_ms(dataset, versions, _CALCULATED_WAIT_S)
            if report_calculated and not calculated_first
            else None
        )
        if after is not None and first_inputs and last_flips:
            after(processes)
    finally:
        for process in processes:
            stop_process(process)
    disk_bytes = _tree_bytes(work_dir / "data")
    if not first_inputs:
        raise PhaseError(f"the worker wrote nothing to {topics.person_inputs}; see {log_path}")
    if not last_flips:
        raise PhaseError(f"the worker consumed everything but emitted no flips; see {log_path}")
    start_s, end_s = min(first_inputs) / 1000, max(last_flips) / 1000
    reported = [b for b in state_bytes if b is not None]
    calculation: dict[str, Any] = {}
    if calculation_s is not None:
        calculation["calculated_first"] = f"{calculation_s:.1f} s before"
    elif report_calculated:
        calculation["calculated_s"] = round(calculated_ms / 1000 - start_s, 1) if calculated_ms else "n/a"
    return PhaseResult(
        name="worker" if workers == 1 else f"worker x{workers}",
        events=dataset.events,
        seconds=round(end_s - start_s, 4),
        detail={
            "loop": loop,
            "workers": workers,
            "cohorts": len(records),
            "person_records": dataset.persons,
            "flips": counts[topics.membership_changed],
            "dead_letters": counts[topics.dead_letters],
            "person_inputs": counts[topics.person_inputs],
            "lag_zero_s": round(lag_zero_wall - start_s, 3),
            **calculation,
            "cpu_s": round(_cpu_at(samples, end_s) - _cpu_at(samples, start_s), 2),
            **(
                {"broker_cpu_s": round(_cpu_at(broker_samples, end_s) - _cpu_at(broker_samples, start_s), 2)}
                if broker_samples
                else {}
            ),
            "peak_rss_mb": "+".join(f"{b / 2**20:.0f}" for b in peak_rss),
            "state_mb": f"{sum(reported) / 2**20:.1f}" if reported else "n/a",
            "data_dir_mb": f"{disk_bytes / 2**20:.1f}",
            "log": str(log_path),
        },
    )


def _start_workers(
    dataset: Dataset, work_dir: Path, ports: list[int], loop: str, worker_args: Sequence[str], log_name: str
) -> list[subprocess.Popen[bytes]]:
    """One worker process per port, each on its own data directory under `work_dir` (kept across starts)."""
    processes = []
    for index, port in enumerate(ports):
        env = {
            "COHORTS_KAFKA_BOOTSTRAP": dataset.bootstrap,
            "COHORTS_TOPIC_PREFIX": dataset.prefix,
            "COHORTS_PARTITIONS": str(dataset.partitions),
            "COHORTS_DATA_DIR": str(work_dir / "data" / f"w{index}"),
            "COHORTS_WORKER_WEB_PORT": str(port),
            "F_LOOP": loop,
        }
        log_path = _log_path(work_dir, log_name, index, len(ports))
        processes.append(
            spawn(["-m", "stream", "--now-us", str(dataset.base_us), *worker_args], env=env, log_path=log_path)
        )
    return processes


def _log_path(work_dir: Path, log_name: str, index: int, workers: int) -> Path:
    """Worker `index`'s log: `<name>.log` when it runs alone, else `<name>-<index>.log`."""
    return work_dir / (f"{log_name}.log" if workers == 1 else f"{log_name}-{index}.log")


def _calculate_before_ingest(
    dataset: Dataset,
    versions: list[tuple[int, int]],
    work_dir: Path,
    ports: list[int],
    loop: str,
    worker_args: Sequence[str],
    timeout_s: float,
) -> float:
    """Run the workers with ingest's positions at the ends of the PostHog topics until every
    partition reported `versions` finished, stop them, and delete ingest's group, so the next
    start reads the PostHog topics from their beginnings, in the order a fresh group does.
    Returns the seconds that took."""
    _commit_ingest_positions(dataset)
    reports = FinishedReports(dataset.bootstrap, dataset.topics.calculation_reports)
    started = time.monotonic()
    processes = _start_workers(dataset, work_dir, ports, loop, worker_args, "calculate")
    try:
        reports.wait_finished(versions, dataset.partitions, timeout_s)
    except TimeoutError as exc:
        raise PhaseError(f"cohorts not calculated before ingest: {exc}; see {work_dir}/calculate*.log") from exc
    finally:
        for process in processes:
            stop_process(process)
        reports.close()
    elapsed = time.monotonic() - started
    _forget_ingest_group(dataset)
    return elapsed


def _commit_ingest_positions(dataset: Dataset, timeout_s: float = 90.0) -> None:
    """Commit ingest's group at the end of every PostHog topic partition: ingest reads nothing."""
    admin = AdminClient({"bootstrap.servers": dataset.bootstrap})
    topics = dataset.topics
    partitions = [
        TopicPartition(topic, p)
        for topic in (topics.events, topics.persons, topics.distinct_ids)
        for p in range(dataset.partitions)
    ]
    listed = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=10)
    positions = [TopicPartition(tp.topic, tp.partition, future.result().offset) for tp, future in listed.items()]
    request = ConsumerGroupTopicPartitions(topics.ingest_group, positions)
    _until_accepted(lambda: admin.alter_consumer_group_offsets([request], request_timeout=10), timeout_s)


def _forget_ingest_group(dataset: Dataset, timeout_s: float = 90.0) -> None:
    """Delete ingest's group, so the next start reads as a fresh one does (no position: earliest)."""
    admin = AdminClient({"bootstrap.servers": dataset.bootstrap})
    group = dataset.topics.ingest_group
    _until_accepted(lambda: admin.delete_consumer_groups([group], request_timeout=10), timeout_s)


def _until_accepted(request: Callable[[], dict[str, Any]], timeout_s: float) -> None:
    """Run an admin request on ingest's group until Kafka takes it: it refuses while the group has a
    member, and a stopped worker's consumer may still be leaving."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for future in request().values():
                future.result()
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise PhaseError(f"Kafka refused a change to ingest's group: {exc}") from exc
            time.sleep(1.0)


def _last_finished_ms(dataset: Dataset, versions: list[tuple[int, int]], timeout_s: float) -> int | None:
    """CreateTime of the last partition's `finished` report of `versions`, waiting up to `timeout_s`
    (the workers may still be calculating after the last flip); None if one is still missing."""
    reports = FinishedReports(dataset.bootstrap, dataset.topics.calculation_reports)
    try:
        finished = reports.wait_finished(versions, dataset.partitions, timeout_s)
    except TimeoutError:
        return None
    finally:
        reports.close()
    return max(f.create_ms for f in finished)


def _state_bytes(port: int) -> float | None:
    """Sum of `cohorts_worker_state_bytes` on a worker's /metrics; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return metric_sum(response.read().decode(), "cohorts_worker_state_bytes")
    except OSError:
        return None


def _tree_bytes(root: Path) -> int:
    """Bytes of every regular file under `root` (the workers' data directories, RocksDB included)."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) if root.is_dir() else 0


def _cpu_at(samples: list[tuple[float, float]], wall: float) -> float:
    """The worker's CPU seconds at `wall`, interpolated between the (wall, cpu) samples."""
    if not samples:
        return 0.0
    for (w0, c0), (w1, c1) in itertools.pairwise(samples):
        if w0 <= wall <= w1:
            return c0 + (c1 - c0) * (wall - w0) / (w1 - w0) if w1 > w0 else c0
    return samples[0][1] if wall < samples[0][0] else samples[-1][1]


def _wait_until_done(
    processes: list[subprocess.Popen[bytes]],
    observer: _Observer,
    deadline: float,
    quiet_s: float,
    log_path: Path,
    samples: list[tuple[float, float]],
    peak_rss: list[int],
    broker_pid: int | None = None,
    broker_samples: list[tuple[float, float]] | None = None,
) -> float:
    """Poll until consumed and quiet; returns the wall time the lag was first seen at zero.

    Appends (wall time, CPU seconds of all workers) to `samples`, the same of `broker_pid` to
    `broker_samples`, and raises each worker's entry of `peak_rss` to its resident set size, at
    every poll.
    """
    lag_zero_wall: float | None = None
    last_change = started = time.monotonic()
    last_seen: tuple[int, int] | None = None
    progress: _Progress | None = None
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise PhaseError(f"a worker exited with {process.returncode}; see {log_path}")
        cpus = [process_cpu_s(process.pid) for process in processes]
        if None not in cpus:
            samples.append((time.time(), sum(c for c in cpus if c is not None)))
        broker_cpu = process_cpu_s(broker_pid) if broker_pid is not None else None
        if broker_cpu is not None and broker_samples is not None:
            broker_samples.append((time.time(), broker_cpu))
        for index, process in enumerate(processes):
            peak_rss[index] = max(peak_rss[index], process_rss_bytes(process.pid) or 0)
        progress = observer.progress()
        now = time.monotonic()
        if (progress.flips, progress.inputs) != last_seen:
            last_seen, last_change = (progress.flips, progress.inputs), now
        if progress.consumed:
            lag_zero_wall = lag_zero_wall or time.time()
            if now - last_change >= quiet_s:
                return lag_zero_wall
        else:
            lag_zero_wall = None
        time.sleep(0.5)
    done = f"{progress.events_committed:,} of {observer.dataset.events:,} events committed" if progress else "nothing"
    raise PhaseError(
        f"the worker did not finish within {time.monotonic() - started:.0f}s ({done}, "
        f"{progress.flips if progress else 0:,} flips so far); see {log_path}"
    )
