"""Hot messages on the wire: each hand-written `to_dict` stays byte-identical to the `asdict` form."""

from __future__ import annotations

from dataclasses import asdict

import orjson

from cohorts.wire import EventInput, MembershipChange, PersonInput, decode_person_input, person_input_of


def test_event_input_bytes_equal_the_asdict_form_and_round_trip():
    """Scenario: a field added to EventInput but not to its `to_dict` would fail here."""
    item = EventInput(1, "p:1", "$pageview", 5, {"$browser": "Chrome", "n": [1, {"a": None}]}, "u-1", ("t", 2, 3))
    assert item.to_bytes() == orjson.dumps({**asdict(item), "kind": "event"})
    assert decode_person_input(item.to_bytes()) == item


def test_person_input_bytes_equal_the_asdict_form_and_round_trip():
    item = PersonInput(1, "p", {"plan": "pro"}, 7, is_deleted=True, is_identified=True, created_at_us=9, source=None)
    assert item.to_bytes() == orjson.dumps({**asdict(item), "kind": "person"})
    assert decode_person_input(item.to_bytes()) == item


def test_membership_change_bytes_equal_the_asdict_form_and_round_trip():
    change = MembershipChange(1, 2, "p", "entered", "2025-01-01T00:00:00.000000Z", 3)
    assert change.to_bytes() == orjson.dumps(asdict(change))
    assert MembershipChange.from_bytes(change.to_bytes()) == change
    assert MembershipChange.encode(1, 2, "p", "entered", "2025-01-01T00:00:00.000000Z", 3) == change.to_bytes()


def test_reading_a_batch_element_leaves_the_element_as_it_came():
    """A batch element that fails later checks is dead-lettered as it arrived, `kind` included."""
    element = {"kind": "event", "team_id": 1, "person_id": "p", "event": "e", "timestamp_us": 5,
               "properties": {}, "uuid": None, "source": ["events", 0, 3]}  # fmt: skip
    before = dict(element)
    item = person_input_of(element)
    assert isinstance(item, EventInput) and item.source == ("events", 0, 3)
    assert element == before
