"""Benchmark 4: exit lag, how long after a window edge the worker's `left` flip arrives.

    .venv/bin/python -m bench.exit_lag                       # 300 persons, edges over 120 s
    .venv/bin/python -m bench.exit_lag --persons 50 --spread 30 --partitions 4 --no-report

A person leaves a "did X in the last ..." cohort with no event of theirs: the worker's leader
sends a tick to every control partition every `tick_interval_s` (10 s default) and each tick
re-evaluates the persons whose deadline has passed (design §5). This measures that path end to
end, with the worker on its real (wall) clock:

1. Fresh topics (`--partitions`), `--background` cohorts from `bench.ingest.benchmark_cohorts`,
   and two exit cohorts on the event `bench_exit`:
   - *exact*: `performed_event` with `explicit_datetime: "-1h"`, not bucketed (design §4.1), so a
     person whose event is at t leaves at exactly t + 1 h (`exact_edge_us`);
   - *bucketed*: `performed_event` in the last 60 minutes, minute buckets from the epoch; the
     window is the inclusive range [B - 60, B] of now's bucket B (design §4), so the person leaves
     at the start of the event's bucket + 61 (`bucket_edge_us`): edges fall on minute boundaries only.
2. One worker (`python -m stream --tick-interval ...`, no clock file); the run waits until every
   partition reported both exit cohorts calculated.
3. `--persons` new persons each send one `bench_exit` event stamped 1 h before their edge. The
   exact edges are spread evenly over `--spread` seconds starting `--lead` seconds after the
   events are produced, so they fall at every phase of the tick.
4. A consumer of `cohort_membership_changed` records, per person and cohort, the `entered` flip and
   then the `left` flip: the wall time it was received and its CreateTime (when the worker sent it).
   Lag = that instant minus the edge. Persons whose flips did not arrive within `--drain` seconds of
   the last edge are counted as missing (a missing exit fails the target whatever the percentiles).

Report: p50/p95/max per cohort and per instant, the target (< 60 s), the tick interval, the
worker's CPU and the load averages; appended to docs/benchmarks.md unless `--no-report`.
Never: moves the worker's clock, or reads anything of the worker but the broker.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.calc_reports import FinishedReports
from bench.common import (
    add_output_arguments,
    delete_prefixed_topics,
    local_broker,
    new_run,
    process_cpu_s,
    spawn,
    stop_process,
)
from bench.ingest import benchmark_cohorts
from bench.latency_probes import TopicWatcher, percentile
from bench.report import load_average, machine_info, publish
from cli.demo_data import clickhouse_time
from cli.local_kafka import free_port
from cli.producer import json_producer, produce_json
from cohorts.settings import Settings
from cohorts.topics import Topics
from cohorts.validate import normalise_filters
from cohorts.wire import CatalogRecord, MembershipChange
from infra.kafka_admin import ensure_topics

__all__ = ["EXIT_EVENT", "bucket_edge_us", "exact_edge_us", "exit_cohorts", "lag_summary", "main"]

EXIT_EVENT = "bench_exit"
WINDOW_S = 3600
_MINUTE_US = 60_000_000
EXACT_ID, BUCKETED_ID = 901, 902


def exact_edge_us(event_us: int, window_s: int = WINDOW_S) -> int:
    """The first instant the exact (`explicit_datetime: "-1h"`) cohort no longer holds the person.

    Member while event_us >= now - window (inclusive, to the microsecond), so out from event + window + 1 µs.
    """
    return event_us + window_s * 1_000_000 + 1


def bucket_edge_us(event_us: int, minutes: int = WINDOW_S // 60) -> int:
    """The first instant the bucketed ("last 60 minutes") cohort no longer holds the person: the
    window is the inclusive bucket range [B - minutes, B] of now's minute bucket B (design §4)."""
    return (event_us // _MINUTE_US + minutes + 1) * _MINUTE_US


def exit_cohorts(team_id: int) -> list[CatalogRecord]:
    """The two cohorts whose exits are measured (ids 901 exact, 902 bucketed)."""
    base = {"type": "behavioral", "key": EXIT_EVENT, "value": "performed_event", "event_type": "events"}
    exact = {**base, "explicit_datetime": f"-{WINDOW_S // 3600}h"}
    bucketed = {**base, "time_value": WINDOW_S // 60, "time_interval": "minute"}
    return [
        CatalogRecord(
            id=cohort_id,
            team_id=team_id,
            version=1,
            name=name,
            filters=normalise_filters({"properties": {"type": "AND", "values": [leaf]}}),
        )
        for cohort_id, name, leaf in (
            (EXACT_ID, "exit exact -1h", exact),
            (BUCKETED_ID, "exit last 60 minutes", bucketed),
        )
    ]


@dataclass
class _Person:
    person_id: str
    event_us: int
    edges_us: dict[int, int]
    #: cohort id -> (received wall µs, CreateTime µs) of each status
    entered: dict[int, tuple[int, int]] = field(default_factory=dict)
    left: dict[int, tuple[int, int]] = field(default_factory=dict)


def lag_summary(lags_ms: list[float]) -> dict[str, float | None]:
    """p50, p95 and max of lags in ms (None each when there are none)."""
    if not lags_ms:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": percentile(lags_ms, 50), "p95": percentile(lags_ms, 95), "max": max(lags_ms)}


class _Flips:
    """Every flip of the exit cohorts, by person; thread-safe (the watcher thread writes)."""

    def __init__(self, persons: dict[str, _Person]) -> None:
        self.persons = persons
        self.lock = threading.Lock()
        self.unexpected = 0

    def on_message(self, _key: bytes | None, value: bytes | None, create_ms: int, seen_s: float) -> None:
        if value is None:
            return
        change = MembershipChange.from_bytes(value)
        if change.cohort_id not in (EXACT_ID, BUCKETED_ID):
            return
        with self.lock:
            person = self.persons.get(change.person_id)
            if person is None:
                self.unexpected += 1
                return
            target = person.entered if change.status == "entered" else person.left
            target.setdefault(change.cohort_id, (int(seen_s * 1e6), create_ms * 1000))

    def left_count(self) -> int:
        with self.lock:
            return sum(len(p.left) for p in self.persons.values())


def _event(team_id: int, person: _Person, created_us: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "event": EXIT_EVENT,
        "properties": "{}",
        "timestamp": clickhouse_time(person.event_us),
        "team_id": team_id,
        "project_id": team_id,
        "distinct_id": f"d-{person.person_id[:8]}",
        "person_id": person.person_id,
        "elements_chain": "",
        "created_at": clickhouse_time(created_us),
        "person_mode": "full",
    }


def _run(args: argparse.Namespace, bootstrap: str, work_dir: Path) -> dict[str, Any]:
    team_id = 1
    topics = Topics(prefix=f"exit{uuid.uuid4().hex[:8]}_", partitions=args.partitions)
    ensure_topics(bootstrap, topics.specs())
    records = (
        [*benchmark_cohorts(team_id, args.background), *exit_cohorts(team_id)]
        if args.background
        else exit_cohorts(team_id)
    )
    producer = json_producer(bootstrap)
    for record in records:
        producer.produce(topics.catalog, key=str(record.id).encode(), value=record.to_bytes())
    producer.flush(30)
    env = {
        "COHORTS_KAFKA_BOOTSTRAP": bootstrap,
        "COHORTS_TOPIC_PREFIX": topics.prefix,
        "COHORTS_PARTITIONS": str(args.partitions),
        "COHORTS_DATA_DIR": str(work_dir / "data"),
        "COHORTS_WORKER_WEB_PORT": str(free_port()),
    }
    log_path = work_dir / "worker.log"
    worker = spawn(["-m", "stream", "--tick-interval", str(args.tick_interval)], env=env, log_path=log_path)
    reports = FinishedReports(bootstrap, topics.calculation_reports)
    loads = [("start", load_average())]
    try:
        reports.wait_finished([(EXACT_ID, 1), (BUCKETED_ID, 1)], args.partitions, timeout_s=300)
        now_us = time.time_ns() // 1000
        first_edge_us = now_us + int(args.lead * 1e6)
        persons: dict[str, _Person] = {}
        for index in range(args.persons):
            edge = first_edge_us + int(args.spread * 1e6 * index / max(args.persons - 1, 1))
            event_us = edge - WINDOW_S * 1_000_000 - 1
            person = _Person(str(uuid.uuid4()), event_us, {})
            person.edges_us = {EXACT_ID: exact_edge_us(event_us), BUCKETED_ID: bucket_edge_us(event_us)}
            persons[person.person_id] = person
        flips = _Flips(persons)
        watcher = TopicWatcher(bootstrap, topics.membership_changed, flips.on_message)
        watcher.start()
        cpu_before = process_cpu_s(worker.pid)
        for person in persons.values():
            produce_json(producer, topics.events, person.person_id, _event(team_id, person, now_us))
        producer.flush(30)
        produced_us = time.time_ns() // 1000
        loads.append(("events produced", load_average()))
        last_edge_us = max(edge for p in persons.values() for edge in p.edges_us.values())
        deadline = last_edge_us / 1e6 + args.drain
        expected = 2 * len(persons)
        while time.time() < deadline and flips.left_count() < expected:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log_path}")
            time.sleep(0.5)
        cpu_after = process_cpu_s(worker.pid)
        watcher.stop()
        loads.append(("end", load_average()))
    finally:
        reports.close()
        stop_process(worker)
    return {
        "persons": persons,
        "unexpected": flips.unexpected,
        "produced_after_s": (produced_us - now_us) / 1e6,
        "first_edge_after_s": (first_edge_us - now_us) / 1e6,
        "worker_cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        "window_s": (last_edge_us - now_us) / 1e6,
        "loads": loads,
        "topics": topics,
    }


def _rows(persons: dict[str, _Person]) -> list[tuple[str, int, int, int, dict[str, Any], dict[str, Any]]]:
    rows = []
    for cohort_id, name in ((EXACT_ID, "exact (-1h, edges spread)"), (BUCKETED_ID, "bucketed (60 minutes)")):
        received, sent = [], []
        missing = entered_missing = 0
        for person in persons.values():
            if cohort_id not in person.entered:
                entered_missing += 1
            left = person.left.get(cohort_id)
            if left is None:
                missing += 1
                continue
            edge = person.edges_us[cohort_id]
            received.append((left[0] - edge) / 1000)
            sent.append((left[1] - edge) / 1000)
        edges = len({p.edges_us[cohort_id] for p in persons.values()})
        rows.append((name, edges, missing, entered_missing, lag_summary(received), lag_summary(sent)))
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _section(args: argparse.Namespace, command: str, machine: dict[str, str], found: dict[str, Any]) -> str:
    persons = found["persons"]
    rows = _rows(persons)
    lines = [
        f"## Exit lag (benchmark 4), {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Command: `{command}`",
        "",
        f"{len(persons):,} new persons, one `{EXIT_EVENT}` event each, stamped so that their exact edges fall "
        f"{found['first_edge_after_s']:.0f} s to {found['first_edge_after_s'] + args.spread:.0f} s after the "
        f"events were produced (all produced within {found['produced_after_s']:.2f} s); one worker on its wall clock, "
        f"tick every {args.tick_interval:g} s, {args.partitions} partitions, {args.background} background cohorts "
        f"(`bench.ingest.benchmark_cohorts`) and no other load from this benchmark. Lag = the `left` flip's instant "
        "minus the edge (first instant the person is out).",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "| cohort | persons | distinct edges | entered missing | left missing "
        "| edge -> received p50 ms | p95 ms | max ms | edge -> sent (CreateTime) p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    worst: float | None = None
    missing_total = 0
    for name, edges, missing, entered_missing, received, sent in rows:
        lines.append(
            f"| {name} | {len(persons):,} | {edges:,} | {entered_missing:,} | {missing:,} | {_fmt(received['p50'])} "
            f"| {_fmt(received['p95'])} | {_fmt(received['max'])} | {_fmt(sent['p50'])} | {_fmt(sent['p95'])} "
            f"| {_fmt(sent['max'])} |"
        )
        missing_total += missing
        if received["max"] is not None:
            worst = max(worst or received["max"], received["max"])
    met = worst is not None and worst < 60_000 and missing_total == 0
    verdict = "met" if met else "NOT met"
    lines += [
        "",
        f"- Target (exit lag < 60 s): {verdict}: worst edge -> received {_fmt(worst)} ms, "
        f"{missing_total} exits missing.",
    ]
    if found["worker_cpu_s"] is not None:
        lines.append(f"- Worker CPU from the events' production to the end: {found['worker_cpu_s']:.1f} s.")
    if found["unexpected"]:
        lines.append(f"- {found['unexpected']} flips of the exit cohorts for persons this run did not create.")
    lines.append("- Load average (1, 5, 15 min): " + "; ".join(f"{n}: {v}" for n, v in found["loads"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exit_lag", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=300)
    parser.add_argument("--lead", type=float, default=30.0, help="seconds from producing to the first edge")
    parser.add_argument("--spread", type=float, default=120.0, help="seconds the exact edges are spread over")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds after the last edge to wait")
    parser.add_argument("--tick-interval", type=float, default=10.0, help="the worker's tick interval (seconds)")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--background", type=int, default=20, help="background cohorts (0: none)")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    work_dir, command = new_run(args.results_dir, "exit-lag", "bench.exit_lag", argv)
    configured = Settings().kafka_bootstrap
    with local_broker(work_dir, configured) as broker:
        found = _run(args, broker.bootstrap, work_dir)
        machine = machine_info(broker.kafka_version)
        if configured:
            delete_prefixed_topics(broker.bootstrap, found["topics"].prefix)
    shutil.rmtree(work_dir / "data", ignore_errors=True)
    section = _section(args, command, machine, found)
    persons = found["persons"]
    (work_dir / "persons.json").write_bytes(
        orjson.dumps([p.__dict__ for p in persons.values()], option=orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2)
    )
    publish(section, work_dir, None if args.no_report else args.report)


if __name__ == "__main__":
    main()
