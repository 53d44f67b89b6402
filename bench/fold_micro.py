"""Microbenchmark: the worker's per-input path in one process, without Kafka or RocksDB.

    .venv/bin/python -m bench.fold_micro                       # 100 cohorts, 100,000 persons, 200,000 events
    .venv/bin/python -m bench.fold_micro --profile /tmp/fold.prof

What it runs, per input, exactly the calls the agents make (stream/agents/ingest.py, person.py):
PostHog JSON bytes -> `stream.posthog.decode_*` -> `gate_event` -> `to_bytes` (ingest), then
`decode_person_input` -> `codec.decode` of the stored record -> `fold.apply_*` -> `codec.encode`
-> store (person-fold). The table is a plain dict of encoded records (RocksDB and faust are not
measured here: `bench.run_ingest` measures the whole worker). Flips are counted, not produced.

Data: `cli.demo_data.DemoPopulation` (seed 7): first one person record per person (each one a new
person, so every cohort of the team is evaluated), then the events in time order over 7 days; the
clock advances with the events (now = the event's creation instant), so windows open and close and
deadlines pass as in live operation. The catalog is 100 cohorts: `bench.ingest.benchmark_cohorts`
(person properties, performed_event over 5 minutes to 30 days, performed_event_multiple, first time,
event filters, AND/OR) plus stopped, restarted, a sequence, a regularly and cohort references.

It prints inputs per second of wall time and per CPU-second (the machine is shared: read the CPU
figure), the time per stage, and a digest of every flip and of the final memberships: two builds
with the same digest behaved the same on this data.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import DEFAULT_BASE_US, DEFAULT_SPAN_US
from bench.ingest import benchmark_cohorts
from cli.demo_data import DemoPopulation
from cohorts.topics import Topics, person_key
from cohorts.validate import normalise_filters
from cohorts.wire import CatalogRecord, EventInput, decode_person_input
from stream import fold
from stream.agents.ingest import KnownCache, gate_event
from stream.catalog import Catalog
from stream.posthog import decode_event, decode_person
from stream.state.codec import decode, encode
from stream.state.deadlines import DeadlineIndex
from stream.state.record import SOURCE_CONTROL, source_code

__all__ = ["Stats", "extra_cohorts", "micro_catalog", "run"]

#: Simulated seconds between two ticks when the clock advances (the worker's default interval).
_TICK_US = 10 * 1_000_000

#: Cohorts taken from `bench.ingest.benchmark_cohorts`; the rest of the 100 come from `extra_cohorts`.
_BASE_COUNT = 86


def _leaf(kind: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "behavioral", "key": event, "value": kind, "event_type": "events", **fields}


def _cohort_ref(cohort_id: int, negation: bool = False) -> dict[str, Any]:
    return {"type": "cohort", "key": "id", "value": cohort_id, "negation": negation}


def _group(*values: dict[str, Any], kind: str = "AND") -> dict[str, Any]:
    return {"properties": {"type": kind, "values": list(values)}}


def extra_cohorts(first_id: int) -> list[tuple[str, dict[str, Any]]]:
    """Kinds `benchmark_cohorts` lacks: stopped/restarted, a sequence, regularly, cohort references.

    References point at cohorts 1..6 of `benchmark_cohorts` and at each other (ids from `first_id`).
    """
    stopped = [
        (f"stopped {e}", _group(_leaf("stopped_performing_event", e, time_value=30, time_interval="day",
                                      seq_time_value=s, seq_time_interval="day")))
        for e, s in (("$pageview", 7), ("checkout", 3), ("added_to_cart", 1))
    ]  # fmt: skip
    restarted = [
        (f"restarted {e}", _group(_leaf("restarted_performing_event", e, time_value=30, time_interval="day",
                                        seq_time_value=s, seq_time_interval="day")))
        for e, s in (("$pageview", 1), ("checkout", 7), ("invited_teammate", 3))
    ]  # fmt: skip
    sequence = [
        ("cart then checkout within a day",
         _group(_leaf("performed_event_sequence", "added_to_cart", time_value=7, time_interval="day",
                      seq_event="checkout", seq_time_value=1, seq_time_interval="day"))),
        ("pageviews on 3 of the last 5 days",
         _group(_leaf("performed_event_regularly", "$pageview", time_value=1, time_interval="day",
                      total_periods=5, min_periods=3, operator_value=1))),
    ]  # fmt: skip
    ref = first_id + len(stopped) + len(restarted) + len(sequence)
    references = [
        ("in 1 and in 4", _group(_cohort_ref(1), _cohort_ref(4))),
        ("in 2 or not in 5", _group(_cohort_ref(2), _cohort_ref(5, negation=True), kind="OR")),
        ("in 3 and not stopped pageviews", _group(_cohort_ref(3), _cohort_ref(first_id, negation=True))),
        ("in the first reference and did checkout", _group(_cohort_ref(ref), _leaf("performed_event", "checkout",
                                                                                   time_value=7, time_interval="day"))),
        ("in 6 or restarted pageviews", _group(_cohort_ref(6), _cohort_ref(first_id + 3), kind="OR")),
        ("nested references", _group(_cohort_ref(ref + 1), _cohort_ref(ref + 3, negation=True))),
    ]  # fmt: skip
    return [*stopped, *restarted, *sequence, *references]


def micro_catalog(team_id: int, count: int = 100) -> list[CatalogRecord]:
    """`count` cohorts: the ingest benchmark's first ones plus `extra_cohorts` (ids 1..count)."""
    base = benchmark_cohorts(team_id, max(count - 14, 1))
    extras = extra_cohorts(len(base) + 1)[: max(count - len(base), 0)]
    records = list(base)
    for cohort_id, (name, filters) in enumerate(extras, start=len(base) + 1):
        records.append(
            CatalogRecord(id=cohort_id, team_id=team_id, version=1, name=name, filters=normalise_filters(filters))
        )
    return records


@dataclass
class Stats:
    """What one phase did and how long each stage took (seconds of perf_counter)."""

    inputs: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stages: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    flips: int = 0
    gated: int = 0


class _Worker:
    """The two agents' per-input calls over a dict standing in for the person table."""

    def __init__(self, catalog: Catalog, topics: Topics, timed: bool) -> None:
        self.catalog = catalog
        self.topics = topics
        self.table: dict[bytes, bytes] = {}
        self.digest = hashlib.sha256()
        self.known = KnownCache()
        self.timed = timed
        self.index = DeadlineIndex()
        self.ticks = 0

    def ingest(self, raw: bytes, kind: str, position: tuple[str, int, int], now_us: int, stats: Stats) -> bytes | None:
        if kind == "person":
            item = decode_person(raw, position)
            return item.to_bytes()
        event = decode_event(raw, position, now_us)
        key = person_key(event.team_id, event.person_id).encode()
        forwarded = gate_event(event, self.catalog.team(event.team_id), self.known, key)
        if forwarded is None:
            stats.gated += 1
            return None
        return forwarded.to_bytes()

    def fold(self, value: bytes, now_us: int, stats: Stats) -> None:
        clock = time.perf_counter if self.timed else _zero
        t0 = clock()
        item = decode_person_input(value)
        assert item.source is not None
        origin = (source_code(self.topics, item.source[0]), item.source[1], item.source[2])
        key = person_key(item.team_id, item.person_id).encode()
        t1 = clock()
        raw = self.table.get(key)
        record = None if raw is None else decode(raw)
        t2 = clock()
        team = self.catalog.team(item.team_id)
        if isinstance(item, EventInput):
            result = fold.apply_event(record, item, origin, team, now_us)
        else:
            result = fold.apply_person(record, item, origin, team, now_us)
        t3 = clock()
        if result.record is not None:
            encoded = encode(result.record)
            if encoded != raw:
                self.table[key] = encoded
        t4 = clock()
        if result.record is not None:
            self.index.set(key, result.record.next_deadline_us)
        stages = stats.stages
        stages["decode input"] += t1 - t0
        stages["decode record"] += t2 - t1
        stages["fold"] += t3 - t2
        stages["encode record"] += t4 - t3
        self._count(result, stats)

    def tick(self, now_us: int, stats: Stats) -> None:
        """What the control agent does for a tick: re-evaluate every person whose deadline passed."""
        self.ticks += 1
        origin = (SOURCE_CONTROL, 0, self.ticks)
        for key in self.index.pop_due(now_us):
            raw = self.table[key]
            team_id, person_id = fold.split_person_key(key.decode())
            result = fold.reevaluate(decode(raw), team_id, person_id, origin, self.catalog.team(team_id), now_us, ())
            if result.record is not None:
                self.index.set(key, result.record.next_deadline_us)
                encoded = encode(result.record)
                if encoded != raw:
                    self.table[key] = encoded
            stats.inputs += 1
            self._count(result, stats)

    def _count(self, result: fold.FoldResult, stats: Stats) -> None:
        stats.outcomes[result.outcome] += 1
        for flip in result.flips:
            self.digest.update(b"%d %s %d %d %d;" % (flip.cohort_id, flip.person_id.encode(), flip.entered,
                                                     flip.version, flip.at_us))  # fmt: skip
        stats.flips += len(result.flips)


def _zero() -> float:
    return 0.0


def _phase(
    worker: _Worker, messages: list[tuple[bytes, str, tuple[str, int, int], int]], ticks: Stats | None = None
) -> Stats:
    """Every message in order; with `ticks`, a tick every `_TICK_US` of the clock, timed apart."""
    stats = Stats()
    timed = worker.timed
    next_tick = messages[0][3] + _TICK_US if messages else 0
    tick_wall = tick_cpu = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for raw, kind, position, now_us in messages:
        if ticks is not None and now_us >= next_tick:
            w, c = time.perf_counter(), time.process_time()
            worker.tick(now_us, ticks)
            next_tick = now_us + _TICK_US
            tick_wall += time.perf_counter() - w
            tick_cpu += time.process_time() - c
        t0 = time.perf_counter() if timed else 0.0
        value = worker.ingest(raw, kind, position, now_us, stats)
        if timed:
            stats.stages["ingest"] += time.perf_counter() - t0
        if value is not None:
            worker.fold(value, now_us, stats)
        stats.inputs += 1
    stats.wall_s = time.perf_counter() - wall - tick_wall
    stats.cpu_s = time.process_time() - cpu - tick_cpu
    if ticks is not None:
        ticks.wall_s, ticks.cpu_s = tick_wall, tick_cpu
    return stats


def _messages(
    topics: Topics, team_id: int, persons: int, events: int, seed: int, fixed_clock: bool
) -> tuple[list[tuple[bytes, str, tuple[str, int, int], int]], list[tuple[bytes, str, tuple[str, int, int], int]]]:
    """(person messages, event messages) as PostHog bytes with source position and now, as the
    ingest benchmark's data set (`bench.common.persons_then_events`) lays them out. With
    `fixed_clock`, now is the data set's end for every input, as in `bench.ingest`."""
    population = DemoPopulation(team_id, size=persons, seed=seed)
    start_us = DEFAULT_BASE_US - DEFAULT_SPAN_US
    person_now = DEFAULT_BASE_US if fixed_clock else start_us
    people = [
        (orjson.dumps(population.person_record(person_id, start_us)), "person", (topics.persons, 0, offset), person_now)
        for offset, person_id in enumerate(population.person_ids)
    ]
    stream = []
    for index in range(events):
        now_us = start_us + index * DEFAULT_SPAN_US // max(events, 1)
        event = orjson.dumps(population.event(now_us))
        stream.append((event, "event", (topics.events, index % 16, index), DEFAULT_BASE_US if fixed_clock else now_us))
    return people, stream


def run(
    *,
    persons: int,
    events: int,
    cohorts: int,
    seed: int = 7,
    fixed_clock: bool = False,
    timed: bool = True,
    profile: str | None = None,
    profile_phase: str = "all",
    pyinstrument: str | None = None,
) -> dict[str, Any]:
    """Both phases over fresh state; `profile` writes cProfile stats of `profile_phase` there,
    `pyinstrument` a pyinstrument call tree (text) of it (pyinstrument is not a dependency)."""
    team_id = 1
    topics = Topics(prefix="micro_", partitions=16)
    catalog = Catalog()
    for offset, record in enumerate(micro_catalog(team_id, cohorts)):
        catalog.apply(str(record.id).encode(), record.to_bytes(), offset)
    team = catalog.team(team_id)
    assert len(team.ordered) == cohorts, f"{len(team.ordered)} cohorts parsed, {cohorts} wanted"
    people, stream = _messages(topics, team_id, persons, events, seed, fixed_clock)
    worker = _Worker(catalog, topics, timed)
    profiler = cProfile.Profile()
    sampler = _sampler() if pyinstrument else None
    ticks = None if fixed_clock else Stats()
    phases: dict[str, Stats] = {}
    for name, messages in (("persons", people), ("events", stream)):
        profiled = (profile is not None or sampler is not None) and profile_phase in ("all", name)
        if profiled and sampler is not None:
            sampler.start()
        elif profiled:
            profiler.enable()
        phases[name] = _phase(worker, messages, ticks if name == "events" else None)
        if profiled and sampler is not None:
            sampler.stop()
        elif profiled:
            profiler.disable()
    if ticks is not None:
        phases["ticks"] = ticks
    if profile is not None:
        profiler.dump_stats(profile)
    if sampler is not None and pyinstrument is not None:
        Path(pyinstrument).write_text(sampler.output_text(unicode=False, color=False))
    members: Counter[int] = Counter()
    sizes = 0
    for raw in worker.table.values():
        sizes += len(raw)
        members.update(decode(raw).members)
    state = hashlib.sha256(orjson.dumps(sorted(members.items()))).hexdigest()[:16]
    return {
        "phases": phases,
        "flip_digest": worker.digest.hexdigest()[:16],
        "members_digest": state,
        "records": len(worker.table),
        "mean_record_bytes": sizes / max(len(worker.table), 1),
        "members_total": sum(members.values()),
    }


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:9,.0f}" if seconds > 0 else f"{'-':>9}"


def _sampler() -> Any:
    from pyinstrument import Profiler  # for local use: `.venv/bin/pip install pyinstrument`

    return Profiler(interval=0.001)


def _print(result: dict[str, Any]) -> None:
    """Ticks count re-evaluated persons, not inputs: the `all` row counts inputs over all the time."""
    print(f"{'phase':8} {'inputs':>9} {'wall s':>8} {'cpu s':>8} {'inputs/s':>9} {'per cpu-s':>9} {'flips':>9}")
    total = Stats()
    for name, stats in result["phases"].items():
        print(f"{name:8} {stats.inputs:9,} {stats.wall_s:8.2f} {stats.cpu_s:8.2f} {_rate(stats.inputs, stats.wall_s)} "
              f"{_rate(stats.inputs, stats.cpu_s)} {stats.flips:9,}")  # fmt: skip
        total.inputs += stats.inputs if name != "ticks" else 0
        total.wall_s += stats.wall_s
        total.cpu_s += stats.cpu_s
        total.flips += stats.flips
    print(f"{'all':8} {total.inputs:9,} {total.wall_s:8.2f} {total.cpu_s:8.2f} {_rate(total.inputs, total.wall_s)} "
          f"{_rate(total.inputs, total.cpu_s)} {total.flips:9,}")  # fmt: skip
    for name, stats in result["phases"].items():
        if stats.stages:
            parts = ", ".join(f"{stage} {seconds / stats.inputs * 1e6:.1f}" for stage, seconds in stats.stages.items())
            print(f"  {name} µs per input: {parts}")
        print(f"  {name} outcomes: {dict(sorted(stats.outcomes.items()))}, gated {stats.gated}")
    print(f"records {result['records']:,}, mean {result['mean_record_bytes']:.0f} bytes, "
          f"memberships {result['members_total']:,}")  # fmt: skip
    print(f"flip digest {result['flip_digest']}, members digest {result['members_digest']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fold_micro", description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cohorts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clock", choices=("advancing", "fixed"), default="advancing",
                        help="advancing: now follows the events, with a tick every 10 s; fixed: now is the "
                             "data set's end for every input (bench.ingest's worker run)")  # fmt: skip
    parser.add_argument("--profile", default=None, metavar="PATH", help="cProfile into PATH (no stage timers)")
    parser.add_argument("--profile-phase", choices=("all", "persons", "events"), default="all")
    parser.add_argument("--pyinstrument", default=None, metavar="PATH", help="pyinstrument call tree into PATH")
    parser.add_argument("--untimed", action="store_true", help="no per-stage timers")
    args = parser.parse_args(argv)
    result = run(
        persons=args.persons,
        events=args.events,
        cohorts=args.cohorts,
        seed=args.seed,
        fixed_clock=args.clock == "fixed",
        timed=not args.untimed and not args.profile and not args.pyinstrument,
        profile=args.profile,
        profile_phase=args.profile_phase,
        pyinstrument=args.pyinstrument,
    )
    _print(result)
    if args.profile:
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
