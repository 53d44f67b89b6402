"""Ingest decoding of PostHog formats: every malformed kind gets its own dead-letter reason."""

from __future__ import annotations

import orjson
import pytest

from cohorts.timestamps import format_iso, parse_timestamp
from stream.posthog import (
    FUTURE_TOLERANCE_US,
    MAX_MESSAGE_BYTES,
    Rejected,
    decode_distinct_id,
    decode_event,
    decode_person,
)

NOW = parse_timestamp("2025-01-15 12:00:00")
POS = ("clickhouse_events_json", 3, 42)


def _event(**overrides) -> dict:
    base = {
        "uuid": "0190-abc",
        "event": "$pageview",
        "properties": '{"path": "/pricing", "n": 3}',
        "timestamp": "2025-01-15 10:00:00.123456",
        "team_id": 2,
        "project_id": 2,
        "distinct_id": "d1",
        "elements_chain": "",
        "created_at": "2025-01-15 10:00:01.000000",
        "person_id": "018f-person",
        "person_properties": '{"plan": "pro"}',
        "person_mode": "full",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def _raw(data: object) -> bytes:
    return orjson.dumps(data)


def test_a_clickhouse_event_decodes_with_its_source_position():
    item = decode_event(_raw(_event()), POS, NOW)
    assert item.team_id == 2 and item.person_id == "018f-person" and item.event == "$pageview"
    assert item.timestamp_us == parse_timestamp("2025-01-15 10:00:00.123456")
    assert item.properties == {"path": "/pricing", "n": 3}
    assert item.source == POS and item.uuid == "0190-abc"


def test_properties_may_be_an_object_and_timestamps_iso():
    item = decode_event(_raw(_event(properties={"a": 1}, timestamp="2025-01-15T10:00:00+00:00")), POS, NOW)
    assert item.properties == {"a": 1}
    assert item.timestamp_us == parse_timestamp("2025-01-15 10:00:00")


def test_missing_or_null_properties_are_empty():
    assert decode_event(_raw(_event(properties=_DROP)), POS, NOW).properties == {}
    assert decode_event(_raw(_event(properties=None)), POS, NOW).properties == {}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty value"),
        (b"", "empty value"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "oversized"),
        (b'{"event": "\xff"}', "invalid UTF-8"),
        (b'{"event": "\xed\xa0\x80"}', "invalid UTF-8"),  # an encoded surrogate
        (b'{"event": 1}\xc0\x80', "invalid UTF-8"),  # after the object, in an overlong form
        (b"{not json", "not JSON"),
        (b'\xef\xbb\xbf{"event": "x"}', "not JSON"),  # valid UTF-8 (a byte order mark), refused by orjson
        (b"[1, 2]", "not a JSON object"),
        (_raw(_event(team_id=_DROP)), "missing team_id"),
        (_raw(_event(team_id="2")), "invalid team_id"),
        (_raw(_event(team_id=True)), "invalid team_id"),
        (_raw(_event(team_id=-1)), "invalid team_id"),
        (_raw(_event(person_id=_DROP)), "missing person_id"),
        (_raw(_event(person_id="")), "missing person_id"),
        (_raw(_event(person_id=7)), "invalid person_id"),
        (_raw(_event(event=_DROP)), "missing event"),
        (_raw(_event(event=["x"])), "invalid event"),
        (_raw(_event(timestamp=_DROP)), "missing timestamp"),
        (_raw(_event(timestamp="last tuesday")), "invalid timestamp"),
        (_raw(_event(timestamp=1736935200)), "invalid timestamp"),
        (_raw(_event(properties="{oops")), "invalid properties"),
        (_raw(_event(properties="[1]")), "invalid properties"),
        (_raw(_event(properties=5)), "invalid properties"),
    ],
)
def test_malformed_events_are_rejected_with_their_reason(raw, reason):
    with pytest.raises(Rejected) as info:
        decode_event(raw, POS, NOW)
    assert info.value.reason == reason


def test_a_timestamp_more_than_a_day_ahead_of_the_worker_clock_is_rejected():
    """Scenario: exactly one day ahead is accepted (clock skew); one µs more is refused."""
    edge = NOW + FUTURE_TOLERANCE_US
    assert decode_event(_raw(_event(timestamp=format_iso(edge))), POS, NOW).timestamp_us == edge
    with pytest.raises(Rejected, match="timestamp in the future"):
        decode_event(_raw(_event(timestamp=format_iso(edge + 1))), POS, NOW)


def _person(**overrides) -> dict:
    base = {
        "id": "018f-person",
        "created_at": "2024-05-01 00:00:00",
        "team_id": 2,
        "properties": '{"plan": "pro"}',
        "is_identified": 1,
        "is_deleted": 0,
        "version": 7,
        "timestamp": "2025-01-15 10:00:00",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def test_a_clickhouse_person_decodes():
    item = decode_person(_raw(_person()), ("clickhouse_person", 0, 5))
    assert (item.team_id, item.person_id, item.version) == (2, "018f-person", 7)
    assert item.properties == {"plan": "pro"} and item.is_identified and not item.is_deleted
    assert item.created_at_us == parse_timestamp("2024-05-01 00:00:00")
    assert item.source == ("clickhouse_person", 0, 5)


def test_a_person_tombstone_flag_decodes_as_deleted():
    assert decode_person(_raw(_person(is_deleted=1)), POS).is_deleted
    assert decode_person(_raw(_person(is_deleted=True)), POS).is_deleted


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_person(id=_DROP), "missing id"),
        (_person(id=12), "invalid id"),
        (_person(team_id=_DROP), "missing team_id"),
        (_person(version=_DROP), "missing version"),
        (_person(version="7"), "invalid version"),
        (_person(version=-1), "invalid version"),
        (_person(is_deleted=2), "invalid is_deleted"),
        (_person(is_deleted="yes"), "invalid is_deleted"),
        (_person(properties="not json"), "invalid properties"),
        (_person(created_at="soon"), "invalid created_at"),
    ],
)
def test_malformed_persons_are_rejected_with_their_reason(data, reason):
    with pytest.raises(Rejected) as info:
        decode_person(_raw(data), POS)
    assert info.value.reason == reason


def test_distinct_id_rows_are_validated():
    row = {"team_id": 2, "distinct_id": "d1", "person_id": "p1", "is_deleted": 0, "version": 3}
    assert decode_distinct_id(_raw(row)).person_id == "p1"
    with pytest.raises(Rejected, match="missing distinct_id"):
        decode_distinct_id(_raw({**row, "distinct_id": None}))
    with pytest.raises(Rejected, match="invalid version"):
        decode_distinct_id(_raw({**row, "version": 1.5}))
