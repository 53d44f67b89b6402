"""Compiled plans give exactly what the evaluator gives: membership and next deadline."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts.evaluate import evaluate
from cohorts.model import BehavioralLeaf, CohortDefinition, CohortLeaf, Group, PersonLeaf
from cohorts.plan import TeamPlan
from tests.unit.cohorts.eval_helpers import DAY_US, RawFacts, cohort, facts_for
from tests.unit.cohorts.eval_strategies import BASE_US, event_lists, nows, person_properties, trees


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_plan_of_random_cohorts_agrees_with_evaluate(data):
    """Scenario: three random cohorts (the third may refer to the first two), one person's history
    and now; evaluated in one run, in order, each result recorded before the next cohort reads it.
    Member and deadline equal evaluate()'s for every cohort."""
    now_us = data.draw(nows)
    roots = [data.draw(trees()), data.draw(trees()), data.draw(trees(cohort_ids=(1, 2)))]
    definitions = [cohort(root, cohort_id=i) for i, root in enumerate(roots, start=1)]
    events = data.draw(event_lists(now_us, ["p"]))
    properties = data.draw(person_properties)
    facts = facts_for(roots, events, properties)
    bits: dict[int, bool] = {}
    run = TeamPlan(definitions).run(facts, now_us, bits)
    for definition in definitions:
        expected = evaluate(definition, facts, now_us, bits)
        assert run.evaluate(definition.id) == (expected.member, expected.next_deadline_us)
        bits[definition.id] = expected.member


def test_equal_leaves_of_different_cohorts_are_prepared_once():
    """Scenario: `A`, `NOT A` and `A AND B` in three cohorts share the leaf A."""
    pageview = BehavioralLeaf(kind="performed_event", event="a", time_value=7, time_interval="day")
    plan_b = PersonLeaf("plan", "exact", "pro")
    negated = BehavioralLeaf(kind="performed_event", event="a", time_value=7, time_interval="day", negation=True)
    plan = TeamPlan([cohort(pageview, 1), cohort(negated, 2), cohort(Group("AND", (pageview, plan_b)), 3)])
    assert plan.leaf_count == 2
    facts = facts_for([Group("AND", (pageview,))], [("a", BASE_US - DAY_US)], {"plan": "pro"})
    run = plan.run(facts, BASE_US, {})
    assert run.evaluate(1)[0] is True
    assert run.evaluate(2)[0] is False
    assert run.evaluate(3)[0] is True
    assert run.evaluate(1)[1] == run.evaluate(2)[1] == run.evaluate(3)[1] is not None


def test_a_cohort_leaf_reads_the_memberships_at_the_time_it_is_evaluated():
    plan = TeamPlan([cohort(CohortLeaf(5), 1), cohort(CohortLeaf(5, negation=True), 2)])
    bits: dict[int, bool] = {}
    run = plan.run(facts_for([], []), BASE_US, bits)
    assert run.evaluate(1) == (False, None)
    bits[5] = True
    assert run.evaluate(1) == (True, None)
    assert run.evaluate(2) == (False, None)


def test_static_deleted_and_empty_cohorts_evaluate_as_evaluate_does():
    static = CohortDefinition(id=1, team_id=1, version=1, is_static=True)
    deleted = cohort(PersonLeaf("plan", "is_set"), 2, deleted=True)
    empty = CohortDefinition(id=3, team_id=1, version=1, root=None)
    empty_or = cohort(Group("OR", ()), 4)
    empty_and = cohort(Group("AND", ()), 5)
    facts = facts_for([], [], {"plan": "pro"}, static=[1])
    run = TeamPlan([static, deleted, empty, empty_or, empty_and]).run(facts, BASE_US, {})
    for definition in (static, deleted, empty, empty_or, empty_and):
        expected = evaluate(definition, facts, BASE_US, {})
        assert run.evaluate(definition.id) == (expected.member, expected.next_deadline_us)
    assert run.evaluate(1) == (True, None)


def test_a_behavioural_cohort_of_a_person_without_history_answers_as_evaluate_does():
    """Scenario: the plan answers a behavioural-only cohort from its precomputed "no history" result
    when none of its matchers ever matched; it must be evaluate()'s answer at any now, and a
    matching event must still be seen."""
    never = BehavioralLeaf(kind="performed_event", event="a", time_value=7, time_interval="day", negation=True)
    rarely = BehavioralLeaf(
        kind="performed_event_regularly", event="b", time_value=1, time_interval="day", total_periods=3, min_periods=0
    )
    definitions = [cohort(never, 1), cohort(rarely, 2)]
    for now_us in (BASE_US, BASE_US + 123 * DAY_US + 7):
        facts = facts_for([d.root for d in definitions], [])
        run = TeamPlan(definitions).run(facts, now_us, {})
        for definition in definitions:
            expected = evaluate(definition, facts, now_us, {})
            assert run.evaluate(definition.id) == (expected.member, expected.next_deadline_us) == (True, None)
    seen = facts_for([definitions[0].root], [("a", BASE_US - DAY_US)])
    assert TeamPlan(definitions).run(seen, BASE_US, {}).evaluate(1)[0] is False


class _ListingFacts(RawFacts):
    """RawFacts that can list its matchers with history, as the worker's record view does."""

    def seen_matchers(self) -> set[str]:
        return {h for h in self.matched if self.first_seen_us(h) is not None}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_facts_that_list_their_matchers_give_the_same_results(data):
    """Scenario: as the random-cohorts test, with facts offering `seen_matchers()` (the plan then
    asks it once per run instead of `first_seen_us` per matcher). Same results as evaluate()."""
    now_us = data.draw(nows)
    roots = [data.draw(trees()), data.draw(trees()), data.draw(trees(cohort_ids=(1, 2)))]
    definitions = [cohort(root, cohort_id=i) for i, root in enumerate(roots, start=1)]
    events = data.draw(event_lists(now_us, ["p"]))
    raw = facts_for(roots, events, data.draw(person_properties))
    facts = _ListingFacts(properties=raw.properties, matched=raw.matched, static=raw.static)
    bits: dict[int, bool] = {}
    run = TeamPlan(definitions).run(facts, now_us, bits)
    for definition in definitions:
        expected = evaluate(definition, facts, now_us, bits)
        assert run.evaluate(definition.id) == (expected.member, expected.next_deadline_us)
        bits[definition.id] = expected.member


def test_steps_follow_the_given_order_and_call_what_evaluate_calls():
    definitions = [
        cohort(PersonLeaf("plan", "exact", "pro"), 7),
        CohortDefinition(id=3, team_id=1, version=4, root=Group("AND", (CohortLeaf(7),))),
    ]
    plan = TeamPlan(definitions)
    assert [(cohort_id, version) for cohort_id, version, _ in plan.steps] == [(7, 1), (3, 4)]
    facts = facts_for([], [], {"plan": "pro"})
    run = plan.run(facts, BASE_US, {7: True})
    for cohort_id, _, compiled in plan.steps:
        assert compiled(run) == plan.compiled[cohort_id](run) == run.evaluate(cohort_id)


def test_silent_cohorts_are_the_behavioural_ones_that_hold_nobody_without_history():
    """Scenario: `performed` (false, no deadline, without events) is silent; `fewer than 3` (true
    for nobody's events), a person-property cohort and a static one are not. Evaluating only
    `steps_with_history` for a person without history gives what evaluating every step gives."""
    performed = BehavioralLeaf(kind="performed_event", event="a", time_value=7, time_interval="day")
    fewer = BehavioralLeaf(
        kind="performed_event_multiple", event="a", time_value=7, time_interval="day", operator="lt", operator_value=3
    )
    definitions = [
        cohort(performed, 1),
        cohort(fewer, 2),
        cohort(PersonLeaf("plan", "exact", "pro"), 3),
        CohortDefinition(id=4, team_id=1, version=1, is_static=True),
        cohort(Group("OR", (CohortLeaf(1), CohortLeaf(2))), 5),
    ]
    plan = TeamPlan(definitions)
    assert plan.silent_without_history == {1}
    assert [step[0] for step in plan.steps_with_history] == [2, 3, 4, 5]
    facts = facts_for([d.root for d in definitions if d.root is not None], [], {"plan": "pro"})
    everything: dict[int, bool] = {}
    run = plan.run(facts, BASE_US, everything)
    for cohort_id, _, compiled in plan.steps:
        everything[cohort_id] = compiled(run)[0]
    quiet: dict[int, bool] = {}
    run = plan.run(facts, BASE_US, quiet)
    for cohort_id, _, compiled in plan.steps_with_history:
        quiet[cohort_id] = compiled(run)[0]
    assert {c for c, member in everything.items() if member} == {c for c, member in quiet.items() if member}
