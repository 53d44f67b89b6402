"""The person fold: (record, input, team catalog, now) -> (record to write, flips). Pure.

Every decision about one person is made here, from the record alone (design §5): no clock, no
Kafka, no RocksDB. The agents around it only decode, call one function, write and send.

Rules (design §4, §5):
1. Idempotence: each record remembers, per source partition, the highest offset applied. An input
   at or below it is a replay: nothing changes, and the outbox is returned again from the first flip
   that input caused, to the end (the crash that caused the replay may have come between the state
   write and the produce; re-sending the whole suffix in order keeps the last flip per cohort right).
2. A person is known once a person record or an event arrives. Static membership alone does not
   make a person known (a static cohort holds only known persons).
3. Person updates apply only if their version is newer. A deleted person is in no cohort and their
   events are ignored.
4. Events feed every matcher of the team whose name and filters they match (buckets, first seen,
   timestamps where required), then state the requirements no longer ask for is pruned.
5. The team's live cohorts are evaluated in dependency order (cohort-in-cohort reads the bits
   computed just before it); a changed bit is a flip. Members of cohorts that are gone leave. An
   input evaluates only the cohorts it can change (those reading a matched matcher, person-property
   cohorts on a person update, the static cohort on a static change) plus cohorts referring to one
   that flipped; a new, deleted or un-deleted person, a passed deadline, a tick and a recalculation
   evaluate all of them.
6. Time never runs backwards for a record: evaluation uses max(now, last evaluation time), so a
   tick fired with a future `now` is not undone by a later event processed at the wall clock.

`apply_*` functions take ownership of the record passed in (callers pass a freshly decoded one).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from cohorts.evaluate import evaluate
from cohorts.properties import match_event
from cohorts.requirements import MatcherRequirement
from cohorts.timebase import BUCKET_US
from cohorts.wire import ControlMessage, EventInput, PersonInput
from stream.catalog import TeamCatalog
from stream.state.record import OUTBOX_LIMIT, MatcherState, Origin, OutboxFlip, PersonRecord, RecordFacts

__all__ = [
    "MAX_TIMESTAMPS",
    "Flip",
    "FoldResult",
    "apply_event",
    "apply_person",
    "apply_static",
    "outbox_flips",
    "reevaluate",
    "split_person_key",
]

#: Upper bound of a timestamp list per matcher; beyond it the oldest are dropped (documented limit).
MAX_TIMESTAMPS: Final[int] = 4_096

#: "Evaluate every cohort" (a sentinel compared by identity).
_ALL: Final[frozenset[int]] = frozenset({-1})


@dataclass(frozen=True, slots=True)
class Flip:
    """One membership change to publish on `cohort_membership_changed`."""

    team_id: int
    person_id: str
    cohort_id: int
    entered: bool
    version: int
    at_us: int


@dataclass(slots=True)
class FoldResult:
    """`record` is what to write (None: leave the stored value as it is); `outcome` feeds metrics."""

    record: PersonRecord | None
    flips: list[Flip] = field(default_factory=list)
    outcome: str = "applied"


def split_person_key(key: str) -> tuple[int, str]:
    """(team_id, person_id) of a `team:person` key; person ids may themselves contain ':'."""
    team, _, person = key.partition(":")
    return int(team), person


def apply_event(
    record: PersonRecord | None, item: EventInput, origin: Origin, team: TeamCatalog, now_us: int
) -> FoldResult:
    if record is not None and _is_replay(record, origin):
        return FoldResult(None, _replayed(record, origin, item.team_id, item.person_id), "replayed")
    if record is not None and record.deleted:
        return FoldResult(None, [], "deleted_person")
    matched = [
        requirement
        for requirement in team.by_event.get(item.event, ())
        if match_event(requirement.filters, item.properties, item.timestamp_us)
    ]
    if not matched and record is not None and record.known:
        return FoldResult(None, [], "unmatched")
    if record is None:
        record = PersonRecord()
    affected = _ALL if not record.known else _cohorts_of(team, matched)
    record.known = True
    for requirement in matched:
        _count(record, requirement, item.timestamp_us)
    record.applied[(origin[0], origin[1])] = origin[2]
    return FoldResult(record, _settle(record, item.team_id, item.person_id, origin, team, now_us, affected))


def apply_person(
    record: PersonRecord | None, item: PersonInput, origin: Origin, team: TeamCatalog, now_us: int
) -> FoldResult:
    if record is not None and _is_replay(record, origin):
        return FoldResult(None, _replayed(record, origin, item.team_id, item.person_id), "replayed")
    if record is None:
        record = PersonRecord()
    if item.version <= record.person_version:
        return FoldResult(None, [], "stale_person")
    affected = team.person_cohorts if record.known and record.deleted == item.is_deleted else _ALL
    record.known = True
    record.person_version = item.version
    record.properties = dict(item.properties)
    record.deleted = item.is_deleted
    record.applied[(origin[0], origin[1])] = origin[2]
    return FoldResult(record, _settle(record, item.team_id, item.person_id, origin, team, now_us, affected))


def apply_static(
    record: PersonRecord | None, message: ControlMessage, origin: Origin, team: TeamCatalog, now_us: int
) -> FoldResult:
    """`static_add` / `static_remove` of one person (design §3 `cohort_control`)."""
    if message.team_id is None or message.person_id is None or message.cohort_id is None:
        raise ValueError(f"{message.type} needs team_id, cohort_id and person_id")
    if record is not None and _is_replay(record, origin):
        return FoldResult(None, _replayed(record, origin, message.team_id, message.person_id), "replayed")
    if record is None:
        if message.type == "static_remove":
            return FoldResult(None, [], "unchanged")
        record = PersonRecord()
    if message.type == "static_add":
        record.static.add(message.cohort_id)
    else:
        record.static.discard(message.cohort_id)
    record.applied[(origin[0], origin[1])] = origin[2]
    affected = frozenset({message.cohort_id})
    return FoldResult(record, _settle(record, message.team_id, message.person_id, origin, team, now_us, affected))


def reevaluate(
    record: PersonRecord, team_id: int, person_id: str, origin: Origin, team: TeamCatalog, now_us: int
) -> FoldResult:
    """Evaluate again with no new input: a deadline passed (tick) or the catalog changed (recalculate)."""
    return FoldResult(record, _settle(record, team_id, person_id, origin, team, now_us, _ALL))


# --- internals ----------------------------------------------------------------------------------


def _is_replay(record: PersonRecord, origin: Origin) -> bool:
    return record.applied.get((origin[0], origin[1]), -1) >= origin[2]


def _replayed(record: PersonRecord, origin: Origin, team_id: int, person_id: str) -> list[Flip]:
    """Rule 1: the outbox from the first flip this input (or a later one of its source partition)
    caused, to the end. Re-sending the whole suffix in order, whatever caused the later flips, keeps
    the last message per cohort equal to the current bit."""
    source, partition, offset = origin
    for start, flip in enumerate(record.outbox):
        if flip.origin[0] == source and flip.origin[1] == partition and flip.origin[2] >= offset:
            return outbox_flips(record, team_id, person_id, start)
    return []


def outbox_flips(record: PersonRecord, team_id: int, person_id: str, start: int = 0) -> list[Flip]:
    """Outbox entries from `start` on, as flips to send again (same version, same instant)."""
    return [Flip(team_id, person_id, f.cohort_id, f.entered, f.version, f.at_us) for f in record.outbox[start:]]


def _count(record: PersonRecord, requirement: MatcherRequirement, ts_us: int) -> None:
    state = record.matchers.get(requirement.matcher_hash)
    if state is None:
        state = record.matchers[requirement.matcher_hash] = MatcherState()
    if state.first_seen_us is None or ts_us < state.first_seen_us:
        state.first_seen_us = ts_us
    for granularity in requirement.granularities:
        bucket = ts_us // BUCKET_US[granularity]
        buckets = state.buckets.setdefault(granularity, {})
        buckets[bucket] = buckets.get(bucket, 0) + 1
    if requirement.needs_timestamps:
        bisect.insort(state.timestamps_us, ts_us)
        if len(state.timestamps_us) > MAX_TIMESTAMPS:
            del state.timestamps_us[: len(state.timestamps_us) - MAX_TIMESTAMPS]


def _prune(record: PersonRecord, team: TeamCatalog, now_us: int) -> None:
    """Drop matchers, granularities, buckets and timestamps no live cohort can read any more."""
    requirements = team.requirements
    for matcher_hash in [h for h in record.matchers if h not in requirements]:
        del record.matchers[matcher_hash]
    for matcher_hash, state in record.matchers.items():
        requirement = requirements[matcher_hash]
        for granularity in list(state.buckets):
            lookback = requirement.granularities.get(granularity)
            buckets = state.buckets[granularity]
            if lookback is None:
                del state.buckets[granularity]
                continue
            floor = now_us // BUCKET_US[granularity] - lookback
            if buckets and min(buckets) < floor:
                state.buckets[granularity] = {b: c for b, c in buckets.items() if b >= floor}
            if not state.buckets[granularity]:
                del state.buckets[granularity]
        cutoff = requirement.timestamp_cutoff_us(now_us)
        if cutoff is None:
            state.timestamps_us = []
        elif state.timestamps_us and state.timestamps_us[0] < cutoff:
            del state.timestamps_us[: bisect.bisect_left(state.timestamps_us, cutoff)]


def _cohorts_of(team: TeamCatalog, matched: list[MatcherRequirement]) -> frozenset[int]:
    if not matched:
        return frozenset()
    found: set[int] = set()
    for requirement in matched:
        found |= team.cohorts_by_matcher.get(requirement.matcher_hash, frozenset())
    return frozenset(found)


class _Bits(Mapping[int, bool]):
    """Membership bits during one evaluation: this run's results, else the stored bits."""

    __slots__ = ("_evaluated", "_members")

    def __init__(self, evaluated: dict[int, bool], members: dict[int, int]) -> None:
        self._evaluated = evaluated
        self._members = members

    def __getitem__(self, cohort_id: int) -> bool:
        found = self._evaluated.get(cohort_id)
        return cohort_id in self._members if found is None else found

    def __iter__(self) -> Iterator[int]:
        return iter(set(self._evaluated) | set(self._members))

    def __len__(self) -> int:
        return len(set(self._evaluated) | set(self._members))


def _apply_bit(
    cohort_id: int,
    version: int,
    member: bool,
    members: dict[int, int],
    flips: list[Flip],
    team_id: int,
    person_id: str,
    now_us: int,
) -> None:
    was = cohort_id in members
    if member:
        if not was:
            flips.append(Flip(team_id, person_id, cohort_id, True, version, now_us))
        members[cohort_id] = version
    elif was:
        flips.append(Flip(team_id, person_id, cohort_id, False, version, now_us))
        del members[cohort_id]


def _settle(
    record: PersonRecord,
    team_id: int,
    person_id: str,
    origin: Origin,
    team: TeamCatalog,
    now_us: int,
    affected: frozenset[int],
) -> list[Flip]:
    """Rules 5 and 6: evaluate the live cohorts, apply the changed bits, schedule the next deadline.

    `affected` (`_ALL` = every cohort) names the cohorts whose own leaves the input touched. Only those, and
    the cohorts referring to one whose bit flipped here, are evaluated; the others keep their bits,
    which is exact because nothing they read changed. When the record's deadline has passed, time
    itself changed things, so everything is evaluated. A partial evaluation keeps the old deadline
    in the minimum: it may come early (one extra evaluation at a tick), never late.
    """
    now_us = max(now_us, record.evaluated_at_us)
    if record.next_deadline_us is not None and record.next_deadline_us <= now_us:
        affected = _ALL
    record.evaluated_at_us = now_us
    _prune(record, team, now_us)
    members = record.members
    evaluated: dict[int, bool] = {}
    flips: list[Flip] = []
    deadline: int | None = None if affected is _ALL else record.next_deadline_us
    if record.known and not record.deleted:
        candidates = team.ordered if affected is _ALL else team.candidates(affected)
        bits = _Bits(evaluated, members)
        facts = RecordFacts(record)
        changed: set[int] = set()
        for definition in candidates:
            cohort_id = definition.id
            if not (
                affected is _ALL
                or cohort_id in affected
                or (changed and not changed.isdisjoint(team.references.get(cohort_id, ())))
            ):
                continue
            result = evaluate(definition, facts, now_us, bits)
            evaluated[cohort_id] = result.member
            if result.member != (cohort_id in members):
                changed.add(cohort_id)
            found = result.next_deadline_us
            if found is not None and (deadline is None or found < deadline):
                deadline = found
        for definition in candidates:
            member = evaluated.get(definition.id)
            if member is not None:
                _apply_bit(definition.id, definition.version, member, members, flips, team_id, person_id, now_us)
    else:
        deadline = None
        for definition in team.ordered:
            _apply_bit(definition.id, definition.version, False, members, flips, team_id, person_id, now_us)
    for cohort_id in [c for c in members if c not in team.position]:
        version = team.versions.get(cohort_id, members[cohort_id])
        flips.append(Flip(team_id, person_id, cohort_id, False, version, now_us))
        del members[cohort_id]
    record.next_deadline_us = None if deadline is None else max(deadline, now_us + 1)
    if flips:
        record.outbox.extend(OutboxFlip(f.cohort_id, f.entered, f.version, f.at_us, origin) for f in flips)
        if len(record.outbox) > OUTBOX_LIMIT:
            del record.outbox[: len(record.outbox) - OUTBOX_LIMIT]
    return flips
