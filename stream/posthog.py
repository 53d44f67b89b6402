"""PostHog's input formats -> the worker's normalised inputs, or a rejection with its reason.

Decodes `clickhouse_events_json`, `clickhouse_person` and `clickhouse_person_distinct_id`
messages (reference spec §9.2-§9.4): properties as a JSON string or an object, timestamps in
ClickHouse or ISO-8601 form. Pure: the caller passes the source position and `now`.

Every rejection is a `Rejected` whose `reason` is a short, stable phrase: it is the dead letter's
`reason` and the metrics label, so the set of reasons must stay small and fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from cohorts.timestamps import TimestampError, parse_timestamp
from cohorts.wire import EventInput, PersonInput

__all__ = [
    "FUTURE_TOLERANCE_US",
    "INT64_MAX",
    "MAX_FORWARD_BYTES",
    "MAX_ID_CHARS",
    "MAX_MESSAGE_BYTES",
    "DistinctId",
    "Rejected",
    "decode_distinct_id",
    "decode_event",
    "decode_person",
    "forwardable",
]

#: Larger inputs are dead-lettered unread.
MAX_MESSAGE_BYTES: Final[int] = 1024 * 1024
#: Events stamped further than this ahead of the worker clock are refused (clock skew allowance).
FUTURE_TOLERANCE_US: Final[int] = 86_400 * 1_000_000
#: Ids become Kafka keys (`team:person`, flips keyed by person id); longer ones are refused.
MAX_ID_CHARS: Final[int] = 1_024
#: Ids and versions are stored in signed 64-bit fields (the record header, the api's ids).
INT64_MAX: Final[int] = 2**63 - 1
#: A re-keyed input (key + value) larger than this is refused: faust's producer sends at most
#: 1,000,000 bytes a request, and the person record holding it must fit in the changelog too.
MAX_FORWARD_BYTES: Final[int] = 900_000

Position = tuple[str, int, int]


class Rejected(ValueError):
    """An input that cannot be used; `reason` names why (a metrics label, so a fixed phrase)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DistinctId:
    """A validated `clickhouse_person_distinct_id` row (counted only; the api resolves ids)."""

    team_id: int
    distinct_id: str
    person_id: str
    version: int
    is_deleted: bool


def decode_event(raw: bytes | None, position: Position, now_us: int) -> EventInput:
    data = _object(raw)
    team_id = _team_id(data)
    person_id = _text(data, "person_id", MAX_ID_CHARS)
    name = _text(data, "event")
    if "timestamp" not in data or data["timestamp"] is None:
        raise Rejected("missing timestamp")
    try:
        timestamp_us = parse_timestamp(data["timestamp"])
    except TimestampError:
        raise Rejected("invalid timestamp") from None
    if timestamp_us > now_us + FUTURE_TOLERANCE_US:
        raise Rejected("timestamp in the future")
    uuid = data.get("uuid")
    return EventInput(  # positional (team_id, person_id, event, timestamp_us, properties, uuid, source)
        team_id,
        person_id,
        name,
        timestamp_us,
        _properties(data, "properties"),
        uuid if isinstance(uuid, str) else None,
        position,
    )


def decode_person(raw: bytes | None, position: Position) -> PersonInput:
    data = _object(raw)
    team_id = _team_id(data)
    person_id = _text(data, "id", MAX_ID_CHARS)
    version = data.get("version")
    if version is None:
        raise Rejected("missing version")
    if not _is_int(version) or version < 0:
        raise Rejected("invalid version")
    created_at_us = None
    if isinstance(data.get("created_at"), str):
        try:
            created_at_us = parse_timestamp(data["created_at"])
        except TimestampError:
            raise Rejected("invalid created_at") from None
    return PersonInput(  # positional, in the order of PersonInput's fields
        team_id,
        person_id,
        _properties(data, "properties"),
        version,
        _flag(data, "is_deleted"),
        _flag(data, "is_identified"),
        created_at_us,
        position,
    )


def decode_distinct_id(raw: bytes | None) -> DistinctId:
    data = _object(raw)
    version = data.get("version")
    if version is None:
        raise Rejected("missing version")
    if not _is_int(version) or version < 0:
        raise Rejected("invalid version")
    return DistinctId(
        team_id=_team_id(data),
        distinct_id=_text(data, "distinct_id", MAX_ID_CHARS),
        person_id=_text(data, "person_id", MAX_ID_CHARS),
        version=version,
        is_deleted=_flag(data, "is_deleted"),
    )


def forwardable(item: EventInput | PersonInput, key: bytes) -> bytes:
    """The bytes ingest forwards for `item` under `key`, or Rejected when they cannot be produced:
    properties nested deeper than orjson writes (255 levels; it reads 1,024), or too large a message."""
    try:
        value = item.to_bytes()
    except orjson.JSONEncodeError:
        raise Rejected("invalid properties") from None
    if len(key) + len(value) > MAX_FORWARD_BYTES:
        raise Rejected("oversized")
    return value


# --- field rules --------------------------------------------------------------------------------


def _object(raw: bytes | None) -> dict[str, Any]:
    if raw is None or len(raw) == 0:
        raise Rejected("empty value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Rejected("oversized")
    try:
        data = orjson.loads(raw)  # orjson refuses invalid UTF-8 anywhere in its input
    except orjson.JSONDecodeError:
        try:  # so only a refused message is decoded again, to name the reason
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("invalid UTF-8") from None
        raise Rejected("not JSON") from None
    if not isinstance(data, dict):
        raise Rejected("not a JSON object")
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value <= INT64_MAX


def _team_id(data: dict[str, Any]) -> int:
    value = data.get("team_id")
    if value is None:
        raise Rejected("missing team_id")
    if not _is_int(value) or value < 0:
        raise Rejected("invalid team_id")
    return value


def _text(data: dict[str, Any], field: str, max_chars: int | None = None) -> str:
    value = data.get(field)
    if value is None or value == "":
        raise Rejected(f"missing {field}")
    if not isinstance(value, str) or (max_chars is not None and len(value) > max_chars):
        raise Rejected(f"invalid {field}")
    return value


def _flag(data: dict[str, Any], field: str) -> bool:
    """PostHog sends 0/1 ints; booleans are accepted too; absent = false."""
    value = data.get(field)
    if value is None:
        return False
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    raise Rejected(f"invalid {field}")


def _properties(data: dict[str, Any], field: str) -> dict[str, Any]:
    """A JSON-encoded object (PostHog's processed events) or an object; absent or null = empty."""
    value = data.get(field)
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise Rejected(f"invalid {field}") from None
    if not isinstance(value, dict):
        raise Rejected(f"invalid {field}")
    return value
