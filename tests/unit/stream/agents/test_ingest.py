"""The ingest gate: which events reach the fold, with which properties, and its memory of persons."""

from __future__ import annotations

from cohorts.wire import EventInput
from stream.agents.ingest import KnownCache, gate_event
from tests.unit.stream.cohort_records import catalog_of, group, performed, record


def test_the_first_sight_of_a_person_is_forwarded_and_later_ones_are_not():
    cache = KnownCache(size=10)
    assert cache.seen(b"1:a") is False
    assert cache.seen(b"1:a") is True
    assert cache.seen(b"2:a") is False


def test_the_least_recently_seen_person_is_forgotten_first():
    """Scenario: forgetting only costs one more forwarded (stripped) event, never correctness."""
    cache = KnownCache(size=2)
    cache.seen(b"a")
    cache.seen(b"b")
    cache.seen(b"a")
    cache.seen(b"c")
    assert cache.seen(b"a") is True
    assert cache.seen(b"b") is False


def _team():
    pageviews_by_browser = performed(
        "$pageview", event_filters=[{"type": "event", "key": "$browser", "value": "Chrome", "operator": "exact"}]
    )
    return catalog_of((1, record(1, group(pageviews_by_browser))), (2, record(2, group(performed("signed_up"))))).team(
        1
    )


def _event(name: str, **properties) -> EventInput:
    return EventInput(1, "p", name, 5, properties, "u", ("events", 0, 9))


def test_a_used_event_keeps_only_the_properties_its_filters_read():
    forwarded = gate_event(
        _event("$pageview", **{"$browser": "Chrome", "$current_url": "x"}), _team(), KnownCache(), b"1:p"
    )
    assert forwarded == _event("$pageview", **{"$browser": "Chrome"})


def test_a_used_event_without_filters_travels_without_properties():
    forwarded = gate_event(_event("signed_up", plan="pro"), _team(), KnownCache(), b"1:p")
    assert forwarded == _event("signed_up")


def test_an_event_with_nothing_to_strip_is_forwarded_as_it_is():
    item = _event("$pageview", **{"$browser": "Safari"})
    assert gate_event(item, _team(), KnownCache(), b"1:p") is item


def test_an_unused_event_is_forwarded_stripped_once_per_person_then_dropped():
    """Scenario: the first sight makes the person known (negated roots need it); later ones are gated."""
    known = KnownCache()
    assert gate_event(_event("purchase", total=3), _team(), known, b"1:p") == _event("purchase")
    assert gate_event(_event("purchase", total=4), _team(), known, b"1:p") is None
    assert gate_event(_event("purchase"), _team(), known, b"1:q") == _event("purchase")


def test_a_used_event_marks_its_person_as_forwarded():
    known = KnownCache()
    gate_event(_event("signed_up"), _team(), known, b"1:p")
    assert gate_event(_event("purchase"), _team(), known, b"1:p") is None
