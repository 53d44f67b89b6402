"""Benchmark: recalculating one new cohort over 1,000,000 persons held in state, in one process.

    .venv/bin/python -m bench.recalc                          # 1,000,000 persons, 16 partitions
    .venv/bin/python -m bench.recalc --persons 100000 --mode both
    .venv/bin/python -m bench.recalc --processes 2            # two processes, 8 partitions each

In process, no Kafka and no faust: the person records sit in RocksDB partitions opened with the
worker's options (`stream.runtime.ROCKSDB_OPTIONS`, through faust's `RocksDBOptions`) and are read,
folded and written through `stream.state.store.PersonStore`, exactly as the control agent's
`recalculate` does for each partition (stream/agents/control.py), minus producing flips (counted),
the changelog messages of the writes (counted) and yielding to the event loop. A worker holding all
partitions does the same work one partition after the other, so the sum over partitions is what one
worker process spends.

The records are realistic, not random: `bench.fold_micro` folds `--templates` demo persons and
their events (fixed clock, 100 cohorts) into records, and the 1,000,000 keys each get one of them
(a record holds no person id). Keys are spread over partitions by crc32 (placement does not change
the work). Then new cohorts are added to the catalog, one at a time, and each is recalculated:

- `fast` (this build): a sketch of every record (`stream.state.codec.sketch`), settled and written
  back only where the cohort changes it, through `stream.control_batches.recalculate_sketch` with a
  run of one, as the control agent does;
- `full`: the algorithm before it: every record decoded and every cohort of the team re-evaluated
  (`fold.reevaluate(..., cohorts=None)`) and encoded again; it counts the records it would write but
  writes none, so the fast mode after it starts from the same state (the write is not timed). Slow:
  by default it runs on the first `--full-sample` persons of each partition and the total is
  extrapolated (said so).

`--reannounce` then recalculates every cohort of the team again (the 100 active ones and the new
ones), in runs of `stream.control_batches.RUN_MAX` through `recalculate_sketch`, one scan per run,
as a worker does when every cohort is announced at once (a fresh announcer group after an upgrade,
or many cohorts created together). Every record was already evaluated with them, so nothing changes:
this times the checks alone. One process only.

The load is flushed and compacted before anything is timed: a worker's state has settled long
before a cohort is created. Until 2026-11-28 the first cohort's scan shared the machine with the
compactions the load had started, in the same process.

`--processes N` shares the partitions among N spawned processes (every N-th partition each), as the
workers of one consumer group share them; the fast mode then runs in all of them at once and a cohort
is final when the slowest has finished. Nothing is sent to a broker here, so on a machine that also
runs one, workers would have less of it than these processes have.

Prints persons per second, seconds per 1,000,000 persons, records written, members, and the process's
peak RSS (which includes the RocksDB caches and memtables of every partition).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import resource
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions

import bench.fold_micro as micro
from bench.common import DEFAULT_BASE_US
from cohorts.topics import Topics
from cohorts.validate import normalise_filters
from cohorts.wire import CatalogRecord
from stream import fold
from stream.catalog import Catalog
from stream.control_batches import RUN_MAX, Recalculation, recalculate_sketch
from stream.runtime import ROCKSDB_OPTIONS
from stream.state.record import SOURCE_CONTROL
from stream.state.store import PersonStore

__all__ = ["NEW_COHORTS", "run"]

#: The cohorts recalculated, one at a time: a person property, a behavioural condition on a matcher
#: already held, and one referring to an existing cohort (so its dependants' machinery runs).
NEW_COHORTS: dict[str, dict[str, Any]] = {
    "person property": {
        "properties": {
            "type": "AND",
            "values": [
                {"type": "person", "key": "country", "operator": "exact", "value": "DE"},
                {"type": "person", "key": "age", "operator": "gt", "value": 40},
            ],
        }
    },
    "behavioural": {
        "properties": {
            "type": "AND",
            "values": [
                {
                    "type": "behavioral",
                    "key": "$pageview",
                    "value": "performed_event_multiple",
                    "event_type": "events",
                    "time_value": 7,
                    "time_interval": "day",
                    "operator": "gte",
                    "operator_value": 2,
                },
            ],
        }
    },
    "cohort reference": {
        "properties": {
            "type": "OR",
            "values": [
                {"type": "cohort", "key": "id", "value": 1},
                {"type": "person", "key": "plan", "operator": "exact", "value": "enterprise"},
            ],
        }
    },
}


#: Active cohorts of the team before the new ones (`bench.fold_micro.micro_catalog`).
_COHORTS = 100


def _catalog(cohorts: int) -> Catalog:
    catalog = Catalog()
    for offset, record in enumerate(micro.micro_catalog(1, cohorts)):
        catalog.apply(str(record.id).encode(), record.to_bytes(), offset)
    return catalog


class _Partitions:
    """What `PersonStore` needs of a faust table: each partition's RocksDB (`table.data`)."""

    def __init__(self, root: Path, partitions: int, only: list[int] | None = None) -> None:
        options = RocksDBOptions(**ROCKSDB_OPTIONS)
        self.partitions = partitions
        self._dbs = {p: options.open(root / f"p{p}") for p in (range(partitions) if only is None else only)}
        self.data = self  # PersonStore reads `table.data._db_for_partition(p)` and `table.data._dbs`

    def partition_of(self, key: bytes) -> int:
        return zlib.crc32(key) % self.partitions

    def _db_for_partition(self, partition: int) -> Any:
        return self._dbs[partition]

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


@dataclass
class _Result:
    persons: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    folded: int = 0
    written: int = 0
    members: int = 0
    flips: int = 0


def _templates(catalog: Catalog, persons: int, events: int) -> list[bytes]:
    """Encoded records of `persons` demo persons after `events` events (fold_micro, fixed clock)."""
    topics = Topics(prefix="recalc_", partitions=16)
    people, stream = micro._messages(topics, 1, persons, events, 7, True)
    worker = micro._Worker(catalog, topics, False)
    micro._phase(worker, people)
    micro._phase(worker, stream)
    return list(worker.table.values())


def _load(table: _Partitions, templates: list[bytes], persons: int) -> None:
    from rocksdict import WriteBatch

    batches = {p: WriteBatch(raw_mode=True) for p in range(table.partitions)}
    for n in range(persons):
        key = f"1:{hashlib.md5(str(n).encode()).hexdigest()}".encode()
        batches[table.partition_of(key)].put(key, templates[n % len(templates)])
        if n % 100_000 == 99_999 or n == persons - 1:
            for partition, batch in batches.items():
                table._db_for_partition(partition).write(batch)
            batches = {p: WriteBatch(raw_mode=True) for p in range(table.partitions)}
    for partition in range(table.partitions):  # settled, as a worker's state is long after its persons came
        db = table._db_for_partition(partition)
        db.flush()
        db.compact_range(None, None)


def _scan(store: PersonStore, partitions: list[int], limit: int | None) -> Iterator[tuple[int, bytes, bytes]]:
    for partition in partitions:
        for n, (key, raw) in enumerate(store.scan(partition, b"1:")):
            if limit is not None and n >= limit:
                break
            yield partition, key, raw


def _recalculate(
    store: PersonStore, catalog: Catalog, cohort_id: int, partitions: list[int], mode: str, limit: int | None
) -> _Result:
    """One cohort over the partitions, as `control.recalculate` does (fast) or did (full)."""
    from stream.state.codec import decode, encode, sketch

    result = _Result()
    origin = (SOURCE_CONTROL, 0, cohort_id)
    run = [Recalculation(cohort_id, origin)]
    now_us = DEFAULT_BASE_US
    wall, cpu = time.perf_counter(), time.process_time()
    for partition, key, raw in _scan(store, partitions, limit):
        result.persons += 1
        team = catalog.team(1)
        if mode == "fast":
            first_look = sketch(raw)
            _, person_id = fold.split_person_key(key.decode())
            changed, flips = recalculate_sketch(first_look, 1, person_id, team, now_us, run)
            if changed:
                result.flips += len(flips)
                result.folded += 1
                result.written += store.put(key, first_look, partition, raw)
            result.members += first_look.is_member(cohort_id)
            continue
        team_id, person_id = fold.split_person_key(key.decode())
        folded = fold.reevaluate(decode(raw), team_id, person_id, origin, team, now_us, None)
        result.folded += 1
        assert folded.record is not None
        result.written += encode(folded.record) != raw  # not written: the fast mode starts from this state
        result.members += cohort_id in folded.record.members
        result.flips += len(folded.flips)
    store.write_pending()  # the worker writes them at its next commit: part of the recalculation's cost
    result.seconds = time.perf_counter() - wall
    result.cpu_s = time.process_time() - cpu
    return result


def _reannounce(store: PersonStore, catalog: Catalog, partitions: list[int]) -> tuple[_Result, int]:
    """Every cohort of team 1 again, in runs of RUN_MAX, one scan per run; (result, runs)."""
    from stream.state.codec import sketch

    team = catalog.team(1)
    cohorts = list(team.position)
    runs = [
        [Recalculation(cohort_id, (SOURCE_CONTROL, 0, 20_000 + start + n)) for n, cohort_id in enumerate(chunk)]
        for start in range(0, len(cohorts), RUN_MAX)
        for chunk in [cohorts[start : start + RUN_MAX]]
    ]
    result = _Result()
    now_us = DEFAULT_BASE_US
    wall, cpu = time.perf_counter(), time.process_time()
    for run in runs:
        for partition, key, raw in _scan(store, partitions, None):
            result.persons += 1
            first_look = sketch(raw)
            _, person_id = fold.split_person_key(key.decode())
            changed, flips = recalculate_sketch(first_look, 1, person_id, team, now_us, run)
            result.flips += len(flips)
            if changed:
                result.folded += 1
                result.written += store.put(key, first_look, partition, raw)
        store.write_pending()
    result.seconds = time.perf_counter() - wall
    result.cpu_s = time.process_time() - cpu
    return result, len(runs)


def _share(conn: Connection, work_dir: Path, partitions: int, mine: list[int], cohorts: int) -> None:
    """A child of `_Shares`: recalculates each cohort it is sent over its own partitions."""
    catalog = _catalog(cohorts)
    table = _Partitions(work_dir, partitions, only=mine)
    store = PersonStore(table, changelog=lambda partition, key, value: None)
    conn.send("ready")
    try:
        while (order := conn.recv()) is not None:
            cohort_id, record, offset = order
            catalog.apply(str(cohort_id).encode(), record, offset)
            conn.send(_recalculate(store, catalog, cohort_id, mine, "fast", None))
    finally:
        table.close()


class _Shares:
    """`processes` child processes, each holding every `processes`-th partition, as the workers of one
    consumer group hold theirs: a recalculation is final when the slowest share has finished.

    Spawned, not forked: a RocksDB opened after a fork from a process that had one open inherits its
    background threads' state without the threads, and closing it hangs."""

    def __init__(self, work_dir: Path, partitions: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._processes = []
        for index in range(processes):
            ours, theirs = context.Pipe()
            mine = list(range(index, partitions, processes))
            process = context.Process(target=_share, args=(theirs, work_dir, partitions, mine, _COHORTS), daemon=True)
            process.start()
            self._conns.append(ours)
            self._processes.append(process)
        for conn in self._conns:  # started and open before anything is timed
            assert conn.recv() == "ready"

    def recalculate(self, cohort_id: int, record: bytes, offset: int) -> _Result:
        started = time.perf_counter()
        for conn in self._conns:
            conn.send((cohort_id, record, offset))
        shares: list[_Result] = [conn.recv() for conn in self._conns]
        total = _Result(seconds=time.perf_counter() - started)
        for share in shares:
            total.persons += share.persons
            total.cpu_s += share.cpu_s
            total.folded += share.folded
            total.written += share.written
            total.members += share.members
            total.flips += share.flips
        return total

    def close(self) -> None:
        for conn in self._conns:
            conn.send(None)
        for process in self._processes:
            process.join(timeout=60)


def _row(name: str, mode: str, found: _Result, last: str) -> str:
    """One line of the printed table; `last`: the members column and any note."""
    return (f"{name:18} {mode:5} {found.persons:10,} {found.seconds:8.2f} {found.cpu_s:7.2f} "
            f"{found.persons / found.seconds:10,.0f} {1e6 * found.seconds / found.persons:9.1f} "
            f"{found.folded:9,} {found.written:9,} {last}")  # fmt: skip


def run(
    *,
    persons: int,
    partitions: int,
    templates: int,
    template_events: int,
    modes: list[str],
    full_sample: int | None,
    work_dir: Path,
    processes: int = 1,
    reannounce: bool = False,
) -> None:
    catalog = _catalog(_COHORTS)
    started = time.perf_counter()
    records = _templates(catalog, templates, template_events)
    mean = sum(map(len, records)) / len(records)
    print(f"{len(records):,} template records from {templates:,} persons and {template_events:,} events "
          f"in {time.perf_counter() - started:.1f}s, mean {mean:.0f} bytes")  # fmt: skip
    table = _Partitions(work_dir, partitions)
    started = time.perf_counter()
    _load(table, records, persons)
    print(f"{persons:,} records written to {partitions} RocksDB partitions and compacted in "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    shares = None
    if processes > 1:
        table.close()  # each child opens its own partitions (RocksDB allows one process per database)
        shares = _Shares(work_dir, partitions, processes)
    store = PersonStore(table, changelog=lambda partition, key, value: None)
    try:
        print(f"{'cohort':18} {'mode':5} {'persons':>10} {'seconds':>8} {'cpu s':>7} {'persons/s':>10} "
              f"{'s per 1M':>9} {'folded':>9} {'written':>9} {'members':>9}")  # fmt: skip
        for n, (name, filters) in enumerate(NEW_COHORTS.items()):
            cohort_id = 1_000 + n
            record = CatalogRecord(id=cohort_id, team_id=1, version=1, name=name, filters=normalise_filters(filters))
            catalog.apply(str(cohort_id).encode(), record.to_bytes(), 10_000 + n)
            for mode in modes:
                limit = None if mode == "fast" or full_sample is None else max(full_sample // partitions, 1)
                if shares is None:
                    found = _recalculate(store, catalog, cohort_id, list(range(partitions)), mode, limit)
                else:
                    found = shares.recalculate(cohort_id, record.to_bytes(), 10_000 + n)
                note = "" if limit is None else f"  (sample of {found.persons:,}, extrapolated)"
                if shares is not None:
                    note = f"  ({processes} processes, {partitions // processes}+ partitions each)"
                print(_row(name, mode, found, f"{found.members:9,}{note}"))
        if reannounce:
            again, runs = _reannounce(store, catalog, list(range(partitions)))
            cohorts = len(catalog.team(1).position)
            per_check_us = 1e6 * again.cpu_s / (persons * cohorts)
            note = f"({cohorts} cohorts in {runs} runs: {per_check_us:.1f} CPU-µs per person and cohort)"
            print(_row("every cohort", "again", again, f"{'':>9}  {note}"))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {rss_mb:,.0f} MB (Python, {partitions} RocksDB partitions' caches and memtables)")
    finally:
        if shares is None:
            table.close()
        else:
            shares.close()
            rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"peak RSS of the largest share {rss_mb:,.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recalc", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--templates", type=int, default=20_000, help="distinct demo persons folded into records")
    parser.add_argument("--template-events", type=int, default=60_000)
    parser.add_argument("--mode", choices=("fast", "full", "both"), default="fast")
    parser.add_argument("--full-sample", type=int, default=20_000, help="persons the full mode runs on (0: all)")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary directory, removed")
    parser.add_argument(
        "--processes", type=int, default=1, help="share the partitions among this many processes, as workers would"
    )
    parser.add_argument(
        "--reannounce", action="store_true", help="then recalculate every cohort again, in runs (one process)"
    )
    args = parser.parse_args(argv)
    if args.processes > 1 and args.mode != "fast":
        parser.error("--processes runs the fast mode only")
    if args.processes > 1 and args.reannounce:
        parser.error("--reannounce runs in one process")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="cohorts-recalc-"))
    try:
        run(
            persons=args.persons,
            partitions=args.partitions,
            templates=args.templates,
            template_events=args.template_events,
            modes=["full", "fast"] if args.mode == "both" else [args.mode],
            full_sample=args.full_sample or None,
            work_dir=work_dir,
            processes=args.processes,
            reannounce=args.reannounce,
        )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
