"""`cohort_api_log`: what the api changes besides definitions, as records every api process folds.

Definitions travel on `cohort_catalog` (compacted: only the latest record per cohort survives).
Everything else the api changes must survive a wiped data dir too, so it travels here: one
partition (one order for all of it), retained forever (`Topics.specs`). Key = str(team_id).

    activity        an activity-log entry (reference §6), written with the change it describes
    static_members  persons added to / removed from a static cohort's list (reference §3.3);
                    the matching `static_add` / `static_remove` control messages for the worker
                    are produced in the same Kafka transaction
    view            a file-system "recently viewed" row (design §8)
    definition      the effective filters of one cohort version, for calculation history after
                    the catalog was compacted (reference §7)

The static list is folded from here rather than from `cohort_control`: the control topic also
carries the worker's ticks and is not retained forever, so it cannot rebuild a wiped api.

Each value is JSON with a `kind` field; `decode` refuses anything else (the feeder dead-letters
it). `apply_api_log` is the fold; an entry's sequence number is its offset, so every process
orders activity and views the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import orjson

from api.store import Batch
from api.views.activity import apply_activity
from api.views.cohorts import put_version_filters
from api.views.file_system import apply_view
from api.views.record import Record
from api.views.static_members import add_member, remove_member

__all__ = [
    "MEMBERS_PER_RECORD",
    "ActivityRecord",
    "ApiLogError",
    "ApiLogRecord",
    "DefinitionRecord",
    "StaticMembersRecord",
    "ViewRecord",
    "apply_api_log",
    "decode",
    "static_member_records",
]

#: Persons per `static_members` record, so a large list (CSV, duplicate) stays far below the
#: broker's message size limit; the records of one change share one transaction.
MEMBERS_PER_RECORD = 5_000


class ApiLogError(ValueError):
    """Bytes that are not a valid api-log record."""


@dataclass(frozen=True, slots=True)
class _LogRecord:
    kind: ClassVar[str] = ""
    team_id: int

    def to_bytes(self) -> bytes:
        return orjson.dumps({"kind": self.kind, **asdict(self)})

    @property
    def key(self) -> bytes:
        return str(self.team_id).encode()


@dataclass(frozen=True, slots=True)
class ActivityRecord(_LogRecord):
    kind: ClassVar[str] = "activity"
    cohort_id: int
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StaticMembersRecord(_LogRecord):
    kind: ClassVar[str] = "static_members"
    cohort_id: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ViewRecord(_LogRecord):
    kind: ClassVar[str] = "view"
    user_id: int
    type: str
    ref: str
    viewed_at_us: int


@dataclass(frozen=True, slots=True)
class DefinitionRecord(_LogRecord):
    kind: ClassVar[str] = "definition"
    cohort_id: int
    version: int
    filters: dict[str, Any]


ApiLogRecord = ActivityRecord | StaticMembersRecord | ViewRecord | DefinitionRecord

_KINDS: dict[str, type[_LogRecord]] = {
    cls.kind: cls for cls in (ActivityRecord, StaticMembersRecord, ViewRecord, DefinitionRecord)
}
_ID_FIELDS = ("team_id", "cohort_id", "user_id", "version")


def decode(raw: bytes | None) -> ApiLogRecord:
    if raw is None:
        raise ApiLogError("empty value")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiLogError("not JSON") from exc
    if not isinstance(data, dict):
        raise ApiLogError("not a JSON object")
    cls = _KINDS.get(data.pop("kind", None))
    if cls is None:
        raise ApiLogError("unknown kind")
    for name in (*_ID_FIELDS, "viewed_at_us"):
        value = data.get(name)
        if name in data and (not isinstance(value, int) or isinstance(value, bool)):
            raise ApiLogError(f"{name} must be an integer")
        if name in _ID_FIELDS and name in data and value < 0:
            raise ApiLogError(f"{name} must not be negative")
    try:
        record = cls(**data)
    except TypeError as exc:
        raise ApiLogError(f"{cls.kind}: {exc}") from exc
    if isinstance(record, ViewRecord) and not (isinstance(record.type, str) and isinstance(record.ref, str)):
        raise ApiLogError("type and ref must be strings")
    if isinstance(record, StaticMembersRecord) and not all(
        isinstance(p, str) and p for p in [*record.added, *record.removed]
    ):
        raise ApiLogError("person ids must be non-empty strings")
    return record  # type: ignore[return-value]


def static_member_records(
    team_id: int, cohort_id: int, *, added: list[str] = (), removed: list[str] = ()
) -> list[StaticMembersRecord]:
    """The `static_members` records of one change, `MEMBERS_PER_RECORD` persons at most each."""
    records = []
    for start in range(0, len(added), MEMBERS_PER_RECORD):
        records.append(StaticMembersRecord(team_id, cohort_id, added=list(added[start : start + MEMBERS_PER_RECORD])))
    for start in range(0, len(removed), MEMBERS_PER_RECORD):
        records.append(
            StaticMembersRecord(team_id, cohort_id, removed=list(removed[start : start + MEMBERS_PER_RECORD]))
        )
    return records


def apply_api_log(batch: Batch, record: Record) -> None:
    """Fold one api-log record; raises ApiLogError for a malformed one."""
    item = decode(record.value)
    if isinstance(item, ActivityRecord):
        if not isinstance(item.entry, dict):
            raise ApiLogError("entry must be an object")
        apply_activity(batch, item.team_id, item.cohort_id, record.offset, item.entry)
    elif isinstance(item, StaticMembersRecord):
        for person in item.added:
            add_member(batch, item.team_id, item.cohort_id, person)
        for person in item.removed:
            remove_member(batch, item.team_id, item.cohort_id, person)
    elif isinstance(item, ViewRecord):
        apply_view(batch, item.team_id, item.user_id, item.type, item.ref, item.viewed_at_us, record.offset)
    else:
        put_version_filters(batch, item.team_id, item.cohort_id, item.version, item.filters)
