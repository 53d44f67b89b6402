"""Message shapes on the service's own topics (design §3), shared by worker, api and CLI.

Every value is JSON (orjson). Each shape is a frozen dataclass with `to_bytes` / `from_bytes`,
so producer and consumer cannot disagree on a field name. Input topics in PostHog's formats are
decoded by the worker's ingest, not here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar

import orjson

__all__ = [
    "BackfillInput",
    "CalculationReport",
    "CatalogRecord",
    "ControlMessage",
    "DeadLetter",
    "EventInput",
    "MembershipChange",
    "PersonInput",
    "WireError",
    "decode_person_input",
    "is_person_input_batch",
    "person_input_batch",
    "person_input_json",
    "person_input_of",
    "split_person_input_batch",
]

T = TypeVar("T", bound="_Message")


class WireError(ValueError):
    """Bytes that are not a valid message of the expected shape."""


@dataclass(frozen=True, slots=True)
class _Message:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        try:
            return cls(**data)
        except TypeError as exc:
            raise WireError(f"{cls.__name__}: {exc}") from exc

    @classmethod
    def from_bytes(cls: type[T], raw: bytes) -> T:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise WireError(f"{cls.__name__}: not JSON") from exc
        if not isinstance(data, dict):
            raise WireError(f"{cls.__name__}: not a JSON object")
        return cls.from_dict(data)


@dataclass(frozen=True, slots=True)
class CatalogRecord(_Message):
    """`cohort_catalog`, key = str(cohort id); a tombstone (null value) removes the cohort.

    `filters` is the effective definition (legacy `groups` already converted); the worker parses
    it with `cohorts.validate`. `version` grows with every change of the record (design §4).

    The fields after `filters` are the rest of the cohort as the api shows it, so every api
    process can serve a cohort written through another one. They have defaults, so records
    written before they existed still decode. `stored_filters` is `filters` exactly as the api
    stored it when that differs from the effective definition (None = the same).
    """

    id: int
    team_id: int
    version: int
    is_static: bool = False
    deleted: bool = False
    name: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    groups: list[Any] = field(default_factory=list)
    query: Any = None
    cohort_type: str | None = None
    created_by_id: int | None = None
    created_at_us: int | None = None
    create_in_folder: str | None = None
    last_import_total_count: int | None = None
    last_import_unmatched_count: int | None = None
    stored_filters: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ControlMessage(_Message):
    """`cohort_control`: static add/remove (key `team:person`), recalculate and tick (explicit partition).

    - `static_add` / `static_remove`: `team_id`, `cohort_id`, `person_id`.
    - `recalculate`: `team_id`, `cohort_id`, `version` (sent to every partition).
    - `tick`: `now_us` optional; absent = the worker's clock (sent to every partition).
    """

    type: Literal["static_add", "static_remove", "recalculate", "tick"]
    team_id: int | None = None
    cohort_id: int | None = None
    person_id: str | None = None
    version: int | None = None
    now_us: int | None = None


@dataclass(frozen=True, slots=True)
class EventInput(_Message):
    """An event after ingest: validated, normalised, re-keyed to `team:person`.

    `source` = [topic, partition, offset] of the original message: the fold's idempotence key.
    """

    kind: ClassVar[str] = "event"
    team_id: int
    person_id: str
    event: str
    timestamp_us: int
    properties: dict[str, Any]
    uuid: str | None = None
    source: tuple[str, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """`asdict` plus the kind, without its deep copy: ingest sends one per event."""
        return {
            "team_id": self.team_id,
            "person_id": self.person_id,
            "event": self.event,
            "timestamp_us": self.timestamp_us,
            "properties": self.properties,
            "uuid": self.uuid,
            "source": self.source,
            "kind": "event",
        }


@dataclass(frozen=True, slots=True)
class PersonInput(_Message):
    """A person upsert after ingest. Applies only if `version` is newer (design §4)."""

    kind: ClassVar[str] = "person"
    team_id: int
    person_id: str
    properties: dict[str, Any]
    version: int
    is_deleted: bool = False
    is_identified: bool = False
    created_at_us: int | None = None
    source: tuple[str, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """`asdict` plus the kind, without its deep copy."""
        return {
            "team_id": self.team_id,
            "person_id": self.person_id,
            "properties": self.properties,
            "version": self.version,
            "is_deleted": self.is_deleted,
            "is_identified": self.is_identified,
            "created_at_us": self.created_at_us,
            "source": self.source,
            "kind": "person",
        }


@dataclass(frozen=True, slots=True)
class BackfillInput(_Message):
    """A past event re-read from `clickhouse_events_json` for the named matchers only (design-engine §7).

    Sent by `cohorts backfill` / `cohorts replay`, keyed `team:person` like every person input.
    `source` is the event's own [topic, partition, offset]: the fold counts it into a matcher only
    where live ingest did not (its offset is below the first one that matcher counted live from
    that partition) and only once (above the matcher's backfill high-water mark there).
    """

    kind: ClassVar[str] = "backfill"
    team_id: int
    person_id: str
    event: str
    timestamp_us: int
    properties: dict[str, Any]
    matchers: list[str]
    source: tuple[str, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "team_id": self.team_id,
            "person_id": self.person_id,
            "event": self.event,
            "timestamp_us": self.timestamp_us,
            "properties": self.properties,
            "matchers": self.matchers,
            "source": self.source,
            "kind": "backfill",
        }


def decode_person_input(raw: bytes) -> EventInput | PersonInput | BackfillInput:
    """Decode one `cohort_person_inputs` value holding a single input (a batch: `split_person_input_batch`)."""
    return person_input_of(person_input_json(raw))


def person_input_json(raw: bytes | None) -> Any:
    """The parsed JSON of a value holding a single input, to be read by `person_input_of`."""
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:  # TypeError: no value at all
        raise WireError("person input: not JSON") from exc


def person_input_of(data: Any) -> EventInput | PersonInput | BackfillInput:
    """One input from its parsed JSON, by its `kind` field (`data` itself is left as it was)."""
    if not isinstance(data, dict):
        raise WireError("person input: not a JSON object")
    kind = data.get("kind")
    # What ingest writes (`to_dict`: every field, and the kind) is built field by field; anything
    # else takes the general path below, whose keyword call reports missing or unknown fields.
    if kind == "event" and data.keys() == _EVENT_KEYS:
        source = data["source"]
        return _new_event(
            data["team_id"],
            data["person_id"],
            data["event"],
            data["timestamp_us"],
            data["properties"],
            data["uuid"],
            None if source is None else tuple(source),
        )
    if kind == "person" and data.keys() == _PERSON_KEYS:
        source = data["source"]
        return _new_person(
            data["team_id"],
            data["person_id"],
            data["properties"],
            data["version"],
            data["is_deleted"],
            data["is_identified"],
            data["created_at_us"],
            None if source is None else tuple(source),
        )
    data = {name: value for name, value in data.items() if name != "kind"}
    if data.get("source") is not None:
        data["source"] = tuple(data["source"])
    if kind == "event":
        return EventInput.from_dict(data)
    if kind == "person":
        return PersonInput.from_dict(data)
    if kind == "backfill":
        return BackfillInput.from_dict(data)
    raise WireError(f"person input: unknown kind {kind!r}")


def _field_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor of `cls` (a frozen, slotted dataclass without `__post_init__`) taking every
    field positionally, in declaration order, that sets the slots directly.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__` by name; the fold
    decodes an input or two per message, and that took more than half of reading one. The result
    is the object `cls(*values)` gives (`tests/unit/cohorts/test_wire_inputs.py` compares them).
    """
    setters = tuple(cls.__dict__[f.name].__set__ for f in fields(cls))
    new = object.__new__

    def build(*values: Any) -> T:
        if len(values) != len(setters):
            raise TypeError(f"{cls.__name__} takes {len(setters)} fields, not {len(values)}")
        item = new(cls)
        for setter, value in zip(setters, values):  # noqa: B905 - lengths checked above
            setter(item, value)
        return item

    return build


_new_event = _field_builder(EventInput)
_new_person = _field_builder(PersonInput)
#: The keys of `EventInput.to_dict()` / `PersonInput.to_dict()` (the kind included).
_EVENT_KEYS: frozenset[str] = frozenset(f.name for f in fields(EventInput)) | {"kind"}
_PERSON_KEYS: frozenset[str] = frozenset(f.name for f in fields(PersonInput)) | {"kind"}


def person_input_batch(values: Sequence[bytes]) -> bytes:
    """One `cohort_person_inputs` value carrying several encoded inputs of one partition, in order.

    A batch is the JSON array of its inputs; a single input stays a JSON object. Ingest batches so
    that the person fold pays faust's per-message cost once per batch, not once per input."""
    return b"[" + b",".join(values) + b"]"


def is_person_input_batch(raw: bytes) -> bool:
    return raw[:1] == b"["


def split_person_input_batch(raw: bytes) -> list[Any]:
    """The parsed inputs of a batch value, each to be read by `person_input_of`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError("person input batch: not JSON") from exc
    if not isinstance(data, list):
        raise WireError("person input batch: not a JSON array")
    return data


@dataclass(frozen=True, slots=True)
class MembershipChange(_Message):
    """`cohort_membership_changed`, key = person_id: PostHog's shape plus `version` (design §3).

    `version` is the cohort definition version; with `last_updated` it lets a consumer keep the
    latest state per (cohort, person) and drop duplicates.
    """

    team_id: int
    cohort_id: int
    person_id: str
    status: Literal["entered", "left"]
    last_updated: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        """`asdict` without its machinery: the worker sends one per flip."""
        return {
            "team_id": self.team_id,
            "cohort_id": self.cohort_id,
            "person_id": self.person_id,
            "status": self.status,
            "last_updated": self.last_updated,
            "version": self.version,
        }

    @staticmethod
    def encode(team_id: int, cohort_id: int, person_id: str, status: str, last_updated: str, version: int) -> bytes:
        """`MembershipChange(...).to_bytes()` without building the object, for the worker's flips."""
        return orjson.dumps(
            {
                "team_id": team_id,
                "cohort_id": cohort_id,
                "person_id": person_id,
                "status": status,
                "last_updated": last_updated,
                "version": version,
            }
        )


@dataclass(frozen=True, slots=True)
class CalculationReport(_Message):
    """`cohort_calculation_reports`, key = str(cohort id): one per partition per version."""

    team_id: int
    cohort_id: int
    version: int
    partition: int
    started_at: str
    finished_at: str | None = None
    count: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter(_Message):
    """`cohort_dead_letters`, key = the original key: the original bytes, why, and where from."""

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_b64: str

    @classmethod
    def of(cls, reason: str, topic: str, partition: int, offset: int, original: bytes | None) -> DeadLetter:
        return cls(reason, topic, partition, offset, base64.b64encode(original or b"").decode("ascii"))

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)
