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
   input evaluates only the cohorts it can change (those reading a matched matcher, cohorts with a
   leaf on a person property whose value changed, the static cohort on a static change, the
   cohort a recalculation names), the cohorts whose own deadline has passed (all a tick needs),
   and cohorts referring to one that flipped; a new, deleted or un-deleted person evaluates all.
6. Time never runs backwards for a record: evaluation uses max(now, last evaluation time), so a
   tick fired with a future `now` is not undone by a later event processed at the wall clock.

`apply_*` functions take ownership of the record passed in (callers pass a freshly decoded one).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

from cohorts.evaluate import LeafResult
from cohorts.plan import PlanRun, TeamPlan
from cohorts.properties import match_event
from cohorts.requirements import MatcherRequirement
from cohorts.timebase import BUCKET_US
from cohorts.vocab import DATE_OPERATORS
from cohorts.wire import BackfillInput, ControlMessage, EventInput, PersonInput
from stream.catalog import TeamCatalog
from stream.state.codec import RecordSketch
from stream.state.record import OUTBOX_LIMIT, SOURCE_BACKFILL, MatcherState, Origin, PersonRecord, RecordFacts

__all__ = [
    "MAX_TIMESTAMPS",
    "Flip",
    "FoldResult",
    "SketchRecalculation",
    "apply_backfill",
    "apply_event",
    "apply_person",
    "apply_static",
    "outbox_flips",
    "recalculate",
    "recalculation_changes",
    "recalculation_check",
    "reevaluate",
    "split_person_key",
]

#: Upper bound of a timestamp list per matcher; beyond it the oldest are dropped (documented limit).
MAX_TIMESTAMPS: Final[int] = 4_096

#: "Evaluate every cohort" (a sentinel compared by identity).
_ALL: Final[frozenset[int]] = frozenset({-1})
#: A property that is not there (distinct from JSON null, to be safe).
_MISSING: Final = object()
#: Answers a team's memo keeps per kind before it starts that kind over (inputs repeat a few shapes).
_MEMO_ENTRIES: Final[int] = 4_096


class Flip(NamedTuple):
    """One membership change to publish on `cohort_membership_changed` (a named tuple: a new person
    makes dozens at once)."""

    team_id: int
    person_id: str
    cohort_id: int
    entered: bool
    version: int
    at_us: int


#: Flip is a named tuple: building it through tuple.__new__ skips its keyword-parsing __new__ (a
#: new person makes dozens of flips at once).
_new_flip = tuple.__new__


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
    matched, readers = _event_matches(team, item)
    if not matched and record is not None and record.known:
        return FoldResult(None, [], "unmatched")
    record, affected = _counting_into(record, team, matched, readers)
    for requirement in matched:
        state = _count(record, requirement, item.timestamp_us)
        if state.live_from is not None and origin[1] not in state.live_from:
            state.live_from[origin[1]] = origin[2]
    record.applied[(origin[0], origin[1])] = origin[2]
    return FoldResult(record, _settle(record, item.team_id, item.person_id, origin, team, now_us, affected))


def _counting_into(
    record: PersonRecord | None,
    team: TeamCatalog,
    requirements: Sequence[MatcherRequirement],
    readers: frozenset[int] | None = None,
) -> tuple[PersonRecord, frozenset[int]]:
    """The record an event is counted into (a new one if none) and the cohorts to evaluate after:
    all of them for a person the project did not know yet, else those reading the counted
    matchers (`readers`, when the caller has them already). The person is known from now on
    (design §4)."""
    if record is None:
        record = PersonRecord()
    if readers is None:
        readers = _cohorts_of(team, requirements)
    affected = _ALL if not record.known else readers
    record.known = True
    return record, affected


def apply_backfill(record: PersonRecord | None, item: BackfillInput, team: TeamCatalog, now_us: int) -> FoldResult:
    """A past event for the matchers it names, counted where live ingest did not count it (design-engine §7).

    Per named matcher the team still tracks and whose filters the event matches: skipped if the
    matcher counted this event partition live from an offset at or below the event's (it was
    counted then), or if a backfill already counted this offset (a replay); else counted, and the
    high-water mark moves. The record's live idempotence map is not touched.
    """
    _, partition, offset = item.source
    origin: Origin = (SOURCE_BACKFILL, partition, offset)
    if record is not None and record.deleted:
        return FoldResult(None, [], "deleted_person")
    requirements = team.requirements
    counted: list[MatcherRequirement] = []
    replayed = False
    for matcher_hash in item.matchers:
        requirement = requirements.get(matcher_hash)
        if requirement is None or requirement.event != item.event:
            continue
        if not match_event(requirement.filters, item.properties, item.timestamp_us):
            continue
        state = None if record is None else record.matchers.get(matcher_hash)
        if state is not None:
            if state.live_from is None or offset >= state.live_from.get(partition, offset + 1):
                continue
            if offset <= state.backfilled.get(partition, -1):
                replayed = True
                continue
        counted.append(requirement)
    if not counted:
        if replayed and record is not None:
            return FoldResult(None, _replayed(record, origin, item.team_id, item.person_id), "replayed")
        return FoldResult(None, [], "unchanged")
    record, affected = _counting_into(record, team, counted)
    for requirement in counted:
        _count(record, requirement, item.timestamp_us).backfilled[partition] = offset
    return FoldResult(
        record, _settle(record, item.team_id, item.person_id, origin, team, now_us, affected), "backfilled"
    )


def apply_person(
    record: PersonRecord | None, item: PersonInput, origin: Origin, team: TeamCatalog, now_us: int
) -> FoldResult:
    if record is not None and _is_replay(record, origin):
        return FoldResult(None, _replayed(record, origin, item.team_id, item.person_id), "replayed")
    if record is None:
        record = PersonRecord()
    if item.version <= record.person_version:
        return FoldResult(None, [], "stale_person")
    if record.known and record.deleted == item.is_deleted:
        affected = _property_cohorts(team, record.properties, item.properties)
    else:
        affected = _ALL
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
    record: PersonRecord,
    team_id: int,
    person_id: str,
    origin: Origin,
    team: TeamCatalog,
    now_us: int,
    cohorts: Iterable[int] | None = None,
) -> FoldResult:
    """Evaluate again with no new input: a deadline passed (tick) or the catalog changed (recalculate).

    `cohorts` are the ones whose definition changed (a recalculation names one; a tick none);
    None evaluates every cohort. Cohorts whose deadline has passed are evaluated either way.
    """
    affected = _ALL if cohorts is None else frozenset(cohorts)
    return FoldResult(record, _settle(record, team_id, person_id, origin, team, now_us, affected))


def recalculate(
    sketch: RecordSketch,
    team_id: int,
    person_id: str,
    origin: Origin,
    team: TeamCatalog,
    now_us: int,
    cohort_id: int,
    evaluated: LeafResult | None = None,
) -> list[Flip]:
    """`reevaluate(record, ..., cohorts=(cohort_id,))` on a format-2 sketch of the record; the flips.

    The same evaluation, bits, deadlines, flips and outbox, settled into the sketch, which the
    caller writes back (`stream.state.codec.encode`), without decoding matcher state or pruning
    it: a recalculation touches every person of a team, and the next input or tick prunes.
    `evaluated` is the cohort's result as the caller's check found it on this sketch at `now_us`
    (`SketchRecalculation.evaluated`): it is not evaluated again unless other cohorts are due.
    """
    affected = frozenset({cohort_id})
    return _settle(sketch, team_id, person_id, origin, team, now_us, affected, sketch, evaluated)  # type: ignore[arg-type]


def recalculation_changes(sketch: RecordSketch, team: TeamCatalog, cohort_id: int, now_us: int) -> bool:
    """Whether `reevaluate(record, ..., cohorts=(cohort_id,))` would change more than bookkeeping.

    False means the recalculation can leave the record as it is: the cohort's bit, version and
    deadline come out as stored and no member cohort is gone. What it would also have done (note the
    evaluation time, prune, evaluate cohorts that happen to be due) the next input or tick does.
    Decided from a sketch, so most persons of a recalculation cost a parse and one evaluation.
    """
    return recalculation_check(sketch, team, cohort_id, now_us)[0]


def recalculation_check(
    sketch: RecordSketch, team: TeamCatalog, cohort_id: int, now_us: int
) -> tuple[bool, LeafResult | None]:
    """`recalculation_changes`, and the cohort's evaluation it made, for `recalculate` (None: it
    decided without evaluating)."""
    decided = _sketch_changes(sketch, team)
    if decided is not None:
        return decided, None
    now_us = max(now_us, sketch.evaluated_at_us)
    return _cohort_changes(sketch, team, cohort_id, now_us, team.plan.run(sketch, now_us, _Bits(sketch.member_ids())))


class SketchRecalculation:
    """`recalculation_changes` for several cohorts of one sketch (a run of recalculations).

    What does not depend on the cohort is worked out once: the sketch's own checks, and the plan
    run, so a leaf several of the cohorts read is evaluated once. From the second cohort on, the
    sketch's members and deadlines are looked up as dicts (built once) rather than searched in its
    flat lists. Valid while the sketch is unchanged. After `changes`, `evaluated` is the cohort's
    (member, deadline) it found, for `recalculate` (None: it decided without evaluating).
    """

    __slots__ = ("_checked", "_decided", "_now_us", "_run", "_sketch", "_team", "evaluated")

    def __init__(self, sketch: RecordSketch, team: TeamCatalog, now_us: int) -> None:
        self._sketch = sketch
        self._team = team
        self._now_us = max(now_us, sketch.evaluated_at_us)
        self._decided = _sketch_changes(sketch, team)
        self._checked = 0
        self.evaluated: LeafResult | None = None
        self._run = (
            None if self._decided is not None else team.plan.run(sketch, self._now_us, _Bits(sketch.member_ids()))
        )

    def changes(self, cohort_id: int) -> bool:
        self.evaluated = None
        if self._decided is not None:
            return self._decided
        self._checked += 1
        if self._checked == 2:  # from the second cohort on: dict lookups, not searches of the flat lists
            self._sketch.members  # noqa: B018 - built for the lookups
            self._sketch.deadlines  # noqa: B018
        assert self._run is not None
        changes, self.evaluated = _cohort_changes(self._sketch, self._team, cohort_id, self._now_us, self._run)
        return changes


def _cohort_changes(
    sketch: RecordSketch, team: TeamCatalog, cohort_id: int, now_us: int, run: PlanRun
) -> tuple[bool, LeafResult | None]:
    """`recalculation_changes` past the sketch's own checks, with the plan run at `now_us`; and the
    cohort's evaluation (None for a deleted cohort, which is not evaluated)."""
    index = team.position.get(cohort_id)
    if index is None:  # a deleted cohort: only a deadline left behind for it needs writing away
        return sketch.deadline_of(cohort_id) is not None, None
    evaluated = run.evaluate(cohort_id)
    member, deadline_us = evaluated
    version = sketch.member_version(cohort_id)
    if member != (version is not None):
        return True, evaluated
    if member and version != team.ordered[index].version:
        return True, evaluated
    expected = None if deadline_us is None else max(deadline_us, now_us + 1)
    return sketch.deadline_of(cohort_id) != expected, evaluated


def _sketch_changes(sketch: RecordSketch, team: TeamCatalog) -> bool | None:
    """Whether a recalculation of any cohort changes the sketch, when that does not depend on the
    cohort (a format-1 record, a member cohort gone, an unknown or deleted person); else None."""
    if sketch.version == 1:  # no per-cohort deadlines: the next evaluation is a full one
        return True
    member_ids = sketch.member_ids()
    if not team.cohort_ids.issuperset(member_ids):  # a member cohort is gone
        return True
    if not sketch.known or sketch.deleted:
        return bool(member_ids)
    return None


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


def _count(record: PersonRecord, requirement: MatcherRequirement, ts_us: int) -> MatcherState:
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
    return state


def _prune(record: PersonRecord, team: TeamCatalog, now_us: int) -> None:
    """Drop matchers, granularities, buckets and timestamps no live cohort can read any more."""
    matchers = record.matchers
    if not matchers:
        return
    requirements = team.requirements
    if not requirements.keys() >= matchers.keys():
        for matcher_hash in [h for h in matchers if h not in requirements]:
            del matchers[matcher_hash]
    for matcher_hash, state in matchers.items():
        requirement = requirements[matcher_hash]
        by_granularity = state.buckets
        if by_granularity:
            lookbacks = requirement.granularities
            cuts: list[tuple[str, int | None]] = []  # (granularity, floor; None: drop all), then cut
            for granularity, buckets in by_granularity.items():
                lookback = lookbacks.get(granularity)
                if lookback is None or not buckets:
                    cuts.append((granularity, None))
                    continue
                floor = now_us // BUCKET_US[granularity] - lookback
                if min(buckets) < floor:
                    cuts.append((granularity, floor))
            for granularity, floor in cuts:
                kept = None if floor is None else {b: c for b, c in by_granularity[granularity].items() if b >= floor}
                if kept:
                    by_granularity[granularity] = kept
                else:
                    del by_granularity[granularity]
        timestamps = state.timestamps_us
        if timestamps:
            cutoff = requirement.timestamp_cutoff_us(now_us)
            if cutoff is None:
                state.timestamps_us = []
            elif timestamps[0] < cutoff:
                del timestamps[: bisect.bisect_left(timestamps, cutoff)]


def _cohorts_of(team: TeamCatalog, matched: Sequence[MatcherRequirement]) -> frozenset[int]:
    if not matched:
        return frozenset()
    found: set[int] = set()
    for requirement in matched:
        found |= team.cohorts_by_matcher.get(requirement.matcher_hash, frozenset())
    return frozenset(found)


#: One step of a targeted evaluation: (cohort id, version, compiled cohort, references). References
#: None: a target, always evaluated; else evaluated only when a cohort it refers to flipped here.
_Step = tuple[int, int, Callable[[PlanRun], LeafResult], frozenset[int] | None]


class _TeamMemo:
    """What the fold derives from one team's catalog alone, remembered per input shape.

    Events of one name carry a few combinations of the properties their filters read, and inputs
    touch a few combinations of cohorts: the matchers an event matches (with the cohorts reading
    them) and the steps of a targeted evaluation are worked out once per shape. Kept on the team's
    plan (`TeamPlan.memo`), which a catalog change replaces along with the team (the memo refers
    back to its team: a cycle the garbage collector reclaims with the old plan).
    """

    __slots__ = ("event_keys", "events", "steps", "team")

    def __init__(self, team: TeamCatalog) -> None:
        self.team = team
        #: event name -> the properties its filters read, in a fixed order; None: not memoised
        #: (a date filter also reads the event's timestamp)
        self.event_keys: dict[str, tuple[str, ...] | None] = {}
        self.events: dict[tuple[Any, ...], tuple[tuple[MatcherRequirement, ...], frozenset[int]]] = {}
        self.steps: dict[frozenset[int], tuple[_Step, ...]] = {}


def _memo(team: TeamCatalog) -> _TeamMemo:
    plan = team.plan
    memo = plan.memo
    if not isinstance(memo, _TeamMemo) or memo.team is not team:  # a plan shared by two teams: re-derive
        memo = plan.memo = _TeamMemo(team)
    return memo


def _event_matches(team: TeamCatalog, item: EventInput) -> tuple[Sequence[MatcherRequirement], frozenset[int]]:
    """The team's matchers the event matches, and the live cohorts reading any of them.

    Matching depends only on the event's name and the values of the properties its filters read
    (and on its timestamp for date filters, which are never memoised). Only string or absent
    values make a memo key: `True`, `1` and `1.0` are one dict key but not one property value.
    """
    requirements = team.by_event.get(item.event)
    if not requirements:
        return (), frozenset()
    memo = _memo(team)
    keys = memo.event_keys.get(item.event, _MISSING)
    if keys is _MISSING:
        keys = memo.event_keys[item.event] = _filter_keys(requirements)
    if keys is None:
        return _matched_by(team, requirements, item)
    properties = item.properties
    shape: tuple[Any, ...] = (item.event, *[properties.get(key) for key in keys])
    for value in shape:
        if value is not None and type(value) is not str:
            return _matched_by(team, requirements, item)
    found = memo.events.get(shape)
    if found is None:
        if len(memo.events) >= _MEMO_ENTRIES:
            memo.events.clear()
        found = memo.events[shape] = _matched_by(team, requirements, item)
    return found


def _filter_keys(requirements: Sequence[MatcherRequirement]) -> tuple[str, ...] | None:
    """The event properties the requirements' filters read, sorted; None if a filter is on a date."""
    keys: set[str] = set()
    for requirement in requirements:
        for event_filter in requirement.filters:
            if event_filter.operator in DATE_OPERATORS:
                return None
            keys.add(event_filter.key)
    return tuple(sorted(keys))


def _matched_by(
    team: TeamCatalog, requirements: Sequence[MatcherRequirement], item: EventInput
) -> tuple[tuple[MatcherRequirement, ...], frozenset[int]]:
    matched = tuple(
        requirement
        for requirement in requirements
        if not requirement.filters or match_event(requirement.filters, item.properties, item.timestamp_us)
    )
    return matched, _cohorts_of(team, matched)


def _targeted_steps(team: TeamCatalog, targets: frozenset[int], everything: bool) -> tuple[_Step, ...]:
    """The steps evaluating `targets` and the cohorts that may follow a flip among them, in order.

    `everything` (a member cohort is gone): every cohort of the team, so that those referring to
    the gone one are found among them; not memoised, it happens once per person and gone cohort.
    """
    if everything:
        return _steps_of(team, targets, team.ordered)
    memo = _memo(team).steps
    steps = memo.get(targets)
    if steps is None:
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        steps = memo[targets] = _steps_of(team, targets, team.candidates(targets))
    return steps


def _steps_of(team: TeamCatalog, targets: frozenset[int], candidates: Iterable[Any]) -> tuple[_Step, ...]:
    compiled = team.plan.compiled
    references = team.references
    return tuple(
        (d.id, d.version, compiled[d.id], None if d.id in targets else references.get(d.id, frozenset()))
        for d in candidates
    )


def _property_cohorts(team: TeamCatalog, before: Mapping[str, Any], after: Mapping[str, Any]) -> frozenset[int]:
    """Cohorts with a leaf on a property whose value changed: a person leaf reads only its own key."""
    found: set[int] = set()
    for key, cohort_ids in team.cohorts_by_property.items():
        if not _same_value(before.get(key, _MISSING), after.get(key, _MISSING)):
            found |= cohort_ids
    return frozenset(found)


def _same_value(a: Any, b: Any) -> bool:
    """Certainly the same JSON value (`1 == True == 1.0` in Python, not for property matching)."""
    if a is b:
        return True
    if type(a) is not type(b) or a != b:
        return False
    return not isinstance(a, list | dict) or orjson.dumps(a) == orjson.dumps(b)


class _Bits:
    """Membership bits during one evaluation, as the plan's cohort leaves read them.

    The fold applies each evaluated bit to `members` at once, so this is the stored bit for cohorts
    not evaluated (yet) and this run's result for the others.
    """

    __slots__ = ("_members",)

    def __init__(self, members: Container[int]) -> None:
        self._members = members

    def get(self, cohort_id: int, default: object = None) -> bool:
        """Every cohort has a bit (absent = not a member), so `default` is never used."""
        return cohort_id in self._members


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
            flips.append(_new_flip(Flip, (team_id, person_id, cohort_id, True, version, now_us)))
        members[cohort_id] = version
    elif was:
        flips.append(_new_flip(Flip, (team_id, person_id, cohort_id, False, version, now_us)))
        del members[cohort_id]


def _settle_all(
    plan: TeamPlan,
    run: PlanRun,
    record: PersonRecord,
    sketch: RecordSketch | None,
    members: dict[int, int],
    deadlines: dict[int, int],
    flips: list[Flip],
    team_id: int,
    person_id: str,
    now_us: int,
) -> None:
    """`_settle` for every cohort (a new, deleted or un-deleted person, or a format-1 record).

    Every cohort is evaluated in order, so there are no targets to check. A person none of whose
    matchers ever matched skips the cohorts `plan.silent_without_history` names when a member of
    none of them: they are (not a member, no deadline) for that person (`cohorts.plan.TeamPlan`),
    which is what most behavioural cohorts are for a person's first record.
    """
    steps = plan.steps
    if (
        sketch is None
        and members.keys().isdisjoint(plan.silent_without_history)
        and all(state.first_seen_us is None for state in record.matchers.values())
    ):
        steps = plan.steps_with_history
    for cohort_id, version, compiled in steps:
        member, deadline_us = compiled(run)
        # the bit is applied at once: cohorts evaluated later (dependants) read it
        if member:
            if cohort_id not in members:
                flips.append(_new_flip(Flip, (team_id, person_id, cohort_id, True, version, now_us)))
            members[cohort_id] = version
        elif cohort_id in members:
            flips.append(_new_flip(Flip, (team_id, person_id, cohort_id, False, version, now_us)))
            del members[cohort_id]
        if deadline_us is not None:
            deadlines[cohort_id] = deadline_us if deadline_us > now_us else now_us + 1


def _known_first(steps: tuple[_Step, ...], evaluated: LeafResult) -> tuple[_Step, ...]:
    """The steps of a single target with its evaluation replaced by its known result. The target
    comes first: the other steps are the cohorts referring to it, which follow it in the plan (if
    it did not, the steps are left to evaluate it)."""
    if not steps or steps[0][3] is not None:
        return steps
    (cohort_id, version, _, refers), *rest = steps
    return ((cohort_id, version, lambda _run: evaluated, refers), *rest)


def _settle(
    record: PersonRecord,
    team_id: int,
    person_id: str,
    origin: Origin,
    team: TeamCatalog,
    now_us: int,
    affected: frozenset[int],
    sketch: RecordSketch | None = None,
    evaluated: LeafResult | None = None,
) -> list[Flip]:
    """Rules 5 and 6: evaluate what may have changed, apply the changed bits, keep the deadlines.

    `affected` (`_ALL` = every cohort) names the cohorts whose own leaves the input touched. Those,
    the cohorts whose own deadline has passed, and the cohorts referring to one whose bit flipped
    here are evaluated; the others keep their bits, which is exact because nothing they read
    changed and their deadline (the earliest instant time alone could change them) is still ahead.
    Each cohort's deadline is kept in the record; the record's deadline is the earliest of them. A
    record written before per-cohort deadlines existed (`deadlines is None`) is evaluated in full.
    Members of cohorts that are gone leave first, so cohorts referring to them read "not a member".
    With `sketch` (then `record` is that sketch) nothing is pruned and the sketch is the facts.
    `evaluated` is the result of `affected`'s one cohort on these facts and bits at this instant,
    known to the caller (`recalculate`); it stands for that evaluation when no other cohort is due.
    """
    now_us = max(now_us, record.evaluated_at_us)
    record.evaluated_at_us = now_us
    if sketch is None:
        _prune(record, team, now_us)
    members = record.members
    position = team.position
    flips: list[Flip] = []
    left: list[Flip] = []
    if not position.keys() >= members.keys():
        for cohort_id in [c for c in members if c not in position]:
            version = team.versions.get(cohort_id, members[cohort_id])
            left.append(Flip(team_id, person_id, cohort_id, False, version, now_us))
            del members[cohort_id]
    deadlines = record.deadlines
    if deadlines is None or affected is _ALL:
        affected, deadlines = _ALL, {}
    if record.known and not record.deleted:
        plan = team.plan
        run = plan.run(RecordFacts(record) if sketch is None else sketch, now_us, _Bits(members))
        if affected is _ALL:
            _settle_all(plan, run, record, sketch, members, deadlines, flips, team_id, person_id, now_us)
        else:
            due = [c for c, deadline_us in deadlines.items() if deadline_us <= now_us]
            targets = affected.union(due) if due else affected
            changed = {flip.cohort_id for flip in left}
            steps = _targeted_steps(team, targets, bool(left))
            if evaluated is not None and targets is affected and not left:
                steps = _known_first(steps, evaluated)
            for cohort_id, version, compiled, refers in steps:
                if refers is not None and (not changed or changed.isdisjoint(refers)):
                    continue
                member, deadline_us = compiled(run)
                # the bit is applied at once: cohorts evaluated later (dependants) read it
                if member != (cohort_id in members):
                    changed.add(cohort_id)
                    flips.append(_new_flip(Flip, (team_id, person_id, cohort_id, member, version, now_us)))
                    if not member:
                        del members[cohort_id]
                if member:
                    members[cohort_id] = version
                if deadline_us is None:
                    deadlines.pop(cohort_id, None)
                else:
                    deadlines[cohort_id] = deadline_us if deadline_us > now_us else now_us + 1
    else:
        deadlines = {}
        for definition in team.ordered:
            _apply_bit(definition.id, definition.version, False, members, flips, team_id, person_id, now_us)
    if not position.keys() >= deadlines.keys():
        for cohort_id in [c for c in deadlines if c not in position]:
            del deadlines[cohort_id]
    record.deadlines = deadlines
    record.next_deadline_us = min(deadlines.values()) if deadlines else None
    flips.extend(left)
    if flips:
        record.outbox.add(flips, origin)
        record.outbox.trim(OUTBOX_LIMIT)
    return flips
