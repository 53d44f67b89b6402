"""State requirements: what the worker keeps per matcher is enough for the evaluator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts.evaluate import evaluate
from cohorts.model import BehavioralLeaf, CohortDefinition, EventFilter, Group
from cohorts.requirements import MatcherRequirement, matchers_by_event, state_requirements
from cohorts.timebase import bucket_of
from cohorts.timestamps import parse_timestamp
from tests.unit.cohorts.eval_helpers import DAY_US, MINUTE_US, RawFacts, cohort, facts_for
from tests.unit.cohorts.eval_strategies import event_lists, nows, person_properties, trees

CHROME = (EventFilter("browser", "exact", "Chrome"),)


def _requirements(*leaves: BehavioralLeaf) -> dict[str, MatcherRequirement]:
    return state_requirements([cohort(Group("AND", leaves))])


def test_sliding_windows_keep_their_span_per_granularity_and_share_the_max():
    a_week = BehavioralLeaf(kind="performed_event", event="a", time_value=1, time_interval="week")
    a_month = BehavioralLeaf(kind="performed_event_multiple", event="a", time_value=1, time_interval="month")
    a_hour = BehavioralLeaf(kind="performed_event", event="a", time_value=2, time_interval="hour")
    (requirement,) = _requirements(a_week, a_month, a_hour).values()
    assert requirement.granularities == {"day": 30, "minute": 120}
    assert requirement.timestamps_horizon_us is None
    assert requirement.timestamp_cutoff_us(0) is None
    assert not requirement.needs_timestamps


def test_event_filters_make_a_separate_matcher():
    plain = BehavioralLeaf(kind="performed_event", event="a", time_value=1, time_interval="day")
    chrome = BehavioralLeaf(kind="performed_event", event="a", event_filters=CHROME, time_value=1, time_interval="day")
    requirements = _requirements(plain, chrome)
    assert set(requirements) == {plain.matcher_hash, chrome.matcher_hash}
    assert requirements[chrome.matcher_hash].filters == CHROME
    assert {r.matcher_hash for r in matchers_by_event(requirements)["a"]} == set(requirements)


def test_sequence_keeps_timestamps_of_both_steps_and_the_second_by_name_only():
    leaf = BehavioralLeaf(
        kind="performed_event_sequence",
        event="a",
        event_filters=CHROME,
        time_value=1,
        time_interval="day",
        seq_event="b",
        seq_time_value=3,
        seq_time_interval="day",
    )
    requirements = _requirements(leaf)
    first, second = requirements[leaf.matcher_hash], requirements[leaf.seq_matcher_hash]
    assert (second.event, second.filters) == ("b", ())
    assert first.timestamps_horizon_us == second.timestamps_horizon_us == 2 * DAY_US
    assert first.timestamp_cutoff_us(10 * DAY_US) == 8 * DAY_US
    assert sorted(matchers_by_event(requirements)) == ["a", "b"]


def test_explicit_windows_keep_timestamps_from_their_start():
    relative = BehavioralLeaf(kind="performed_event", event="a", explicit_datetime="-3d")
    absolute = BehavioralLeaf(kind="performed_event", event="b", explicit_datetime="2024-01-01")
    requirements = _requirements(relative, absolute)
    assert requirements[relative.matcher_hash].timestamps_horizon_us == 3 * DAY_US
    since = parse_timestamp("2024-01-01T00:00:00Z")
    assert requirements[absolute.matcher_hash].timestamps_since_us == since
    assert requirements[absolute.matcher_hash].timestamp_cutoff_us(since + 99 * DAY_US) == since


def test_regularly_keeps_every_period_and_two_window_kinds_keep_both_windows():
    regular = BehavioralLeaf(
        kind="performed_event_regularly", event="a", time_value=2, time_interval="day", total_periods=3, min_periods=2
    )
    restarted = BehavioralLeaf(
        kind="restarted_performing_event",
        event="b",
        time_value=1,
        time_interval="week",
        seq_time_value=1,
        seq_time_interval="hour",
    )
    requirements = _requirements(regular, restarted)
    assert requirements[regular.matcher_hash].granularities == {"day": 5}
    assert requirements[restarted.matcher_hash].granularities == {"day": 7, "minute": 60}


def test_first_time_registers_its_matcher_for_first_seen_only():
    leaf = BehavioralLeaf(kind="performed_event_first_time", event="a", time_value=1, time_interval="day")
    (requirement,) = _requirements(leaf).values()
    assert requirement.granularities == {}
    assert not requirement.needs_timestamps


def test_static_deleted_and_empty_definitions_need_nothing():
    leaf = BehavioralLeaf(kind="performed_event", event="a", time_value=1, time_interval="day")
    definitions = [
        CohortDefinition(id=1, team_id=1, version=1, is_static=True, root=Group("AND", (leaf,))),
        CohortDefinition(id=2, team_id=1, version=1, deleted=True, root=Group("AND", (leaf,))),
        CohortDefinition(id=3, team_id=1, version=1),
    ]
    assert state_requirements(definitions) == {}


# --- the pruned state a worker keeps gives the same answers as the full history ---------------


@dataclass
class PrunedFacts:
    """Full facts cut down to exactly what the requirements ask for at `now_us`."""

    full: RawFacts
    requirements: Mapping[str, MatcherRequirement]
    now_us: int

    @property
    def properties(self):
        return self.full.properties

    def buckets(self, matcher_hash: str, granularity: str) -> Mapping[int, int]:
        requirement = self.requirements.get(matcher_hash)
        if requirement is None or granularity not in requirement.granularities:
            return {}
        oldest = bucket_of(self.now_us, granularity) - requirement.granularities[granularity]
        return {b: c for b, c in self.full.buckets(matcher_hash, granularity).items() if b >= oldest}

    def first_seen_us(self, matcher_hash: str) -> int | None:
        return self.full.first_seen_us(matcher_hash) if matcher_hash in self.requirements else None

    def timestamps_us(self, matcher_hash: str) -> Sequence[int]:
        requirement = self.requirements.get(matcher_hash)
        cutoff = None if requirement is None else requirement.timestamp_cutoff_us(self.now_us)
        if cutoff is None:
            return []
        return [ts for ts in self.full.timestamps_us(matcher_hash) if ts >= cutoff]

    def is_static_member(self, cohort_id: int) -> bool:
        return self.full.is_static_member(cohort_id)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_pruned_state_gives_the_same_membership_and_deadline(data):
    now_us = data.draw(nows)
    definitions = [cohort(data.draw(trees()), cohort_id=1), cohort(data.draw(trees()), cohort_id=2)]
    events = data.draw(event_lists(now_us, ["p"]))
    full = facts_for([d.root for d in definitions], events, data.draw(person_properties))
    requirements = state_requirements(definitions)
    pruned = PrunedFacts(full, requirements, now_us)
    for definition in definitions:
        assert evaluate(definition, pruned, now_us, {}) == evaluate(definition, full, now_us, {})


def test_pruned_state_example_minute_window():
    leaf = BehavioralLeaf(kind="performed_event", event="a", time_value=5, time_interval="minute")
    definition = cohort(leaf)
    now_us = 1_000 * MINUTE_US + 7
    full = facts_for([definition.root], [("a", now_us - 5 * MINUTE_US - 7), ("a", now_us - 6 * MINUTE_US)])
    pruned = PrunedFacts(full, state_requirements([definition]), now_us)
    assert pruned.buckets(leaf.matcher_hash, "minute") == {995: 1}
    assert evaluate(definition, pruned, now_us, {}) == evaluate(definition, full, now_us, {})
