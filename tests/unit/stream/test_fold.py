"""The pure person fold: events, person updates, static membership, ticks, recalculation, replay."""

from __future__ import annotations

from cohorts.timestamps import parse_timestamp
from cohorts.wire import ControlMessage, EventInput, PersonInput
from stream.fold import Flip, apply_event, apply_person, apply_static, reevaluate, split_person_key
from stream.state.codec import decode, encode
from stream.state.record import OUTBOX_LIMIT, SOURCE_CONTROL, SOURCE_EVENTS, SOURCE_PERSONS, PersonRecord
from tests.unit.stream.cohort_records import (
    catalog_of,
    group,
    in_cohort,
    performed,
    performed_multiple,
    person_prop,
    record,
    static,
)

NOW = parse_timestamp("2025-01-15 12:00:00")
DAY = 86_400_000_000
HOUR = 3_600_000_000


def event(name: str, ts_us: int, person: str = "p1", team: int = 1, **props) -> EventInput:
    return EventInput(team_id=team, person_id=person, event=name, timestamp_us=ts_us, properties=props)


def person(version: int, person_id: str = "p1", deleted: bool = False, **props) -> PersonInput:
    return PersonInput(team_id=1, person_id=person_id, properties=props, version=version, is_deleted=deleted)


def ev_origin(offset: int, partition: int = 0) -> tuple[int, int, int]:
    return (SOURCE_EVENTS, partition, offset)


def statuses(flips: list[Flip]) -> list[tuple[int, str]]:
    return [(f.cohort_id, "entered" if f.entered else "left") for f in flips]


def test_an_event_in_the_window_enters_a_performed_event_cohort():
    catalog = catalog_of((10, record(10, group(performed("$pageview", 7)), version=3)))
    result = apply_event(None, event("$pageview", NOW - DAY), ev_origin(5), catalog.team(1), NOW)
    assert result.outcome == "applied"
    assert result.flips == [Flip(1, "p1", 10, True, 3, NOW)]
    assert result.record is not None and result.record.members == {10: 3}
    assert result.record.next_deadline_us is not None and result.record.next_deadline_us > NOW


def test_an_event_older_than_the_window_does_not_enter():
    catalog = catalog_of((10, record(10, group(performed("$pageview", 7)))))
    result = apply_event(None, event("$pageview", NOW - 9 * DAY), ev_origin(5), catalog.team(1), NOW)
    assert result.flips == []
    assert result.record is not None and result.record.known


def test_a_replayed_event_changes_nothing_and_re_emits_its_flips():
    """Scenario: the event was applied and the state written, but the worker crashed before the flip
    was produced; the replayed event must not count twice and must re-emit the flip."""
    catalog = catalog_of((10, record(10, group(performed_multiple("$pageview", "gte", 2)))))
    team = catalog.team(1)
    first = apply_event(None, event("$pageview", NOW - DAY), ev_origin(5), team, NOW)
    second = apply_event(decode(encode(first.record)), event("$pageview", NOW - DAY), ev_origin(6), team, NOW)
    assert statuses(second.flips) == [(10, "entered")]
    stored = encode(second.record)
    replay = apply_event(decode(stored), event("$pageview", NOW - DAY), ev_origin(6), team, NOW)
    assert replay.outcome == "replayed"
    assert replay.record is None
    assert replay.flips == second.flips
    older = apply_event(decode(stored), event("$pageview", NOW - DAY), ev_origin(5), team, NOW)
    assert older.outcome == "replayed" and older.flips == second.flips


def test_a_replay_from_another_source_partition_is_not_confused_with_this_one():
    catalog = catalog_of((10, record(10, group(performed_multiple("$pageview", "gte", 2)))))
    team = catalog.team(1)
    first = apply_event(None, event("$pageview", NOW - DAY), ev_origin(5, partition=0), team, NOW)
    other = apply_event(first.record, event("$pageview", NOW - DAY), ev_origin(5, partition=1), team, NOW)
    assert other.outcome == "applied"
    assert statuses(other.flips) == [(10, "entered")]


def test_outbox_keeps_only_the_last_flips():
    catalog = catalog_of((10, record(10, group(person_prop("plan", "pro")))))
    team = catalog.team(1)
    current = None
    for version in range(1, 2 * OUTBOX_LIMIT + 3):
        plan = "pro" if version % 2 else "free"
        origin = (SOURCE_PERSONS, 0, version)
        current = apply_person(current, person(version, plan=plan), origin, team, NOW).record
    assert current is not None and len(current.outbox) == OUTBOX_LIMIT
    assert current.outbox[-1].origin == (SOURCE_PERSONS, 0, 2 * OUTBOX_LIMIT + 2)


def test_person_updates_apply_only_when_the_version_is_newer():
    catalog = catalog_of((10, record(10, group(person_prop("plan", "pro")))))
    team = catalog.team(1)
    first = apply_person(None, person(5, plan="pro"), (SOURCE_PERSONS, 0, 1), team, NOW)
    assert statuses(first.flips) == [(10, "entered")]
    stale = apply_person(first.record, person(4, plan="free"), (SOURCE_PERSONS, 0, 2), team, NOW)
    assert stale.outcome == "stale_person" and stale.record is None and stale.flips == []
    equal = apply_person(first.record, person(5, plan="free"), (SOURCE_PERSONS, 0, 3), team, NOW)
    assert equal.outcome == "stale_person"
    newer = apply_person(first.record, person(6, plan="free"), (SOURCE_PERSONS, 0, 4), team, NOW)
    assert statuses(newer.flips) == [(10, "left")]
    assert newer.record is not None and newer.record.properties == {"plan": "free"}


def test_a_deleted_person_leaves_every_cohort_and_later_events_are_ignored():
    catalog = catalog_of(
        (10, record(10, group(performed("$pageview")))),
        (11, record(11, group(person_prop("plan", "pro")))),
    )
    team = catalog.team(1)
    rec = apply_person(None, person(1, plan="pro"), (SOURCE_PERSONS, 0, 1), team, NOW).record
    rec = apply_event(rec, event("$pageview", NOW - HOUR), ev_origin(1), team, NOW).record
    assert rec is not None and set(rec.members) == {10, 11}
    deleted = apply_person(rec, person(2, deleted=True, plan="pro"), (SOURCE_PERSONS, 0, 2), team, NOW)
    assert sorted(statuses(deleted.flips)) == [(10, "left"), (11, "left")]
    assert deleted.record is not None and deleted.record.next_deadline_us is None
    later = apply_event(deleted.record, event("$pageview", NOW), ev_origin(2), team, NOW)
    assert later.outcome == "deleted_person" and later.record is None and later.flips == []


def test_a_negated_root_holds_for_a_known_person_matching_nothing():
    """Scenario: `NOT performed $purchase`; an unrelated event makes the person known, so they enter."""
    catalog = catalog_of((10, record(10, group(performed("$purchase", negation=True)))))
    result = apply_event(None, event("$pageview", NOW), ev_origin(1), catalog.team(1), NOW)
    assert statuses(result.flips) == [(10, "entered")]


def test_an_unmatched_event_for_a_known_person_needs_no_write():
    catalog = catalog_of((10, record(10, group(performed("$purchase")))))
    team = catalog.team(1)
    first = apply_event(None, event("$pageview", NOW), ev_origin(1), team, NOW)
    again = apply_event(first.record, event("$pageview", NOW), ev_origin(2), team, NOW)
    assert again.outcome == "unmatched" and again.record is None


def test_event_filters_decide_which_matcher_counts_the_event():
    leaf = performed("$pageview", event_filters=[{"type": "event", "key": "path", "value": "/pricing"}])
    catalog = catalog_of((10, record(10, group(leaf))))
    team = catalog.team(1)
    miss = apply_event(None, event("$pageview", NOW, path="/home"), ev_origin(1), team, NOW)
    assert miss.flips == []
    hit = apply_event(miss.record, event("$pageview", NOW, path="/pricing"), ev_origin(2), team, NOW)
    assert statuses(hit.flips) == [(10, "entered")]


def test_static_membership_counts_once_the_person_is_known_and_feeds_dependent_cohorts():
    """Scenario: static cohort 20 and dynamic cohort 21 = "in cohort 20". The static add arrives
    before the person is known (no flip); the first event makes them known: both flips."""
    catalog = catalog_of((20, static(20)), (21, record(21, group(in_cohort(20)))))
    team = catalog.team(1)
    add = ControlMessage(type="static_add", team_id=1, cohort_id=20, person_id="p1")
    added = apply_static(None, add, (SOURCE_CONTROL, 0, 1), team, NOW)
    assert added.flips == [] and added.record is not None and added.record.static == {20}
    known = apply_event(added.record, event("$pageview", NOW), ev_origin(1), team, NOW)
    assert statuses(known.flips) == [(20, "entered"), (21, "entered")]
    remove = ControlMessage(type="static_remove", team_id=1, cohort_id=20, person_id="p1")
    removed = apply_static(known.record, remove, (SOURCE_CONTROL, 0, 2), team, NOW)
    assert statuses(removed.flips) == [(20, "left"), (21, "left")]


def test_static_remove_for_an_unknown_record_writes_nothing():
    catalog = catalog_of((20, static(20)))
    remove = ControlMessage(type="static_remove", team_id=1, cohort_id=20, person_id="p1")
    result = apply_static(None, remove, (SOURCE_CONTROL, 0, 1), catalog.team(1), NOW)
    assert result.record is None and result.flips == []


def test_a_tick_at_the_window_edge_makes_the_person_leave_without_an_event():
    """Scenario: last 7 days, event on day D; the person stays through day D+7 and leaves when now
    enters day D+8. The record's deadline is never later than that edge."""
    catalog = catalog_of((10, record(10, group(performed("$pageview", 7)))))
    team = catalog.team(1)
    entered = apply_event(None, event("$pageview", NOW), ev_origin(1), team, NOW)
    rec = entered.record
    assert rec is not None and rec.next_deadline_us is not None
    edge = NOW // DAY * DAY + 8 * DAY
    assert NOW < rec.next_deadline_us <= edge
    before = reevaluate(decode(encode(rec)), 1, "p1", (SOURCE_CONTROL, 0, 9), team, edge - HOUR)
    assert before.flips == []
    at = reevaluate(decode(encode(rec)), 1, "p1", (SOURCE_CONTROL, 0, 9), team, edge)
    assert statuses(at.flips) == [(10, "left")]
    assert at.record is not None and at.record.next_deadline_us is None


def test_time_never_runs_backwards_for_a_record():
    """Scenario: a tick with a future now made the person leave; an event processed later at an
    earlier wall clock must not bring them back through the old window."""
    catalog = catalog_of((10, record(10, group(performed("$pageview", 7)))))
    team = catalog.team(1)
    rec = apply_event(None, event("$pageview", NOW), ev_origin(1), team, NOW).record
    later = NOW + 30 * DAY
    left = reevaluate(rec, 1, "p1", (SOURCE_CONTROL, 0, 1), team, later)
    assert statuses(left.flips) == [(10, "left")]
    unrelated_match = apply_event(left.record, event("$pageview", NOW - DAY), ev_origin(2), team, NOW)
    assert unrelated_match.flips == []


def test_recalculation_of_a_new_cohort_uses_held_buckets():
    """Scenario: cohort 10 makes the worker keep $pageview day buckets; cohort 11 (same matcher,
    at least 2 in 7 days) appears later and is computed from those buckets alone."""
    first = catalog_of((10, record(10, group(performed("$pageview", 30)))))
    team = first.team(1)
    rec = apply_event(None, event("$pageview", NOW - 2 * DAY), ev_origin(1), team, NOW).record
    rec = apply_event(rec, event("$pageview", NOW - DAY), ev_origin(2), team, NOW).record
    second = catalog_of(
        (10, record(10, group(performed("$pageview", 30)))),
        (11, record(11, group(performed_multiple("$pageview", "gte", 2, days=7)), version=4)),
    )
    result = reevaluate(decode(encode(rec)), 1, "p1", (SOURCE_CONTROL, 0, 1), second.team(1), NOW)
    assert result.flips == [Flip(1, "p1", 11, True, 4, NOW)]


def test_a_deleted_cohort_sends_left_to_its_members_with_its_version():
    live = catalog_of((10, record(10, group(performed("$pageview")), version=1)))
    rec = apply_event(None, event("$pageview", NOW), ev_origin(1), live.team(1), NOW).record
    deleted = catalog_of((10, record(10, group(performed("$pageview")), version=2, deleted=True)))
    result = reevaluate(rec, 1, "p1", (SOURCE_CONTROL, 0, 1), deleted.team(1), NOW)
    assert result.flips == [Flip(1, "p1", 10, False, 2, NOW)]
    tombstoned = catalog_of((10, record(10, group(performed("$pageview")), version=1)), (10, None))
    rec2 = apply_event(None, event("$pageview", NOW), ev_origin(1), live.team(1), NOW).record
    result2 = reevaluate(rec2, 1, "p1", (SOURCE_CONTROL, 0, 1), tombstoned.team(1), NOW)
    assert result2.flips == [Flip(1, "p1", 10, False, 1, NOW)]


def test_a_new_definition_version_without_a_bit_change_emits_nothing():
    v1 = catalog_of((10, record(10, group(performed("$pageview", 7)), version=1)))
    rec = apply_event(None, event("$pageview", NOW), ev_origin(1), v1.team(1), NOW).record
    v2 = catalog_of((10, record(10, group(performed("$pageview", 14)), version=2)))
    result = reevaluate(rec, 1, "p1", (SOURCE_CONTROL, 0, 1), v2.team(1), NOW)
    assert result.flips == []
    assert result.record is not None and result.record.members == {10: 2}


def test_state_no_cohort_needs_is_pruned():
    catalog = catalog_of((10, record(10, group(performed("$pageview", 7)))))
    team = catalog.team(1)
    rec = apply_event(None, event("$pageview", NOW - 3 * DAY), ev_origin(1), team, NOW).record
    assert rec is not None and len(rec.matchers) == 1
    (state,) = rec.matchers.values()
    assert sum(state.buckets["day"].values()) == 1
    pruned = reevaluate(rec, 1, "p1", (SOURCE_CONTROL, 0, 1), team, NOW + 10 * DAY).record
    assert pruned is not None and next(iter(pruned.matchers.values())).buckets == {}
    gone = catalog_of((10, record(10, group(person_prop("plan", "pro")), version=2)))
    dropped = reevaluate(pruned, 1, "p1", (SOURCE_CONTROL, 0, 2), gone.team(1), NOW + 10 * DAY).record
    assert dropped is not None and dropped.matchers == {}


def test_cohorts_of_another_team_are_not_evaluated():
    catalog = catalog_of((10, record(10, group(performed("$pageview")), team_id=2)))
    result = apply_event(None, event("$pageview", NOW, team=1), ev_origin(1), catalog.team(1), NOW)
    assert result.flips == []


def test_split_person_key_keeps_colons_in_person_ids():
    assert split_person_key("12:abc:def") == (12, "abc:def")


def test_fold_never_mutates_a_record_it_returns_as_unchanged():
    catalog = catalog_of((10, record(10, group(performed("$purchase")))))
    team = catalog.team(1)
    rec = apply_event(None, event("$pageview", NOW), ev_origin(1), team, NOW).record
    before = encode(rec)
    apply_event(rec, event("$pageview", NOW), ev_origin(2), team, NOW)
    assert encode(rec) == before
    assert isinstance(rec, PersonRecord)


def test_an_event_re_evaluates_cohorts_that_refer_to_a_flipped_cohort():
    """Scenario: 11 = "in cohort 10", 10 = pageview; the event touches only 10's matcher, yet 11
    follows because 10 flipped; 12 (NOT in 10) leaves."""
    catalog = catalog_of(
        (10, record(10, group(performed("$pageview")))),
        (11, record(11, group(in_cohort(10)))),
        (12, record(12, group(in_cohort(10, negation=True)))),
    )
    team = catalog.team(1)
    known = apply_person(None, person(1), (SOURCE_PERSONS, 0, 1), team, NOW)
    assert statuses(known.flips) == [(12, "entered")]
    result = apply_event(known.record, event("$pageview", NOW), ev_origin(1), team, NOW)
    assert statuses(result.flips) == [(10, "entered"), (11, "entered"), (12, "left")]


def test_a_passed_deadline_makes_any_input_evaluate_every_cohort():
    """Scenario: the pageview window of cohort 10 ended before a purchase event arrives (no tick
    came in between); the purchase must also take the person out of cohort 10."""
    catalog = catalog_of(
        (10, record(10, group(performed("$pageview", 1)))),
        (11, record(11, group(performed("purchase", 30)))),
    )
    team = catalog.team(1)
    rec = apply_event(None, event("$pageview", NOW), ev_origin(1), team, NOW).record
    later = NOW + 3 * DAY
    result = apply_event(rec, event("purchase", later), ev_origin(2), team, later)
    assert statuses(result.flips) == [(10, "left"), (11, "entered")]


def test_a_person_update_does_not_touch_behavioural_bits_before_their_deadline():
    catalog = catalog_of(
        (10, record(10, group(performed("$pageview", 7)))),
        (11, record(11, group(person_prop("plan", "pro")))),
    )
    team = catalog.team(1)
    rec = apply_event(None, event("$pageview", NOW), ev_origin(1), team, NOW).record
    result = apply_person(rec, person(1, plan="pro"), (SOURCE_PERSONS, 0, 1), team, NOW + DAY)
    assert statuses(result.flips) == [(11, "entered")]
    assert result.record is not None and result.record.members.keys() == {10, 11}


def test_a_new_person_is_in_the_cohorts_true_without_events_and_no_other():
    """Scenario: a person's first record with cohorts `performed` (false without events: skipped for
    a person without history), `fewer than 3 events` (true without any), a property cohort and one
    referring to the first two. Flips, members and deadlines are those of evaluating every cohort."""
    catalog = catalog_of(
        (10, record(10, group(performed("$pageview", 7)))),
        (11, record(11, group(performed_multiple("$pageview", "lt", 3)))),
        (12, record(12, group(person_prop("plan", "pro")))),
        (13, record(13, {"properties": {"type": "OR", "values": [in_cohort(10), in_cohort(11)]}})),
    )
    result = apply_person(None, person(1, plan="pro"), (SOURCE_PERSONS, 0, 1), catalog.team(1), NOW)
    assert sorted(statuses(result.flips)) == [(11, "entered"), (12, "entered"), (13, "entered")]
    assert result.record is not None and result.record.members == {11: 1, 12: 1, 13: 1}
    assert result.record.deadlines == {} and result.record.next_deadline_us is None


def test_a_full_evaluation_of_a_member_of_a_behavioural_cohort_without_history_lets_it_leave():
    """Scenario: a format-1 record (evaluated in full next time) says the person is in `performed`
    but holds no event state for it; the next person update evaluates that cohort too: left."""
    catalog = catalog_of(
        (10, record(10, group(performed("$pageview", 7)))), (12, record(12, group(person_prop("plan", "pro"))))
    )
    old = PersonRecord(known=True, person_version=1, members={10: 1}, deadlines=None)
    result = apply_person(old, person(2, plan="pro"), (SOURCE_PERSONS, 0, 2), catalog.team(1), NOW)
    assert sorted(statuses(result.flips)) == [(10, "left"), (12, "entered")]
    assert result.record is not None and result.record.members == {12: 1}
