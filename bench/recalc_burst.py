"""Benchmark: many new cohorts created together, recalculated by one worker through the broker.

    .venv/bin/python -m bench.recalc_burst --persons 20000 --events 20000 --cohorts 50

Like `bench.recalc_worker` (one worker folds a preloaded data set with the 100 benchmark cohorts
active, `bench.ingest.measure_worker`, clock fixed at the data set's end), but then, once the worker
is idle (the fold done, and its recalculations of the 100 cohorts it found at start finished too:
how long after the fold that took is reported), `--cohorts` new cohorts (ids 2001.., a
deterministic mix of person-property, behavioural and cohort-reference definitions,
`burst_cohorts`) are written to `cohort_catalog` in one flush, as a bulk import through the api
would. The time runs from the first record's CreateTime to the
CreateTime of the last `finished` report of any of them on any partition. Also measured: the
worker's CPU seconds over that time (/proc), and, when the worker exports it, how many partition
scans the recalculations took (`cohorts_worker_recalculation_scans_total` on /metrics: one per
cohort and partition when each recalculation scans alone, fewer when consecutive ones share a scan).

Prints and appends to docs/benchmarks.md (unless `--no-report`): seconds to final, CPU seconds,
scans, and the members of every cohort (the sum of its partitions' counts; the same data set and
seed give the same members, so two builds can be compared). Never: reads the worker's state other
than through the broker and its /metrics.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from bench.calc_reports import FinishedReports, last_finished_ms
from bench.common import (
    Dataset,
    PhaseResult,
    add_output_arguments,
    delete_prefixed_topics,
    local_broker,
    metric_sum,
    new_run,
    process_cpu_s,
)
from bench.ingest import measure_worker
from bench.preload import described, preload
from bench.report import load_average, machine_info, publish, results_table
from cli.producer import json_producer
from cohorts.settings import Settings
from cohorts.validate import normalise_filters
from cohorts.wire import CatalogRecord

__all__ = ["Burst", "burst_cohorts", "main"]

#: Ids of the new cohorts start here (the benchmark cohorts are 1..100).
FIRST_ID = 2_001
_COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP")
_PLANS = ("free", "pro", "enterprise")


@dataclass(frozen=True, slots=True)
class Burst:
    """The recalculation of cohorts written together, as the broker and the worker saw it."""

    cohorts: int
    published_ms: int
    last_finished_ms: int
    cpu_s: float | None
    scans: float | None
    members: dict[int, int]
    errors: int
    load: str
    #: How long, after the fold was done, the worker still worked on recalculating the 100 benchmark
    #: cohorts it found in the catalog at start (their last `finished` report), before the burst.
    startup_backlog_s: float

    @property
    def seconds(self) -> float:
        return (self.last_finished_ms - self.published_ms) / 1000


def _definition(n: int) -> dict[str, Any]:
    kind = n % 3
    if kind == 0:
        values = [
            {"type": "person", "key": "country", "operator": "exact", "value": _COUNTRIES[n % len(_COUNTRIES)]},
            {"type": "person", "key": "age", "operator": "gt", "value": 18 + n % 50},
        ]
        return {"properties": {"type": "AND", "values": values}}
    if kind == 1:
        behavioural = {
            "type": "behavioral",
            "key": "$pageview",
            "value": "performed_event_multiple",
            "event_type": "events",
            "time_value": 1 + n % 7,
            "time_interval": "day",
            "operator": "gte",
            "operator_value": 1 + n % 4,
        }
        return {"properties": {"type": "AND", "values": [behavioural]}}
    values = [
        {"type": "cohort", "key": "id", "value": 1 + n % 10},
        {"type": "person", "key": "plan", "operator": "exact", "value": _PLANS[n % len(_PLANS)]},
    ]
    return {"properties": {"type": "OR", "values": values}}


def burst_cohorts(team_id: int, count: int) -> list[CatalogRecord]:
    """`count` new cohorts (ids FIRST_ID.., version 1), kinds taken in turn, stored as the api would."""
    return [
        CatalogRecord(
            id=FIRST_ID + n, team_id=team_id, version=1, name=f"burst {n}", filters=normalise_filters(_definition(n))
        )
        for n in range(count)
    ]


def _publish_together(dataset: Dataset, records: list[CatalogRecord]) -> int:
    """Produce every record in one flush; the CreateTime (ms) of the first."""
    stamps: list[int] = []

    def delivered(error: object, message: Message) -> None:
        if error is None:
            stamps.append(message.timestamp()[1])

    producer = json_producer(dataset.bootstrap)
    for record in records:
        producer.produce(
            dataset.topics.catalog, key=str(record.id).encode(), value=record.to_bytes(), on_delivery=delivered
        )
    producer.flush(30)
    if len(stamps) != len(records):
        raise RuntimeError(f"published {len(stamps)} of {len(records)} cohorts")
    return min(stamps)


def _web_port(pid: int) -> int | None:
    """The worker's /metrics port, read from its environment (bench.ingest sets it)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for entry in environ:
        if entry.startswith(b"COHORTS_WORKER_WEB_PORT="):
            return int(entry.split(b"=", 1)[1])
    return None


def _scans(pid: int) -> float | None:
    port = _web_port(pid)
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            exposition = response.read().decode()
    except OSError:
        return None
    return metric_sum(exposition, "cohorts_worker_recalculation_scans_total")


def recalculate_together(dataset: Dataset, count: int, pid: int, timeout_s: float) -> Burst:
    records = burst_cohorts(dataset.team_id, count)
    reports = FinishedReports(dataset.bootstrap, dataset.topics.calculation_reports)
    try:
        waited = time.monotonic()
        reports.wait_finished([(c, 1) for c in range(1, 101)], dataset.partitions, timeout_s)
        startup_backlog_s = time.monotonic() - waited
        time.sleep(2)
        load = load_average()
        scans_before = _scans(pid)
        cpu_before = process_cpu_s(pid)
        published_ms = _publish_together(dataset, records)
        finished = reports.wait_finished([(r.id, 1) for r in records], dataset.partitions, timeout_s)
        cpu_after = process_cpu_s(pid)
        time.sleep(1)  # let /metrics catch up with the last report
        scans_after = _scans(pid)
    finally:
        reports.close()
    members: dict[int, int] = {}
    for found in finished:
        members[found.report.cohort_id] = members.get(found.report.cohort_id, 0) + (found.report.count or 0)
    return Burst(
        cohorts=count,
        published_ms=published_ms,
        last_finished_ms=last_finished_ms(finished),
        cpu_s=None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2),
        scans=None if scans_before is None or scans_after is None else scans_after - scans_before,
        members=members,
        errors=sum(1 for f in finished if f.report.error),
        load=load,
        startup_backlog_s=round(startup_backlog_s, 1),
    )


def _section(command: str, dataset: Dataset, machine: dict[str, str], fold: PhaseResult, burst: Burst) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scans = "not exported by this build" if burst.scans is None else f"{burst.scans:,.0f}"
    cpu = "n/a" if burst.cpu_s is None else f"{burst.cpu_s:.2f}"
    members = ", ".join(f"{cohort}: {n}" for cohort, n in sorted(burst.members.items()))
    lines = [
        f"## {burst.cohorts} cohorts created together, recalculated through the worker, {stamp}",
        "",
        f"Command: `{command}`",
        "",
        f"One worker (`python -m stream`, clock fixed at the data set's end) folded {dataset.persons:,} person "
        f"records and {dataset.events:,} events ({dataset.partitions} partitions, seed {dataset.seed}) with 100 "
        f"active cohorts; then {burst.cohorts} new cohorts were written to `cohort_catalog` in one flush. Time = "
        "the first record's CreateTime to the CreateTime of the last partition's last `finished` report.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "The fold before it (the 100 benchmark cohorts are recalculated as the worker starts):",
        "",
        results_table([fold]),
        "",
        "| cohorts | persons held | seconds to final | worker CPU s | partition scans | reports with an error "
        "| load average at publish |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {burst.cohorts} | {dataset.persons:,} | {burst.seconds:.2f} | {cpu} | {scans} | {burst.errors} "
        f"| {burst.load} |",
        "",
        f"- The worker was still recalculating the 100 cohorts it found at start for {burst.startup_backlog_s:.1f} s "
        "after the fold was done; the burst was published after that.",
        f"- Members per cohort: {members}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recalc_burst", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--cohorts", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker-timeout-s", type=float, default=900.0, help="deadline of the fold")
    parser.add_argument("--recalc-timeout-s", type=float, default=600.0, help="deadline of the recalculations")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    run_dir, command = new_run(args.results_dir, "recalc-burst", "bench.recalc_burst", argv)
    found: list[Burst] = []
    configured = Settings().kafka_bootstrap
    with local_broker(run_dir, configured) as broker:
        dataset = preload(described(args, broker.bootstrap))

        def after(processes: list[subprocess.Popen[bytes]]) -> None:
            found.append(recalculate_together(dataset, args.cohorts, processes[0].pid, args.recalc_timeout_s))

        print("worker folding the data set ...", flush=True)
        fold = measure_worker(dataset, run_dir / "worker", timeout_s=args.worker_timeout_s, after=after)
        print(results_table([fold]), flush=True)
        machine = machine_info(broker.kafka_version)
        if configured:
            delete_prefixed_topics(broker.bootstrap, dataset.prefix)
    shutil.rmtree(run_dir / "worker" / "data", ignore_errors=True)
    if not found:
        raise SystemExit("the worker did not get as far as the new cohorts; see the run directory")
    publish(_section(command, dataset, machine, fold, found[0]), run_dir, None if args.no_report else args.report)


if __name__ == "__main__":
    main()
