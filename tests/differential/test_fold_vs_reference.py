"""Differential, in process: the incremental fold against the batch reference evaluator.

Scenario: a seeded random catalog, persons (with stale and deleted versions), static members and
events over the past three months are folded in a shuffled order, each record round-tripping
through the codec and some inputs replayed; the last flip per (cohort, person) must equal
`reference_members` at the same now. Time then advances past window edges, re-evaluating only the
records whose deadline has passed (what ticks do), and the comparison is repeated.
"""

from __future__ import annotations

import random

import pytest

from cohorts.reference import reference_members
from cohorts.topics import person_key
from cohorts.wire import ControlMessage, EventInput, PersonInput
from stream import fold
from stream.catalog import Catalog
from stream.state.codec import decode, encode
from stream.state.record import SOURCE_CONTROL, SOURCE_EVENTS, SOURCE_PERSONS
from tests.differential.scenario import DAY, HOUR, MINUTE, NOW, Scenario, generate

ADVANCES_US = (0, 7 * MINUTE, HOUR + 3 * MINUTE, DAY, 3 * DAY + 5 * HOUR, 8 * DAY, 31 * DAY, 95 * DAY)


class Engine:
    """The fold driven the way the agents drive it, minus Kafka."""

    def __init__(self, scenario: Scenario) -> None:
        self.catalog = Catalog()
        for offset, record in enumerate(scenario.records):
            self.catalog.apply(str(record.id).encode(), record.to_bytes(), offset)
        self.team = self.catalog.team(scenario.team_id)
        self.records: dict[str, bytes] = {}
        self.last: dict[tuple[int, str], str] = {}

    def _run(self, key: str, result: fold.FoldResult) -> None:
        if result.record is not None:
            self.records[key] = encode(result.record)
        for flip in result.flips:
            self.last[(flip.cohort_id, flip.person_id)] = "entered" if flip.entered else "left"

    def _current(self, key: str):
        raw = self.records.get(key)
        return None if raw is None else decode(raw)

    def apply(self, item, origin, now_us: int) -> fold.FoldResult:
        key = person_key(item.team_id, item.person_id)
        current = self._current(key)
        if isinstance(item, EventInput):
            result = fold.apply_event(current, item, origin, self.team, now_us)
        elif isinstance(item, PersonInput):
            result = fold.apply_person(current, item, origin, self.team, now_us)
        else:
            result = fold.apply_static(current, item, origin, self.team, now_us)
        self._run(key, result)
        return result

    def tick(self, now_us: int) -> None:
        for key in list(self.records):
            raw = self.records[key]
            deadline = decode(raw).next_deadline_us
            if deadline is not None and deadline <= now_us:
                team_id, person_id = fold.split_person_key(key)
                self._run(
                    key, fold.reevaluate(decode(raw), team_id, person_id, (SOURCE_CONTROL, 0, 0), self.team, now_us)
                )

    def members(self) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {r.id: set() for r in self.team.ordered}
        for (cohort_id, person_id), status in self.last.items():
            if status == "entered":
                found.setdefault(cohort_id, set()).add(person_id)
        return found


def _inputs(scenario: Scenario, rng: random.Random) -> list[tuple[object, tuple[int, int, int]]]:
    """Inputs in arrival order, each with the source position it would have (offsets grow per partition)."""
    events = [
        (
            EventInput(e.team_id, e.person_id, e.event, e.timestamp_us, dict(e.properties)),
            SOURCE_EVENTS,
            rng.randrange(3),
        )
        for e in scenario.events
    ]
    persons = [
        (PersonInput(p.team_id, p.person_id, dict(p.properties), p.version, p.is_deleted), SOURCE_PERSONS, 0)
        for p in scenario.persons
    ]
    statics = [
        (ControlMessage("static_add", scenario.team_id, cohort_id, person_id), SOURCE_CONTROL, 1)
        for cohort_id, members in scenario.static_members.items()
        for person_id in sorted(members)
    ]
    rng.shuffle(events)
    # Persons keep their per-person order (one source partition); everything else interleaves.
    streams = [events, persons, statics]
    offsets: dict[tuple[int, int], int] = {}
    merged: list[tuple[object, tuple[int, int, int]]] = []
    while any(streams):
        item, source, partition = rng.choice([s for s in streams if s]).pop(0)
        offset = offsets[(source, partition)] = offsets.get((source, partition), -1) + 1
        merged.append((item, (source, partition, offset)))
    return merged


def _diff(expected: dict[int, set[str]], got: dict[int, set[str]]) -> dict[int, tuple[set[str], set[str]]]:
    return {
        cohort_id: (
            expected.get(cohort_id, set()) - got.get(cohort_id, set()),
            got.get(cohort_id, set()) - expected.get(cohort_id, set()),
        )
        for cohort_id in set(expected) | set(got)
        if expected.get(cohort_id, set()) != got.get(cohort_id, set())
    }


@pytest.mark.parametrize("seed", range(25))
def test_fold_matches_the_reference_evaluator(seed: int):
    scenario = generate(seed)
    rng = random.Random(seed * 7919)
    engine = Engine(scenario)
    applied: list[tuple[object, tuple[int, int, int]]] = []
    for item, origin in _inputs(scenario, rng):
        engine.apply(item, origin, NOW)
        applied.append((item, origin))
        if rng.random() < 0.1:  # at-least-once: an earlier input comes again and must change nothing
            again_item, again_origin = rng.choice(applied)
            before = dict(engine.records)
            result = engine.apply(again_item, again_origin, NOW)
            assert result.record is None and engine.records == before
    definitions = scenario.definitions()
    for advance in ADVANCES_US:
        now_us = NOW + advance
        engine.tick(now_us)
        expected = reference_members(definitions, scenario.events, scenario.persons, scenario.static_members, now_us)
        diff = _diff(expected, engine.members())
        assert not diff, f"seed {seed}, now = NOW + {advance / HOUR:.2f} h: (missing, extra) per cohort {diff}"


@pytest.mark.parametrize("seed", range(100, 115))
def test_fold_matches_the_reference_when_inputs_arrive_while_time_passes(seed: int):
    """Scenario: the same inputs arrive over the two days before NOW (processing time grows, some
    events are stamped after their processing time), with ticks at random moments re-evaluating only
    due records; at NOW and later instants the bits must equal the reference's."""
    scenario = generate(seed)
    rng = random.Random(seed)
    engine = Engine(scenario)
    inputs = _inputs(scenario, rng)
    start = NOW - 2 * DAY
    for index, (item, origin) in enumerate(inputs):
        now_us = start + (NOW - start) * index // len(inputs)
        if rng.random() < 0.05:
            engine.tick(now_us)
        engine.apply(item, origin, now_us)
    definitions = scenario.definitions()
    for advance in (0, HOUR, 2 * DAY, 9 * DAY):
        now_us = NOW + advance
        engine.tick(now_us)
        expected = reference_members(definitions, scenario.events, scenario.persons, scenario.static_members, now_us)
        diff = _diff(expected, engine.members())
        assert not diff, f"seed {seed}, now = NOW + {advance / HOUR:.2f} h: (missing, extra) per cohort {diff}"
