"""The reference batch evaluator: its own rules, and agreement with `cohorts.evaluate`."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts.evaluate import evaluate
from cohorts.model import BehavioralLeaf, CohortDefinition, CohortLeaf, Group, PersonLeaf
from cohorts.reference import RawEvent, RawPerson, reference_members
from tests.unit.cohorts.eval_helpers import DAY_US, cohort, facts_for
from tests.unit.cohorts.eval_strategies import event_lists, nows, person_properties, trees

NOW = 1_704_844_800_000_000 + 12 * 3_600_000_000  # 2024-01-10T12:00:00Z

PRO = PersonLeaf("plan", "exact", "pro")
DID_A = BehavioralLeaf(kind="performed_event", event="a", time_value=1, time_interval="day")


def _members(definitions, events=(), persons=(), static=None, now_us=NOW):
    return reference_members({d.id: d for d in definitions}, events, persons, static or {}, now_us)


def test_person_updates_apply_highest_version_regardless_of_order():
    persons = [
        RawPerson(1, "p", {"plan": "pro"}, version=3),
        RawPerson(1, "p", {"plan": "free"}, version=2),
    ]
    assert _members([cohort(PRO)], persons=persons) == {1: {"p"}}


def test_equal_version_keeps_the_first_record():
    persons = [RawPerson(1, "p", {"plan": "free"}, version=2), RawPerson(1, "p", {"plan": "pro"}, version=2)]
    assert _members([cohort(PRO)], persons=persons) == {1: set()}


def test_a_person_known_only_from_events_has_empty_properties_and_matches_negated_roots():
    """Scenario: no person record, one event: known, `NOT plan = pro` holds, `plan = pro` does not."""
    events = [RawEvent(1, "p", "other", NOW)]
    negated = cohort(Group("AND", (PersonLeaf("plan", "exact", "pro", negation=True),)), cohort_id=2)
    assert _members([cohort(PRO), negated], events=events) == {1: set(), 2: {"p"}}


def test_deleted_person_is_in_no_cohort_even_a_negated_one():
    persons = [RawPerson(1, "p", {}, version=1), RawPerson(1, "p", {}, version=2, is_deleted=True)]
    events = [RawEvent(1, "p", "a", NOW)]
    negated = cohort(Group("AND", (PersonLeaf("plan", "exact", "pro", negation=True),)), cohort_id=2)
    assert _members([cohort(DID_A), negated], events=events, persons=persons) == {1: set(), 2: set()}


def test_a_cohort_considers_only_persons_of_its_team():
    events = [RawEvent(1, "p", "a", NOW), RawEvent(2, "q", "a", NOW)]
    assert _members([cohort(DID_A, team_id=1), cohort(DID_A, cohort_id=2, team_id=2)], events=events) == {
        1: {"p"},
        2: {"q"},
    }


def test_events_of_another_team_do_not_count_for_the_same_person_id():
    events = [RawEvent(2, "p", "a", NOW), RawEvent(1, "p", "other", NOW)]
    assert _members([cohort(DID_A, team_id=1)], events=events) == {1: set()}


def test_deleted_cohort_is_empty():
    events = [RawEvent(1, "p", "a", NOW)]
    deleted = CohortDefinition(id=1, team_id=1, version=1, root=Group("AND", (DID_A,)), deleted=True)
    assert _members([deleted], events=events) == {1: set()}


def test_static_cohort_holds_its_known_live_listed_members():
    events = [RawEvent(1, "p", "x", NOW), RawEvent(1, "q", "x", NOW)]
    persons = [RawPerson(1, "q", {}, version=1, is_deleted=True)]
    static = CohortDefinition(id=5, team_id=1, version=1, is_static=True)
    assert _members([static], events=events, persons=persons, static={5: {"p", "q", "unknown"}}) == {5: {"p"}}


def test_cohort_in_cohort_is_resolved_in_dependency_order_whatever_the_mapping_order():
    """Scenario: cohort 1 refers to cohort 2 (listed later); 2 holds p; 1 = NOT in 2 -> only q."""
    events = [RawEvent(1, "p", "a", NOW), RawEvent(1, "q", "b", NOW)]
    outer = cohort(Group("AND", (CohortLeaf(2, negation=True),)), cohort_id=1)
    inner = cohort(DID_A, cohort_id=2)
    assert _members([outer, inner], events=events) == {1: {"q"}, 2: {"p"}}


def test_reference_window_counts_the_first_microsecond_of_the_first_bucket():
    day_start = NOW // DAY_US * DAY_US
    inside = [RawEvent(1, "p", "a", day_start - DAY_US)]
    outside = [RawEvent(1, "p", "a", day_start - DAY_US - 1)]
    assert _members([cohort(DID_A)], events=inside) == {1: {"p"}}
    assert _members([cohort(DID_A)], events=outside) == {1: set()}


# --- differential: the evaluator over facts built from raw events agrees with the reference ----


PERSONS = ["p1", "p2", "p3"]


@st.composite
def scenarios(draw):
    now_us = draw(nows)
    first = draw(trees())
    second = draw(trees(cohort_ids=(1,)))
    definitions = [
        cohort(first, cohort_id=1),
        cohort(second, cohort_id=2),
        CohortDefinition(id=3, team_id=1, version=1, is_static=True),
        cohort(draw(trees(cohort_ids=(2, 3))), cohort_id=4),
    ]
    events = draw(event_lists(now_us, PERSONS))
    persons = []
    for person_id in PERSONS:
        if draw(st.booleans()):
            persons.append(
                RawPerson(
                    1,
                    person_id,
                    draw(person_properties),
                    version=draw(st.integers(0, 2)),
                    is_deleted=draw(st.booleans()),
                )
            )
    static = {3: set(draw(st.lists(st.sampled_from(PERSONS), max_size=2)))}
    return now_us, definitions, events, persons, static


def _incremental_members(now_us, definitions, events, persons, static):
    """What the worker would hold: evaluate() per known live person, cohorts in dependency order."""
    latest: dict[str, RawPerson] = {}
    for person in persons:
        if person.person_id not in latest or person.version > latest[person.person_id].version:
            latest[person.person_id] = person
    known = {e.person_id for e in events} | set(latest)
    roots = [d.root for d in definitions if d.root is not None]
    members: dict[int, set[str]] = {d.id: set() for d in definitions}
    for person_id in sorted(known):
        record = latest.get(person_id)
        if record is not None and record.is_deleted:
            continue
        facts = facts_for(
            roots,
            [e for e in events if e.person_id == person_id],
            properties=record.properties if record else {},
            static=[cid for cid, ids in static.items() if person_id in ids],
        )
        bits: dict[int, bool] = {}
        for definition in definitions:  # ids are already in dependency order
            bits[definition.id] = evaluate(definition, facts, now_us, bits).member
            if bits[definition.id]:
                members[definition.id].add(person_id)
    return members


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_evaluate_over_raw_facts_agrees_with_reference(scenario):
    now_us, definitions, events, persons, static = scenario
    expected = reference_members({d.id: d for d in definitions}, events, persons, static, now_us)
    assert _incremental_members(now_us, definitions, events, persons, static) == expected


def test_cohort_leaf_to_another_teams_cohort_is_never_satisfied():
    """Scenario: team 2's cohort 2 holds person id "p"; team 1's cohort refers to it; team 1's "p"
    is a different person and must not match."""
    events = [RawEvent(1, "p", "x", NOW), RawEvent(2, "p", "a", NOW)]
    other_team = cohort(DID_A, cohort_id=2, team_id=2)
    referring = cohort(CohortLeaf(2), cohort_id=1, team_id=1)
    assert _members([referring, other_team], events=events) == {1: set(), 2: {"p"}}
