"""A control batch as the control agent takes it: steps per partition in order, and a run of
recalculations applied to a record with one read and one write, as the recalculations alone would."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from cohorts.wire import ControlMessage
from stream import fold
from stream.control_batches import RUN_MAX, Recalculation, Received, recalculate_record, recalculate_sketch, steps
from stream.state.codec import FORMAT_VERSION, decode, encode, sketch
from stream.state.record import SOURCE_CONTROL
from tests.differential.scenario import NOW
from tests.unit.stream.state.test_codec import GOLDEN_FULL_V1
from tests.unit.stream.test_recalculation import _folded

# --- grouping -------------------------------------------------------------------------------------


def _recalc(partition: int, offset: int, cohort_id: int, team_id: int | None = 1) -> Received:
    return Received(partition, offset, ControlMessage("recalculate", team_id, cohort_id, version=1))


def _tick(partition: int, offset: int) -> Received:
    return Received(partition, offset, ControlMessage("tick"))


def _static(partition: int, offset: int, kind: str = "static_add") -> Received:
    return Received(partition, offset, ControlMessage(kind, 1, 9, "p"))


def _refused(partition: int, offset: int) -> Received:
    return Received(partition, offset, None, "not JSON")


def _shape(batch: list[Received]) -> list[tuple[int, list[int]]]:
    """(partition, offsets) of each step."""
    return [(step.partition, [r.offset for r in step.received]) for step in steps(batch)]


def test_consecutive_recalculations_of_one_partition_and_team_are_one_step():
    batch = [_recalc(0, 10, 1), _recalc(0, 11, 2), _recalc(0, 12, 3)]
    (step,) = steps(batch)
    assert step.partition == 0 and step.offset == 10 and step.is_recalculation
    assert [r.message.cohort_id for r in step.received if r.message] == [1, 2, 3]


def test_a_batch_of_one_is_one_step():
    assert _shape([_recalc(3, 7, 1)]) == [(3, [7])]
    assert _shape([_tick(3, 7)]) == [(3, [7])]
    assert steps([]) == []


def test_a_tick_breaks_a_run_and_keeps_its_place():
    """Scenario: recalculate, recalculate, tick, recalculate on one partition: the tick runs after the
    first two (which share a scan) and before the last, which scans on its own."""
    batch = [_recalc(0, 1, 1), _recalc(0, 2, 2), _tick(0, 3), _recalc(0, 4, 3)]
    assert _shape(batch) == [(0, [1, 2]), (0, [3]), (0, [4])]
    assert [s.is_recalculation for s in steps(batch)] == [True, False, True]


@pytest.mark.parametrize("kind", ["static_add", "static_remove"])
def test_a_static_change_breaks_a_run(kind: str):
    batch = [_recalc(0, 1, 1), _static(0, 2, kind), _recalc(0, 3, 2)]
    assert _shape(batch) == [(0, [1]), (0, [2]), (0, [3])]


def test_an_invalid_message_in_the_middle_is_a_step_of_its_own_in_its_place():
    """Scenario: the refused message is dead-lettered between the two recalculations, as before."""
    batch = [_recalc(0, 1, 1), _refused(0, 2), _recalc(0, 3, 2)]
    found = steps(batch)
    assert _shape(batch) == [(0, [1]), (0, [2]), (0, [3])]
    assert found[1].received[0].message is None and not found[1].is_recalculation


def test_messages_of_other_partitions_do_not_break_a_run():
    """Scenario: two partitions interleaved, each with two recalculations and then a tick: one run
    and one tick per partition, each partition in its order, steps at their first message's place."""
    batch = [_recalc(0, 1, 1), _recalc(1, 1, 1), _recalc(0, 2, 2), _recalc(1, 2, 2), _tick(1, 3), _tick(0, 3)]
    assert _shape(batch) == [(0, [1, 2]), (1, [1, 2]), (1, [3]), (0, [3])]


def test_a_run_holds_at_most_run_max_recalculations():
    """Scenario: 20 recalculations in a row: a run of RUN_MAX (16) and one of the 4 after it."""
    batch = [_recalc(0, n, n) for n in range(20)]
    assert [len(step.received) for step in steps(batch)] == [RUN_MAX, 20 - RUN_MAX]
    assert [len(step.received) for step in steps(batch, run_max=1)] == [1] * 20


def test_recalculations_of_different_teams_are_not_one_run():
    batch = [_recalc(0, 1, 1, team_id=1), _recalc(0, 2, 2, team_id=2), _recalc(0, 3, 3, team_id=1)]
    assert _shape(batch) == [(0, [1]), (0, [2]), (0, [3])]


def test_a_recalculation_naming_no_team_stays_alone():
    """Its team is known only from the catalog after the wait, so it cannot share a team's scan."""
    batch = [_recalc(0, 1, 1, team_id=None), _recalc(0, 2, 2, team_id=None), _recalc(0, 3, 3), _recalc(0, 4, 4)]
    assert _shape(batch) == [(0, [1]), (0, [2]), (0, [3, 4])]


@pytest.mark.parametrize("seed", range(20))
def test_steps_keep_every_message_once_and_each_partitions_order(seed: int):
    """Scenario: random batches over three partitions and two teams. Every message is in exactly
    one step; per partition, the steps' messages in step order are the batch's; a step of several
    messages holds recalculations of one partition and team, consecutive within that partition."""
    rng = random.Random(seed)
    offsets = dict.fromkeys(range(3), 0)
    batch = []
    for _ in range(rng.randint(1, 40)):
        partition = rng.randrange(3)
        offsets[partition] += 1
        offset = offsets[partition]
        kind = rng.choice(["recalculate"] * 5 + ["tick", "static", "refused"])
        if kind == "recalculate":
            batch.append(_recalc(partition, offset, rng.randint(1, 9), team_id=rng.choice([1, 1, 1, 2])))
        elif kind == "tick":
            batch.append(_tick(partition, offset))
        elif kind == "static":
            batch.append(_static(partition, offset))
        else:
            batch.append(_refused(partition, offset))
    found = steps(batch)
    assert sorted(r for s in found for r in s.received) == sorted(batch)
    for partition in range(3):
        in_steps = [r for s in found if s.partition == partition for r in s.received]
        assert in_steps == [r for r in batch if r.partition == partition]
    for step in found:
        assert all(r.partition == step.partition for r in step.received)
        if len(step.received) > 1:
            assert all(r.message is not None and r.message.type == "recalculate" for r in step.received)
            assert len({r.message.team_id for r in step.received if r.message}) == 1
            offsets_of_step = [r.offset for r in step.received]
            assert offsets_of_step == list(range(offsets_of_step[0], offsets_of_step[0] + len(offsets_of_step)))


# --- a run applied to one record --------------------------------------------------------------------


def _changed_cohorts(seed: int):
    """A folded scenario whose last three cohorts arrive, one gets a new version, one is deleted."""
    catalog, definitions, records = _folded(seed, held_back=3)
    offset = 1_000
    changed = []
    for record in definitions[-3:]:
        catalog.apply(str(record.id).encode(), record.to_bytes(), offset := offset + 1)
        changed.append(record.id)
    rng = random.Random(seed)
    bumped = rng.choice(definitions[:-3])
    catalog.apply(str(bumped.id).encode(), replace(bumped, version=bumped.version + 1).to_bytes(), offset + 1)
    deleted = rng.choice([r for r in definitions[:-3] if r.id != bumped.id])
    catalog.apply(str(deleted.id).encode(), None, offset + 2)
    changed += [bumped.id, deleted.id]
    run = [Recalculation(cohort_id, (SOURCE_CONTROL, 0, 50 + n)) for n, cohort_id in enumerate(changed)]
    return catalog.team(1), run, records


def _alone(raw: bytes, person_id: str, team, run: list[Recalculation]) -> tuple[bytes, list[tuple[fold.Flip, tuple]]]:
    """Each recalculation on its own, as the agent did before runs: a scan per cohort, each reading
    what the previous one wrote. The bytes left, and each flip with the origin of the message that
    caused it."""
    flips: list[tuple[fold.Flip, tuple]] = []
    for cohort_id, origin in run:
        first_look = sketch(raw)
        if fold.recalculation_changes(first_look, team, cohort_id, NOW):
            flips += [(f, origin) for f in fold.recalculate(first_look, 1, person_id, origin, team, NOW, cohort_id)]
            raw = encode(first_look)
    return raw, flips


@pytest.mark.parametrize("seed", range(12))
def test_a_run_on_a_sketch_writes_the_bytes_and_sends_the_flips_of_each_recalculation_alone(seed: int):
    """Scenario: five recalculations (new cohorts, a new version, a deletion) as one run: every
    record comes out byte for byte as five scans would leave it, with the same flips in order; a
    record no recalculation changes is not written."""
    team, run, records = _changed_cohorts(seed)
    written = 0
    for key, raw in records.items():
        _, person_id = fold.split_person_key(key)
        expected_raw, expected = _alone(raw, person_id, team, run)
        first_look = sketch(raw)
        changed, flips = recalculate_sketch(first_look, 1, person_id, team, NOW, run)
        assert flips == [flip for flip, _ in expected]
        assert (encode(first_look) if changed else raw) == expected_raw
        written += changed
    assert written > 0


@pytest.mark.parametrize("seed", range(6))
def test_a_run_of_one_writes_the_bytes_and_sends_the_flips_of_that_recalculation_alone(seed: int):
    """Scenario: as above, each recalculation sent as a run of one (the agent's common case, which
    takes its own path): the bytes and flips are those of the recalculation alone."""
    team, run, records = _changed_cohorts(seed)
    written = 0
    for recalculation in run:
        for key, raw in records.items():
            _, person_id = fold.split_person_key(key)
            expected_raw, expected = _alone(raw, person_id, team, [recalculation])
            first_look = sketch(raw)
            changed, flips = recalculate_sketch(first_look, 1, person_id, team, NOW, [recalculation])
            assert flips == [flip for flip, _ in expected]
            assert (encode(first_look) if changed else raw) == expected_raw
            written += changed
    assert written > 0


@pytest.mark.parametrize("seed", range(6))
def test_one_look_at_a_sketch_answers_for_every_cohort_as_a_look_per_cohort_does(seed: int):
    """Scenario: the changed cohorts' team, and every cohort of it plus the deleted one, asked of
    one `SketchRecalculation` per record in turn (the checks of a run share it until one changes the
    record): each answer is `recalculation_changes`'s on a fresh sketch, both ways round."""
    team, run, records = _changed_cohorts(seed)
    cohorts = [*team.position, *(cohort_id for cohort_id, _ in run)]
    answers = set()
    for raw in records.values():
        check = fold.SketchRecalculation(sketch(raw), team, NOW)
        for cohort_id in cohorts:
            expected = fold.recalculation_changes(sketch(raw), team, cohort_id, NOW)
            assert check.changes(cohort_id) == expected
            answers.add(expected)
    assert answers == {True, False}


@pytest.mark.parametrize("seed", range(6))
def test_each_flip_of_a_run_is_filed_under_the_message_that_caused_it(seed: int):
    """Scenario: as above; the outbox files each flip under the offset of the recalculation that
    caused it (its own cohort's, or the one a dependant flipped with), so a replay from any message
    of the run re-sends from there (design-engine §4)."""
    team, run, records = _changed_cohorts(seed)
    filed = 0
    for key, raw in records.items():
        _, person_id = fold.split_person_key(key)
        _, expected = _alone(raw, person_id, team, run)
        first_look = sketch(raw)
        _, flips = recalculate_sketch(first_look, 1, person_id, team, NOW, run)
        if not flips:
            continue
        outbox = list(decode(encode(first_look)).outbox)[-len(flips) :]
        assert [(f.cohort_id, f.origin) for f in outbox] == [(f.cohort_id, origin) for f, origin in expected]
        filed += len({origin for _, origin in expected}) > 1
    assert filed > 0, "some record should be flipped by more than one message of the run"


@pytest.mark.parametrize("seed", range(6))
def test_a_replayed_run_changes_nothing(seed: int):
    """Scenario: the run is applied, then applied again (a crash before the commit): the second time
    no record is written and no flip is sent (design-engine §4: re-sending is re-emission's job)."""
    team, run, records = _changed_cohorts(seed)
    for key, raw in records.items():
        _, person_id = fold.split_person_key(key)
        first_look = sketch(raw)
        changed, _ = recalculate_sketch(first_look, 1, person_id, team, NOW, run)
        after = encode(first_look) if changed else raw
        again = sketch(after)
        changed_again, flips_again = recalculate_sketch(again, 1, person_id, team, NOW, run)
        assert flips_again == []
        assert not changed_again or encode(again) == after


def test_a_format_1_record_is_recalculated_in_full_once_then_per_cohort():
    """Scenario: an old record in a run of two: the same record and flips as two full recalculations
    one after the other."""
    catalog, _, _ = _folded(0, held_back=0)
    team = catalog.team(1)
    run = [Recalculation(1_001, (SOURCE_CONTROL, 0, 5)), Recalculation(1_002, (SOURCE_CONTROL, 0, 6))]
    assert sketch(GOLDEN_FULL_V1).version != FORMAT_VERSION
    record = decode(GOLDEN_FULL_V1)
    flips = recalculate_record(record, 1, "p", team, NOW, run)
    expected = decode(GOLDEN_FULL_V1)
    expected_flips = []
    for cohort_id, origin in run:
        expected_flips += fold.reevaluate(expected, 1, "p", origin, team, NOW, (cohort_id,)).flips
    assert flips == expected_flips
    assert encode(record) == encode(expected)
    assert record.deadlines is not None
