"""The fold's per-team memo (matched matchers per event shape, targeted steps) gives what matching afresh gives."""

from __future__ import annotations

from cohorts.timestamps import parse_timestamp
from cohorts.wire import EventInput
from stream.fold import apply_event
from stream.state.record import SOURCE_EVENTS
from tests.unit.stream.cohort_records import catalog_of, group, performed, record

NOW = parse_timestamp("2025-01-15 12:00:00")
DAY = 86_400_000_000


def event(name: str, ts_us: int, person: str = "p1", **props: object) -> EventInput:
    return EventInput(team_id=1, person_id=person, event=name, timestamp_us=ts_us, properties=dict(props))


ORIGIN = (SOURCE_EVENTS, 0, 1)


def entered(flips: list) -> list[int]:
    return [f.cohort_id for f in flips if f.entered]


def test_values_python_treats_as_one_key_are_matched_each_on_its_own():
    """`1`, `True` and `1.0` are one dict key but not one property value: `exact "1"` matches the
    number 1 (and 1.0), never `true`, whichever of them came first."""
    leaf = performed("$pageview", event_filters=[{"type": "event", "key": "n", "value": "1"}])
    team = catalog_of((10, record(10, group(leaf)))).team(1)
    for index, (value, matches) in enumerate([(True, False), (1, True), (1.0, True), ("1", True), (True, False)]):
        result = apply_event(
            None, event("$pageview", NOW, person=f"p{index}", n=value), (SOURCE_EVENTS, 0, 1), team, NOW
        )
        assert entered(result.flips) == ([10] if matches else []), value


def test_the_same_filter_values_give_the_same_answer_for_every_person():
    leaf = performed("$pageview", event_filters=[{"type": "event", "key": "path", "value": "/pricing"}])
    team = catalog_of((10, record(10, group(leaf))), (11, record(11, group(performed("$pageview"))))).team(1)
    for index in range(3):
        for path, expected in (("/pricing", [10, 11]), ("/home", [11]), (None, [11])):
            props = {} if path is None else {"path": path}
            person = f"{path}-{index}"
            result = apply_event(
                None, event("$pageview", NOW, person=person, **props), (SOURCE_EVENTS, 0, 1), team, NOW
            )
            assert entered(result.flips) == expected, (path, index)


def test_a_changed_catalog_is_matched_against_its_new_filters():
    first = performed("$pageview", event_filters=[{"type": "event", "key": "path", "value": "/pricing"}])
    catalog = catalog_of((10, record(10, group(first))))
    hit = apply_event(None, event("$pageview", NOW, path="/pricing"), (SOURCE_EVENTS, 0, 1), catalog.team(1), NOW)
    assert entered(hit.flips) == [10]
    second = performed("$pageview", event_filters=[{"type": "event", "key": "path", "value": "/home"}])
    catalog.apply(b"10", record(10, group(second), version=2), 1)
    team = catalog.team(1)
    miss = apply_event(None, event("$pageview", NOW, person="p2", path="/pricing"), (SOURCE_EVENTS, 0, 2), team, NOW)
    assert entered(miss.flips) == []
    home = apply_event(None, event("$pageview", NOW, person="p3", path="/home"), (SOURCE_EVENTS, 0, 3), team, NOW)
    assert entered(home.flips) == [10]


def test_a_known_person_evaluates_only_the_cohorts_reading_what_matched_then_their_dependants():
    """Targeted steps: cohort 12 refers to 10, so it follows 10's flip; 11 reads another event."""
    in_10 = {"type": "cohort", "key": "id", "value": 10, "negation": False}
    team = catalog_of(
        (10, record(10, group(performed("$pageview", 1)))),
        (11, record(11, group(performed("checkout", 1)))),
        (12, record(12, group(in_10))),
    ).team(1)
    known = apply_event(None, event("signed_up", NOW - 5 * DAY), (SOURCE_EVENTS, 0, 1), team, NOW - 5 * DAY)
    assert known.flips == []
    viewed = apply_event(known.record, event("$pageview", NOW), (SOURCE_EVENTS, 0, 2), team, NOW)
    assert [(f.cohort_id, f.entered) for f in viewed.flips] == [(10, True), (12, True)]
    again = apply_event(viewed.record, event("$pageview", NOW + 1), (SOURCE_EVENTS, 0, 3), team, NOW + 1)
    assert again.flips == []
