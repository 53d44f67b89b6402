"""Benchmark 3 on the real path: a worker holding N persons, a new cohort in the catalog, time until
every partition's `finished` calculation report.

    .venv/bin/python -m bench.recalc_worker --persons 100000 --events 100000

`bench.recalc` measures the recalculation loop in one process (no Kafka, no faust); this runs the
system as deployed: one worker (`python -m stream`, clock fixed at the data set's end by
`--now-us`) folds a preloaded data set (`bench.preload`: `--persons` person records, then
`--events` events) with the 100 benchmark cohorts active (`bench.ingest.measure_worker`, which also
reports its ingest rate, peak RSS and RocksDB bytes). Then, with the worker idle, each cohort of
`bench.recalc.NEW_COHORTS` is written to `cohort_catalog` in turn (ids 1001..), and the time runs
from that record's CreateTime to the CreateTime of the last partition's `finished` report on
`cohort_calculation_reports` (the catalog follower, the recalculate fan-out to every control
partition, the scan of every person and the flips are all inside it).

Prints and appends to docs/benchmarks.md (unless `--no-report`): per cohort, seconds to final,
persons per second, members (the sum of the partitions' counts) and the spread of partition
finishes. Never: reads the worker's state other than through the broker and its /metrics.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Message

from bench.calc_reports import FinishedReports, last_finished_ms
from bench.common import Dataset, PhaseResult, add_output_arguments, delete_prefixed_topics, local_broker, new_run
from bench.ingest import measure_worker
from bench.preload import described, preload
from bench.recalc import NEW_COHORTS
from bench.report import load_average, machine_info, publish, results_table
from cli.producer import json_producer
from cohorts.settings import Settings
from cohorts.validate import normalise_filters
from cohorts.wire import CatalogRecord

__all__ = ["Recalculation", "main"]


@dataclass(frozen=True, slots=True)
class Recalculation:
    """One new cohort's recalculation as the broker saw it."""

    name: str
    cohort_id: int
    published_ms: int
    first_finished_ms: int
    last_finished_ms: int
    members: int
    load: str

    @property
    def seconds(self) -> float:
        return (self.last_finished_ms - self.published_ms) / 1000


def _publish(dataset: Dataset, record: CatalogRecord) -> int:
    """Produce the record and return its CreateTime (ms) from the delivery report."""
    stamps: list[int] = []

    def delivered(error: object, message: Message) -> None:
        if error is None:
            stamps.append(message.timestamp()[1])

    producer = json_producer(dataset.bootstrap)
    producer.produce(
        dataset.topics.catalog, key=str(record.id).encode(), value=record.to_bytes(), on_delivery=delivered
    )
    producer.flush(30)
    if not stamps:
        raise RuntimeError(f"could not publish cohort {record.id}")
    return stamps[0]


def recalculate_each(dataset: Dataset, timeout_s: float) -> list[Recalculation]:
    """Publish each new cohort, one at a time, and wait for every partition's finished report."""
    reports = FinishedReports(dataset.bootstrap, dataset.topics.calculation_reports)
    found = []
    try:
        for n, (name, filters) in enumerate(NEW_COHORTS.items()):
            cohort_id = 1_001 + n
            record = CatalogRecord(
                id=cohort_id, team_id=dataset.team_id, version=1, name=name, filters=normalise_filters(filters)
            )
            load = load_average()
            published_ms = _publish(dataset, record)
            finished = reports.wait_finished([(cohort_id, 1)], dataset.partitions, timeout_s)
            result = Recalculation(
                name=name,
                cohort_id=cohort_id,
                published_ms=published_ms,
                first_finished_ms=min(f.create_ms for f in finished),
                last_finished_ms=last_finished_ms(finished),
                members=sum(f.report.count or 0 for f in finished),
                load=load,
            )
            print(f"  {name}: final after {result.seconds:.2f} s, {result.members:,} members", flush=True)
            found.append(result)
            time.sleep(2)
    finally:
        reports.close()
    return found


def _section(
    command: str, dataset: Dataset, machine: dict[str, str], ingest: PhaseResult, found: list[Recalculation]
) -> str:
    lines = [
        f"## Recalculation through the worker (benchmark 3), {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Command: `{command}`",
        "",
        f"One worker (`python -m stream`, clock fixed at the data set's end) folded {dataset.persons:,} person "
        f"records and {dataset.events:,} events ({dataset.partitions} partitions, seed {dataset.seed}) with 100 "
        "active cohorts; then each new cohort was written to `cohort_catalog`, one at a time. Time = the catalog "
        "record's CreateTime to the CreateTime of the last partition's `finished` report; real Kafka, real faust.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        "",
        "The fold before it:",
        "",
        results_table([ingest]),
        "",
        "| new cohort | persons held | seconds to final | persons/s | s per 1M persons | members "
        "| first -> last partition finished, s | load average at publish |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in found:
        per_s = dataset.persons / r.seconds if r.seconds > 0 else float("inf")
        lines.append(
            f"| {r.name} | {dataset.persons:,} | {r.seconds:.2f} | {per_s:,.0f} | {1e6 / per_s:,.1f} | {r.members:,} "
            f"| {(r.last_finished_ms - r.first_finished_ms) / 1000:.2f} | {r.load} |"
        )
    worst = max((r.seconds for r in found), default=None)
    if worst is not None:
        per_million = worst * 1e6 / dataset.persons
        met = "met" if per_million < 30 else "NOT met"
        lines += [
            "",
            f"- Target (1,000,000 persons final in < 30 s): {met} by linear extrapolation of the slowest cohort "
            f"({per_million:.1f} s per 1,000,000 persons; measured at {dataset.persons:,}).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recalc_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker-timeout-s", type=float, default=900.0, help="deadline of the fold")
    parser.add_argument("--recalc-timeout-s", type=float, default=600.0, help="deadline of each recalculation")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    run_dir, command = new_run(args.results_dir, "recalc-worker", "bench.recalc_worker", argv)
    found: list[Recalculation] = []
    configured = Settings().kafka_bootstrap
    with local_broker(run_dir, configured) as broker:
        dataset = preload(described(args, broker.bootstrap))

        def after(_processes: list[subprocess.Popen[bytes]]) -> None:
            found.extend(recalculate_each(dataset, args.recalc_timeout_s))

        print("worker folding the data set ...", flush=True)
        ingest = measure_worker(dataset, run_dir / "worker", timeout_s=args.worker_timeout_s, after=after)
        print(results_table([ingest]), flush=True)
        machine = machine_info(broker.kafka_version)
        if configured:
            delete_prefixed_topics(broker.bootstrap, dataset.prefix)
    shutil.rmtree(run_dir / "worker" / "data", ignore_errors=True)
    section = _section(command, dataset, machine, ingest, found)
    publish(section, run_dir, None if args.no_report else args.report)


if __name__ == "__main__":
    main()
