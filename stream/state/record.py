"""The person record: everything the worker holds about one `team:person` (design §5).

One record per person, so one input costs one read and one write. It holds the person's
properties and version, the deleted flag, per-matcher event state (sparse bucket counts per
granularity, first-seen time, a bounded timestamp list where a sequence needs order), static
memberships, the membership bit of every cohort (members only, with the definition version that
made them one), the next deadline, the idempotence map and the outbox of recent flips.

Invariants:
- `members` lists exactly the cohorts whose last emitted flip for this person was `entered`.
- `applied[(source, partition)]` is the highest source offset whose effect is in this record.
- `outbox` keeps the last `OUTBOX_LIMIT` flips, oldest first, each with the position that caused it.

This module never encodes bytes (`stream.state.codec` does) and never evaluates conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cohorts.topics import Topics

__all__ = [
    "OUTBOX_LIMIT",
    "SOURCE_CONTROL",
    "SOURCE_DISTINCT_IDS",
    "SOURCE_EVENTS",
    "SOURCE_PERSONS",
    "MatcherState",
    "OutboxFlip",
    "PersonRecord",
    "RecordFacts",
    "source_code",
]

#: Flips remembered per person for re-emission after a crash (design §5: none lost).
OUTBOX_LIMIT: Final[int] = 32

#: Compact codes of the topics an input can come from (the idempotence map's keys).
SOURCE_EVENTS: Final[int] = 1
SOURCE_PERSONS: Final[int] = 2
SOURCE_CONTROL: Final[int] = 3
SOURCE_DISTINCT_IDS: Final[int] = 4

#: (source code, partition, offset) of the message that caused a change.
Origin = tuple[int, int, int]


def source_code(topics: Topics, topic_name: str) -> int:
    """The code of an input topic; an unknown topic is an error (it would corrupt idempotence)."""
    codes = {
        topics.events: SOURCE_EVENTS,
        topics.persons: SOURCE_PERSONS,
        topics.control: SOURCE_CONTROL,
        topics.distinct_ids: SOURCE_DISTINCT_IDS,
    }
    try:
        return codes[topic_name]
    except KeyError:
        raise ValueError(f"not an input topic of this worker: {topic_name!r}") from None


@dataclass(slots=True)
class MatcherState:
    """What one matcher (event name + event filters) has seen of this person."""

    first_seen_us: int | None = None
    buckets: dict[str, dict[int, int]] = field(default_factory=dict)
    timestamps_us: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutboxFlip:
    """A flip as emitted: re-emitted unchanged (same `at_us`, same version) after a replay."""

    cohort_id: int
    entered: bool
    version: int
    at_us: int
    origin: Origin


@dataclass(slots=True)
class PersonRecord:
    known: bool = False
    deleted: bool = False
    person_version: int = -1
    properties: dict[str, Any] = field(default_factory=dict)
    matchers: dict[str, MatcherState] = field(default_factory=dict)
    static: set[int] = field(default_factory=set)
    members: dict[int, int] = field(default_factory=dict)
    next_deadline_us: int | None = None
    evaluated_at_us: int = 0
    applied: dict[tuple[int, int], int] = field(default_factory=dict)
    outbox: list[OutboxFlip] = field(default_factory=list)


_EMPTY_BUCKETS: Final[Mapping[int, int]] = {}
_EMPTY_TIMESTAMPS: Final[Sequence[int]] = ()


class RecordFacts:
    """The evaluator's view of a record (`cohorts.evaluate.PersonFacts`)."""

    __slots__ = ("_record", "properties")

    def __init__(self, record: PersonRecord) -> None:
        self._record = record
        self.properties: Mapping[str, Any] = record.properties

    def buckets(self, matcher_hash: str, granularity: str) -> Mapping[int, int]:
        state = self._record.matchers.get(matcher_hash)
        if state is None:
            return _EMPTY_BUCKETS
        return state.buckets.get(granularity, _EMPTY_BUCKETS)

    def first_seen_us(self, matcher_hash: str) -> int | None:
        state = self._record.matchers.get(matcher_hash)
        return None if state is None else state.first_seen_us

    def timestamps_us(self, matcher_hash: str) -> Sequence[int]:
        state = self._record.matchers.get(matcher_hash)
        return _EMPTY_TIMESTAMPS if state is None else state.timestamps_us

    def is_static_member(self, cohort_id: int) -> bool:
        return cohort_id in self._record.static
