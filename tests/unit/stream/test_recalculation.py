"""A recalculation's first look (`recalculation_changes` on a sketch) never skips a record it changes."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from cohorts.topics import person_key
from cohorts.wire import ControlMessage, EventInput, PersonInput
from stream import fold
from stream.catalog import Catalog
from stream.state.codec import CodecError, decode, encode, sketch
from stream.state.record import SOURCE_CONTROL, SOURCE_EVENTS, SOURCE_PERSONS, MatcherState, PersonRecord
from tests.differential.scenario import NOW, generate
from tests.unit.stream.state.test_codec import GOLDEN_FULL_V1


def _folded(seed: int, held_back: int) -> tuple[Catalog, list, dict[str, bytes]]:
    """Every input of a scenario folded at NOW with all but the last `held_back` cohorts in the catalog."""
    scenario = generate(seed)
    catalog = Catalog()
    for offset, record in enumerate(scenario.records[: len(scenario.records) - held_back]):
        catalog.apply(str(record.id).encode(), record.to_bytes(), offset)
    team = catalog.team(scenario.team_id)
    records: dict[str, bytes] = {}
    inputs: list = [(p, SOURCE_PERSONS) for p in scenario.persons] + [(e, SOURCE_EVENTS) for e in scenario.events]
    inputs += [
        (ControlMessage("static_add", scenario.team_id, cohort_id, person_id), SOURCE_CONTROL)
        for cohort_id, members in scenario.static_members.items()
        for person_id in sorted(members)
    ]
    for offset, (item, source) in enumerate(inputs):
        key = person_key(item.team_id, item.person_id)
        current = decode(records[key]) if key in records else None
        origin = (source, 0, offset)
        if source == SOURCE_EVENTS:
            event = EventInput(item.team_id, item.person_id, item.event, item.timestamp_us, dict(item.properties))
            result = fold.apply_event(current, event, origin, team, NOW)
        elif source == SOURCE_PERSONS:
            person = PersonInput(item.team_id, item.person_id, dict(item.properties), item.version, item.is_deleted)
            result = fold.apply_person(current, person, origin, team, NOW)
        else:
            result = fold.apply_static(current, item, origin, team, NOW)
        if result.record is not None:
            records[key] = encode(result.record)
    return catalog, scenario.records, records


@pytest.mark.parametrize("seed", range(12))
def test_a_record_the_first_look_skips_is_one_the_full_recalculation_leaves_as_it_is(seed: int):
    """Scenario: a scenario's inputs folded without its last two cohorts; then they arrive, another
    cohort gets a new version and a third is deleted. For each recalculation and each record, when
    the first look says "no change", the full re-evaluation of that cohort sends no flip and keeps
    the cohort's bit, version and deadline; the member count agrees either way."""
    catalog, definitions, records = _folded(seed, held_back=2)
    rng = random.Random(seed)
    offset = 1_000
    changed: list[int] = []
    for record in definitions[-2:]:
        catalog.apply(str(record.id).encode(), record.to_bytes(), offset := offset + 1)
        changed.append(record.id)
    bumped = rng.choice(definitions[:-2])
    catalog.apply(str(bumped.id).encode(), replace(bumped, version=bumped.version + 1).to_bytes(), offset + 1)
    deleted = rng.choice([r for r in definitions[:-2] if r.id != bumped.id])
    catalog.apply(str(deleted.id).encode(), None, offset + 2)
    changed += [bumped.id, deleted.id]
    team = catalog.team(1)
    skipped = 0
    for cohort_id in changed:
        for key, raw in records.items():
            team_id, person_id = fold.split_person_key(key)
            first_look = sketch(raw)
            quick = fold.recalculation_changes(first_look, team, cohort_id, NOW)
            full = fold.reevaluate(decode(raw), team_id, person_id, (SOURCE_CONTROL, 0, 1), team, NOW, (cohort_id,))
            assert full.record is not None
            assert (cohort_id in first_look.members) == (cohort_id in full.record.members) or quick
            if not quick:
                skipped += 1
                before = decode(raw)
                assert full.flips == []
                assert full.record.members.get(cohort_id) == before.members.get(cohort_id)
                assert (full.record.deadlines or {}).get(cohort_id) == (before.deadlines or {}).get(cohort_id)
    assert skipped > 0


def test_a_format_1_record_is_always_recalculated_in_full():
    catalog, _, _ = _folded(0, held_back=0)
    first_look = sketch(GOLDEN_FULL_V1)
    assert first_look.deadline_of(7) is None and first_look.member_version(7) == 2
    assert first_look.deadlines is None and first_look.members == {7: 2}
    assert fold.recalculation_changes(first_look, catalog.team(1), 1_001, NOW)


def test_a_sketch_reads_what_the_evaluator_needs_as_decode_does():
    record = PersonRecord(
        known=True,
        properties={"plan": "pro"},
        matchers={"m": MatcherState(5, {"day": {3: 1, 1: 2}}, [7, 9])},
        static={4},
        members={2: 1},
        deadlines={2: 99},
    )
    first_look = sketch(encode(record))
    assert first_look.known and not first_look.deleted
    assert first_look.properties == {"plan": "pro"}
    assert first_look.buckets("m", "day") == {1: 2, 3: 1}
    assert first_look.buckets("m", "minute") == {} and first_look.buckets("x", "day") == {}
    assert first_look.first_seen_us("m") == 5 and first_look.first_seen_us("x") is None
    assert list(first_look.timestamps_us("m")) == [7, 9] and list(first_look.timestamps_us("x")) == []
    assert first_look.is_static_member(4) and not first_look.is_static_member(2)
    # read flat first, then as the dicts the fold settles
    assert list(first_look.member_ids()) == [2] and first_look.is_member(2) and not first_look.is_member(3)
    assert (first_look.member_version(2), first_look.member_version(3)) == (1, None)
    assert (first_look.deadline_of(2), first_look.deadline_of(3)) == (99, None)
    assert (first_look.members, first_look.deadlines) == ({2: 1}, {2: 99})
    first_look.members[3] = 4
    first_look.deadlines = {3: 50}
    assert first_look.is_member(3) and first_look.member_version(3) == 4
    assert (first_look.deadline_of(2), first_look.deadline_of(3)) == (None, 50)


def test_a_sketch_reads_members_and_deadlines_flat_as_decode_reads_them():
    _, _, records = _folded(5, held_back=0)
    cohort_ids = range(990, 2_010)  # the scenario's cohorts are 1001-1013 and 1999
    for raw in records.values():
        record, first_look = decode(raw), sketch(raw)
        assert record.deadlines is not None
        assert sorted(first_look.member_ids()) == sorted(record.members)
        assert [first_look.member_version(c) for c in cohort_ids] == [record.members.get(c) for c in cohort_ids]
        assert [first_look.deadline_of(c) for c in cohort_ids] == [record.deadlines.get(c) for c in cohort_ids]


def test_a_malformed_body_fails_the_sketch_loudly():
    raw = encode(PersonRecord())
    with pytest.raises(CodecError, match="malformed"):
        sketch(raw[:34] + b"[1,2]")


@pytest.mark.parametrize("seed", range(12))
def test_settling_a_sketch_gives_the_record_a_full_recalculation_gives_less_pruning(seed: int):
    """Scenario: as above; every record the first look keeps is settled as a sketch and written
    back. Decoded, it equals the fully re-evaluated record in every field but matcher state (the
    sketch path does not prune), with the same flips."""
    catalog, definitions, records = _folded(seed, held_back=2)
    for offset, record in enumerate(definitions[-2:], start=1_000):
        catalog.apply(str(record.id).encode(), record.to_bytes(), offset)
    team = catalog.team(1)
    settled = 0
    for cohort_id in [r.id for r in definitions[-2:]]:
        for key, raw in records.items():
            team_id, person_id = fold.split_person_key(key)
            first_look = sketch(raw)
            if not fold.recalculation_changes(first_look, team, cohort_id, NOW):
                continue
            settled += 1
            origin = (SOURCE_CONTROL, 0, 7)
            full = fold.reevaluate(decode(raw), team_id, person_id, origin, team, NOW, (cohort_id,))
            flips = fold.recalculate(first_look, team_id, person_id, origin, team, NOW, cohort_id)
            assert flips == full.flips
            written = decode(encode(first_look))
            assert full.record is not None
            written.matchers = full.record.matchers
            assert written == full.record
            records[key] = encode(full.record)
    assert settled > 0


def test_a_sketch_nothing_changed_encodes_to_the_bytes_it_came_from():
    _, _, records = _folded(3, held_back=0)
    for raw in records.values():
        assert encode(sketch(raw)) == raw


def test_a_format_1_sketch_cannot_be_written():
    with pytest.raises(CodecError, match="format-1"):
        encode(sketch(GOLDEN_FULL_V1))


def test_a_recalculation_takes_the_first_look_s_evaluation_unless_another_cohort_is_due():
    """Scenario: scenarios folded without their last cohort, which then arrives; it is recalculated
    now and 40 days later. With the first look's evaluation (`SketchRecalculation.evaluated`), the
    settled bytes and flips are those of a recalculation evaluating again. Given the opposite
    membership instead, the sketch takes it when no other cohort is due (so the evaluation was not
    repeated), and ignores it when one is (every due cohort and the new one are evaluated)."""
    taken = ignored = 0
    for seed in range(6):
        catalog, definitions, records = _folded(seed, held_back=1)
        catalog.apply(str(definitions[-1].id).encode(), definitions[-1].to_bytes(), 1_000)
        team, cohort_id, origin = catalog.team(1), definitions[-1].id, (SOURCE_CONTROL, 0, 9)
        for now_us in (NOW, NOW + 40 * 86_400_000_000):
            for key, raw in records.items():
                team_id, person_id = fold.split_person_key(key)
                check = fold.SketchRecalculation(sketch(raw), team, now_us)
                if not check.changes(cohort_id):
                    continue
                assert check.evaluated is not None
                again, reused = sketch(raw), sketch(raw)
                flips = fold.recalculate(again, team_id, person_id, origin, team, now_us, cohort_id)
                settled = fold.recalculate(reused, team_id, person_id, origin, team, now_us, cohort_id, check.evaluated)
                assert settled == flips
                assert encode(reused) == encode(again)
                member, deadline_us = check.evaluated
                forced = sketch(raw)
                fold.recalculate(forced, team_id, person_id, origin, team, now_us, cohort_id, (not member, deadline_us))
                at_us = max(now_us, sketch(raw).evaluated_at_us)
                if any(d <= at_us for d in (sketch(raw).deadlines or {}).values()):
                    assert forced.is_member(cohort_id) == member
                    ignored += 1
                else:
                    assert forced.is_member(cohort_id) == (not member)
                    taken += 1
    assert taken > 0 and ignored > 0
