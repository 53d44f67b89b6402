"""The person record: everything the worker holds about one `team:person` (design §5).

One record per person, so one input costs one read and one write. It holds the person's
properties and version, the deleted flag, per-matcher event state (sparse bucket counts per
granularity, first-seen time, a bounded timestamp list where a sequence needs order), static
memberships, the membership bit of every cohort (members only, with the definition version that
made them one), each cohort's next deadline and the earliest of them, the idempotence map and
the outbox of recent flips.

Invariants:
- `members` lists exactly the cohorts whose last emitted flip for this person was `entered`.
- `applied[(source, partition)]` is the highest source offset whose effect is in this record.
- `outbox` keeps the last `OUTBOX_LIMIT` flips, oldest first, each with the position that caused it.
- `deadlines[c]` is the earliest instant cohort `c` may change for this person without input (only
  cohorts that have one); `next_deadline_us` is the earliest of them. `deadlines is None` only for
  a record written before per-cohort deadlines were kept (format 1): the next evaluation is full.

This module never encodes bytes (`stream.state.codec` does) and never evaluates conditions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from cohorts.topics import Topics

__all__ = [
    "OUTBOX_LIMIT",
    "SOURCE_BACKFILL",
    "SOURCE_CONTROL",
    "SOURCE_DISTINCT_IDS",
    "SOURCE_EVENTS",
    "SOURCE_PERSONS",
    "MatcherState",
    "Outbox",
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
#: Flips caused by a backfilled event carry (SOURCE_BACKFILL, event partition, event offset).
SOURCE_BACKFILL: Final[int] = 5

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
    """What one matcher (event name + event filters) has seen of this person.

    `live_from[p]` is the offset of the first event of `clickhouse_events_json` partition `p` this
    matcher counted live; every later matching event of that partition was counted too, since a
    person's inputs are folded in offset order. A backfill counts only what lies below it, and
    at most once: `backfilled[p]` is the highest offset of partition `p` a backfill counted
    (design-engine §7). `live_from is None`: written before it was kept, so a backfill skips it.
    """

    first_seen_us: int | None = None
    buckets: dict[str, dict[int, int]] = field(default_factory=dict)
    timestamps_us: list[int] = field(default_factory=list)
    live_from: dict[int, int] | None = field(default_factory=dict)
    backfilled: dict[int, int] = field(default_factory=dict)


class OutboxFlip(NamedTuple):
    """A flip as emitted: re-emitted unchanged (same `at_us`, same version) after a replay.

    A named tuple, not a dataclass: a record decodes up to `OUTBOX_LIMIT` of them per input.
    """

    cohort_id: int
    entered: bool
    version: int
    at_us: int
    origin: Origin


class _FlipLike(Protocol):
    cohort_id: int
    entered: bool
    version: int
    at_us: int


#: An outbox group: [source, partition, offset, at_us, cohort_id, entered 0|1, version, ...].
OutboxGroup = list[int]


class Outbox:
    """The last flips of a person, oldest first, each with the position that caused it.

    Held as the codec's groups (one per input and instant, see `stream.state.codec`) until a caller
    reads single flips (a replay, a re-emission, a test): most inputs only append and trim, so most
    records never build their flips. Exactly one of the two forms is held at a time.
    """

    __slots__ = ("_flips", "_groups")

    def __init__(self, flips: Iterable[OutboxFlip] = ()) -> None:
        listed = list(flips)
        self._flips: list[OutboxFlip] | None = listed or None
        self._groups: list[OutboxGroup] | None = None if listed else []  # empty: append as groups

    @classmethod
    def from_groups(cls, groups: list[OutboxGroup]) -> Outbox:
        """Raises ValueError for a group of the wrong shape (the codec reports corruption)."""
        for group in groups:
            if type(group) is not list or len(group) < 7 or len(group) % 3 != 1:
                raise ValueError("outbox group of the wrong shape")
        outbox = cls.__new__(cls)
        outbox._flips = None
        outbox._groups = groups
        return outbox

    # --- cheap in either form ----------------------------------------------------------------

    def __len__(self) -> int:
        groups = self._groups
        if groups is not None:  # each group is 4 + 3 per flip long (`from_groups` checks it)
            return (sum(map(len, groups)) - 4 * len(groups)) // 3
        assert self._flips is not None
        return len(self._flips)

    def add(self, flips: Sequence[_FlipLike], origin: Origin) -> None:
        """Append the flips one input caused (oldest first)."""
        if self._flips is not None:
            self._flips.extend(OutboxFlip(f.cohort_id, f.entered, f.version, f.at_us, origin) for f in flips)
            return
        groups = self._groups
        assert groups is not None
        source, partition, offset = origin
        last = groups[-1] if groups else None
        for flip in flips:
            at_us = flip.at_us
            if last is None or last[3] != at_us or last[2] != offset or last[1] != partition or last[0] != source:
                last = [source, partition, offset, at_us]
                groups.append(last)
            last += (flip.cohort_id, 1 if flip.entered else 0, flip.version)

    def trim(self, limit: int) -> None:
        """Keep the newest `limit` flips."""
        excess = len(self) - limit
        if excess <= 0:
            return
        if self._flips is not None:
            del self._flips[:excess]
            return
        groups = self._groups
        assert groups is not None
        while excess > 0:
            size = (len(groups[0]) - 4) // 3
            if size <= excess:
                del groups[0]
                excess -= size
            else:
                del groups[0][4 : 4 + 3 * excess]
                excess = 0

    def groups(self) -> list[OutboxGroup]:
        """The codec's form: consecutive flips with one origin and instant share a group."""
        if self._groups is not None:
            return self._groups
        groups: list[OutboxGroup] = []
        last: OutboxGroup | None = None
        for flip in self._flips or ():
            origin = flip.origin
            if last is None or last[3] != flip.at_us or tuple(last[:3]) != origin:
                last = [origin[0], origin[1], origin[2], flip.at_us]
                groups.append(last)
            last += (flip.cohort_id, 1 if flip.entered else 0, flip.version)
        return groups

    def highest_offset(self, source: int) -> int:
        """The highest offset of `source` among the flips' origins (-1: none)."""
        if self._groups is not None:
            found = [group[2] for group in self._groups if group[0] == source]
            return max(found) if found else -1
        return max((f.origin[2] for f in self._flips or () if f.origin[0] == source), default=-1)

    # --- flip by flip --------------------------------------------------------------------------

    def flips(self) -> list[OutboxFlip]:
        if self._flips is None:
            flips: list[OutboxFlip] = []
            for group in self._groups or ():
                origin = (group[0], group[1], group[2])
                at_us = group[3]
                for i in range(4, len(group), 3):
                    flips.append(_new_flip(OutboxFlip, (group[i], group[i + 1] == 1, group[i + 2], at_us, origin)))
            self._flips, self._groups = flips, None
        return self._flips

    def __iter__(self) -> Iterator[OutboxFlip]:
        return iter(self.flips())

    def __getitem__(self, index: Any) -> Any:
        return self.flips()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Outbox):
            return self.flips() == other.flips()
        if isinstance(other, list):
            return self.flips() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Outbox({self.flips()!r})"


_new_flip = tuple.__new__  # OutboxFlip is a named tuple: build it without its keyword-parsing __new__


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
    deadlines: dict[int, int] | None = field(default_factory=dict)
    evaluated_at_us: int = 0
    applied: dict[tuple[int, int], int] = field(default_factory=dict)
    outbox: Outbox = field(default_factory=Outbox)

    def __post_init__(self) -> None:
        if not isinstance(self.outbox, Outbox):  # a list of flips, as tests write them
            self.outbox = Outbox(self.outbox)


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

    def seen_matchers(self) -> set[str]:
        """The matchers whose first-seen time is set (`cohorts.plan` asks once per evaluation)."""
        return {h for h, state in self._record.matchers.items() if state.first_seen_us is not None}
