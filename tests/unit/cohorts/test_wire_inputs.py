"""Hot messages on the wire: each hand-written `to_dict` stays byte-identical to the `asdict` form."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, asdict

import orjson
import pytest

from cohorts.wire import EventInput, MembershipChange, PersonInput, WireError, decode_person_input, person_input_of


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


def test_inputs_as_ingest_writes_them_read_as_the_keyword_constructor_builds_them():
    """Scenario: `to_dict` forms (every field and the kind) are built field by field; the objects
    equal, hash-compare and repr as those the dataclass constructor builds, and stay frozen."""
    event = EventInput(1, "p", "e", 5, {"a": 1}, None, ("t", 0, 3))
    person = PersonInput(1, "p", {"plan": "pro"}, 7, False, True, None, None)
    for item in (event, person):
        read = person_input_of(orjson.loads(item.to_bytes()))
        assert type(read) is type(item) and read == item and repr(read) == repr(item)
        with pytest.raises(FrozenInstanceError):
            read.team_id = 2  # type: ignore[misc]


def test_inputs_with_other_fields_take_the_keyword_path():
    """Scenario: a field left out takes its default, an unknown one is refused, as before."""
    short = {"kind": "event", "team_id": 1, "person_id": "p", "event": "e", "timestamp_us": 5, "properties": {}}
    assert person_input_of(short) == EventInput(1, "p", "e", 5, {})
    with pytest.raises(WireError, match="EventInput"):
        person_input_of({**short, "uuid": None, "source": None, "extra": 1})
    with pytest.raises(WireError, match="PersonInput"):
        person_input_of({"kind": "person", "team_id": 1, "person_id": "p", "properties": {}})
