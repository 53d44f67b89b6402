"""An independent batch evaluator: full raw history in, cohort members out (design §4, §4.1).

Tests compare the incremental worker (and `cohorts.evaluate`) against this module, so it must not
share their window logic. It reads only the filter model, date values, property matching and
timestamp parsing, and restates the unit table itself. It works the plain, obvious way: for every
known person and every leaf it filters the raw events by timestamp and counts them. Clarity over
speed; never use it in the worker.

Rules written out here:
- a person is known to a team once a person record or an event of that team names them;
- the person record with the highest version wins, whatever the order (first one on a tie);
- a person whose winning record is deleted is in no cohort, and their events are ignored;
- a cohort of team T considers only persons of team T; a deleted cohort is empty; a static cohort
  holds its listed members that are known, live persons of its team;
- cohort leaves use the referenced cohort's members, computed first (dependency order); a
  reference to a missing cohort, a cohort of another team, or a cycle counts as "not a member";
- event filters with a relative date resolve against the event's own timestamp;
- "the rest of the long window" (restarted) is the long window minus the recent one, as sets of
  instants; "before the long window" is any matching event earlier than its first instant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cohorts.dates import resolve_date
from cohorts.model import BehavioralLeaf, CohortDefinition, CohortLeaf, Group, Node, PersonLeaf
from cohorts.properties import match_event, match_property

__all__ = ["RawEvent", "RawPerson", "reference_members"]

_SECOND_US = 1_000_000
_MINUTE_US = 60 * _SECOND_US
_DAY_US = 86_400 * _SECOND_US

#: unit -> (length in µs, bucket length in µs): minute/hour windows count minutes, the rest days.
_UNITS: dict[str, tuple[int, int]] = {
    "minute": (_MINUTE_US, _MINUTE_US),
    "hour": (60 * _MINUTE_US, _MINUTE_US),
    "day": (_DAY_US, _DAY_US),
    "week": (7 * _DAY_US, _DAY_US),
    "month": (30 * _DAY_US, _DAY_US),
    "year": (365 * _DAY_US, _DAY_US),
}


@dataclass(frozen=True)
class RawEvent:
    team_id: int
    person_id: str
    event: str
    timestamp_us: int
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RawPerson:
    team_id: int
    person_id: str
    properties: dict
    version: int
    is_deleted: bool = False


def reference_members(
    definitions: Mapping[int, CohortDefinition],
    events: Iterable[RawEvent],
    persons: Iterable[RawPerson],
    static_members: Mapping[int, set[str]],
    now_us: int,
) -> dict[int, set[str]]:
    """cohort id -> ids of the persons who are members at `now_us`."""
    events = list(events)
    known: dict[int, set[str]] = {}
    for event in events:
        known.setdefault(event.team_id, set()).add(event.person_id)
    latest: dict[tuple[int, str], RawPerson] = {}
    for person in persons:
        known.setdefault(person.team_id, set()).add(person.person_id)
        key = (person.team_id, person.person_id)
        if key not in latest or person.version > latest[key].version:
            latest[key] = person

    def is_live(team_id: int, person_id: str) -> bool:
        record = latest.get((team_id, person_id))
        return record is None or not record.is_deleted

    live: dict[int, list[str]] = {
        team: sorted(pid for pid in pids if is_live(team, pid)) for team, pids in known.items()
    }
    history: dict[tuple[int, str], list[RawEvent]] = {}
    for event in events:
        history.setdefault((event.team_id, event.person_id), []).append(event)

    members: dict[int, set[str]] = {}
    in_progress: set[int] = set()

    def members_of(cohort_id: int) -> set[str]:
        if cohort_id in members:
            return members[cohort_id]
        if cohort_id in in_progress:  # a cycle: validation forbids it; treat as nobody
            return set()
        definition = definitions.get(cohort_id)
        if definition is None:
            return set()
        in_progress.add(cohort_id)
        team_persons = live.get(definition.team_id, [])
        result: set[str] = set()
        if definition.deleted:
            pass
        elif definition.is_static:
            listed = static_members.get(cohort_id, set())
            result = {pid for pid in team_persons if pid in listed}
        elif definition.root is not None:
            for person_id in team_persons:
                record = latest.get((definition.team_id, person_id))
                person = _Person(
                    team_id=definition.team_id,
                    person_id=person_id,
                    properties=record.properties if record is not None else {},
                    events=history.get((definition.team_id, person_id), []),
                )
                if _holds(definition.root, person, definition.team_id, now_us, members_of, definitions):
                    result.add(person_id)
        in_progress.discard(cohort_id)
        members[cohort_id] = result
        return result

    return {cohort_id: set(members_of(cohort_id)) for cohort_id in definitions}


@dataclass
class _Person:
    team_id: int
    person_id: str
    properties: dict
    events: list[RawEvent]


def _holds(
    node: Node,
    person: _Person,
    team_id: int,
    now_us: int,
    members_of: Callable[[int], set[str]],
    definitions: Mapping[int, CohortDefinition],
) -> bool:
    if isinstance(node, Group):
        results = [_holds(child, person, team_id, now_us, members_of, definitions) for child in node.values]
        return all(results) if node.type == "AND" else any(results)
    if isinstance(node, PersonLeaf):
        matched = match_property(node.operator, node.value, person.properties, node.key, now_us)
    elif isinstance(node, CohortLeaf):
        target = definitions.get(node.cohort_id)
        same_team = target is not None and target.team_id == team_id
        matched = same_team and person.person_id in members_of(node.cohort_id)
    elif isinstance(node, BehavioralLeaf):
        matched = _behaved(node, person, now_us)
    else:
        matched = False
    return matched != node.negation


def _matching_times(leaf: BehavioralLeaf, person: _Person) -> list[int]:
    return sorted(
        event.timestamp_us
        for event in person.events
        if event.event == leaf.event and match_event(leaf.event_filters, event.properties, event.timestamp_us)
    )


def _last_units(now_us: int, amount: int, unit: str) -> tuple[int, int]:
    """[start, end) in µs of "the last `amount` units": whole buckets, now's bucket included."""
    length, bucket = _UNITS[unit]
    now_bucket_start = (now_us // bucket) * bucket
    start = now_bucket_start - (amount * length // bucket) * bucket
    return start, now_bucket_start + bucket


def _main_window(leaf: BehavioralLeaf, now_us: int) -> tuple[int, int] | None:
    """[start, end) in µs of the leaf's main window; explicit windows are inclusive of their end µs."""
    if leaf.explicit_datetime is not None:
        start = resolve_date(leaf.explicit_datetime, now_us)
        end = now_us if leaf.explicit_datetime_to is None else resolve_date(leaf.explicit_datetime_to, now_us)
        return start, end + 1
    if leaf.time_value is None or leaf.time_interval is None:
        return None
    return _last_units(now_us, leaf.time_value, leaf.time_interval)


def _count(times: list[int], window: tuple[int, int]) -> int:
    start, end = window
    return sum(1 for ts in times if start <= ts < end)


def _compare(count: int, operator: str | None, operand: int | None) -> bool:
    target = 1 if operand is None else operand
    return {
        "gte": count >= target,
        "gt": count > target,
        "lte": count <= target,
        "lt": count < target,
    }.get(operator or "eq", count == target)


def _behaved(leaf: BehavioralLeaf, person: _Person, now_us: int) -> bool:
    times = _matching_times(leaf, person)
    kind = leaf.kind
    if kind in ("performed_event", "performed_event_multiple", "performed_event_first_time"):
        window = _main_window(leaf, now_us)
        if window is None:
            return False
        if kind == "performed_event":
            return _count(times, window) >= 1
        if kind == "performed_event_multiple":
            return _compare(_count(times, window), leaf.operator, leaf.operator_value)
        return bool(times) and window[0] <= times[0] < window[1]
    if kind == "performed_event_sequence":
        window = _main_window(leaf, now_us)
        if window is None or leaf.seq_event is None:
            return False
        if leaf.seq_time_value is None or leaf.seq_time_interval is None:
            return False
        gap = leaf.seq_time_value * _UNITS[leaf.seq_time_interval][0]
        followers = [event.timestamp_us for event in person.events if event.event == leaf.seq_event]
        return any(window[0] <= t1 < window[1] and any(t1 < t2 <= t1 + gap for t2 in followers) for t1 in times)
    if kind == "performed_event_regularly":
        return _regularly(leaf, times, now_us)
    if kind in ("stopped_performing_event", "restarted_performing_event"):
        if None in (leaf.time_value, leaf.time_interval, leaf.seq_time_value, leaf.seq_time_interval):
            return False
        long_window = _last_units(now_us, leaf.time_value, leaf.time_interval)
        recent_window = _last_units(now_us, leaf.seq_time_value, leaf.seq_time_interval)
        in_recent = _count(times, recent_window)
        if kind == "stopped_performing_event":
            return _count(times, long_window) >= 1 and in_recent == 0
        rest = sum(
            1 for ts in times if long_window[0] <= ts < long_window[1] and not recent_window[0] <= ts < recent_window[1]
        )
        before = any(ts < long_window[0] for ts in times)
        return in_recent >= 1 and rest == 0 and before
    return False


def _regularly(leaf: BehavioralLeaf, times: list[int], now_us: int) -> bool:
    """Period i (0 = newest) is [now's bucket - (i+1)L + 1, now's bucket - iL] in buckets."""
    if leaf.time_value is None or leaf.time_interval is None or not leaf.total_periods:
        return False
    length, bucket = _UNITS[leaf.time_interval]
    period_us = (leaf.time_value * length // bucket) * bucket
    if period_us <= 0:
        return False
    newest_end = (now_us // bucket + 1) * bucket
    per_period = 1 if leaf.operator_value is None else leaf.operator_value
    needed = 1 if leaf.min_periods is None else leaf.min_periods
    good = 0
    for index in range(leaf.total_periods):
        end = newest_end - index * period_us
        if _count(times, (end - period_us, end)) >= per_period:
            good += 1
    return good >= needed
