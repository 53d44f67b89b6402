"""The evaluator: one cohort definition, one person's facts, `now` -> membership and next deadline.

Design §4/§4.1 define what "member" means; this module computes it from the compact per-person
state the worker keeps (bucket counts per matcher, first-seen times, bounded timestamp lists) and
never from raw event history. It never reads a clock, a store, Kafka or the environment.

The next deadline is the earliest instant after `now` at which the result may change with no new
input (a bucket slides out of a window, a future-bucket event enters, a relative date crosses, a
sequence's first step leaves, a regularly-period shifts). It may be early (one extra evaluation),
never late.

How deadlines are found: almost every behavioural condition is a count over a window, and an event
(or a bucket of events) is inside a sliding window exactly while `now` lies in one interval, its
*activity interval*. A bucket `b` of a window spanning `s` buckets is counted while
`start(b) <= now < start(b + s + 1)` (design §4.1: the event in now's bucket counts, one in a later
bucket does not yet). So the count at any instant is the number of activity intervals covering it,
and sweeping the interval ends after `now` finds the first instant the comparison changes, exactly.
Stopped and restarted sweep several such counts at once. Regularly walks each bucket's moves from
one period to the next in time order and gives up, early, after `_MAX_STEPS` instants.

Groups: an AND that is true changes when any member changes; one that is false cannot become true
before every false member has changed, so its deadline is the latest of theirs (OR is the dual).
A cohort leaf contributes no deadline: the caller re-evaluates dependants when it flips the
referenced cohort.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import Any, Final, Protocol

from cohorts.dates import DateValueError, relative_seconds
from cohorts.model import BehavioralLeaf, CohortDefinition, CohortLeaf, Group, Node, PersonLeaf
from cohorts.properties import match_property, property_deadline_us, property_matcher
from cohorts.timebase import BUCKET_US, resolve_date_us, span_buckets, unit_us
from cohorts.vocab import DATE_OPERATORS

__all__ = ["Evaluation", "LeafContext", "LeafResult", "PersonFacts", "count_test", "evaluate", "prepare_leaf"]

#: Distinct instants a regularly-deadline walks before it returns an early deadline.
_MAX_STEPS: Final[int] = 512

#: An activity interval: (first instant, last instant or None = forever, weight).
_Span = tuple[int | None, int | None, int]


class PersonFacts(Protocol):
    """What the evaluator reads of one person (the worker's decoded record, or a test double)."""

    properties: Mapping[str, Any]

    def buckets(self, matcher_hash: str, granularity: str) -> Mapping[int, int]:
        """Sparse bucket -> count of matching events, at least over the requirement's lookback."""
        ...

    def first_seen_us(self, matcher_hash: str) -> int | None:
        """Earliest matching event ever seen (by timestamp, not arrival)."""
        ...

    def timestamps_us(self, matcher_hash: str) -> Sequence[int]:
        """Sorted timestamps of matching events, kept only where requirements ask."""
        ...

    def is_static_member(self, cohort_id: int) -> bool: ...


class LeafContext(Protocol):
    """What a prepared leaf reads: one person's facts at one instant."""

    facts: PersonFacts
    now_us: int


#: A leaf's value without its negation, and its deadline.
LeafResult = tuple[bool, int | None]


@dataclass(frozen=True, slots=True)
class Evaluation:
    member: bool
    next_deadline_us: int | None


def evaluate(
    definition: CohortDefinition, facts: PersonFacts, now_us: int, memberships: Mapping[int, bool]
) -> Evaluation:
    """Membership of one person in one cohort at `now_us`, and when to look again without input.

    `memberships` holds the person's current bits for the cohorts this one refers to.
    """
    if definition.deleted:
        return Evaluation(False, None)
    if definition.is_static:
        return Evaluation(facts.is_static_member(definition.id), None)
    if definition.root is None:
        return Evaluation(False, None)
    run = _Run(facts, now_us, memberships)
    member = run.value(definition.root)
    return Evaluation(member, run.deadline(definition.root, member))


def count_test(operator: str | None, operand: int | None) -> Callable[[int], bool]:
    """The comparison of `performed_event_multiple`: count <operator> operand; absent operator = eq."""
    value = 1 if operand is None else operand
    if operator == "gte":
        return lambda count: count >= value
    if operator == "gt":
        return lambda count: count > value
    if operator == "lte":
        return lambda count: count <= value
    if operator == "lt":
        return lambda count: count < value
    return lambda count: count == value


class _Run:
    """One evaluation: memoises node values and leaf results so deadlines never recount."""

    __slots__ = ("facts", "leaves", "memberships", "now_us", "values")

    def __init__(self, facts: PersonFacts, now_us: int, memberships: Mapping[int, bool]) -> None:
        self.facts = facts
        self.now_us = now_us
        self.memberships = memberships
        self.values: dict[int, bool] = {}
        self.leaves: dict[int, tuple[bool, int | None]] = {}

    def value(self, node: Node) -> bool:
        key = id(node)
        known = self.values.get(key)
        if known is not None:
            return known
        if isinstance(node, Group):
            if node.type == "AND":
                result = all(self.value(child) for child in node.values)
            else:
                result = any(self.value(child) for child in node.values)
        else:
            result = self.leaf(node)[0] != node.negation
        self.values[key] = result
        return result

    def leaf(self, leaf: Node) -> tuple[bool, int | None]:
        key = id(leaf)
        known = self.leaves.get(key)
        if known is None:
            known = self.leaves[key] = _leaf(leaf, self)
        return known

    def deadline(self, node: Node, value: bool) -> int | None:
        if not isinstance(node, Group):
            return self.leaf(node)[1]
        # For AND-true / OR-false any one member's change may flip the group (earliest counts);
        # for AND-false / OR-true every member holding the result must change first (latest counts).
        any_flips = value == (node.type == "AND")
        best: int | None = None
        for child in node.values:
            child_value = self.value(child)
            if any_flips:
                found = self.deadline(child, child_value)
                if found is not None and (best is None or found < best):
                    best = found
            elif child_value == value:
                found = self.deadline(child, child_value)
                if found is None:
                    return None
                if best is None or found > best:
                    best = found
        return best


def _leaf(leaf: Node, run: _Run) -> tuple[bool, int | None]:
    """(value without negation, deadline or None)."""
    if isinstance(leaf, PersonLeaf):
        properties = run.facts.properties
        matched = match_property(leaf.operator, leaf.value, properties, leaf.key, run.now_us)
        return matched, property_deadline_us(leaf, properties, run.now_us)
    if isinstance(leaf, CohortLeaf):
        return run.memberships.get(leaf.cohort_id, False), None
    if isinstance(leaf, BehavioralLeaf):
        kind = _KINDS.get(leaf.kind)
        if kind is None:
            return False, None
        try:
            return kind(leaf, run)
        except DateValueError:  # validation refuses unparseable dates; an old definition matches nothing
            return False, None
    return False, None


def prepare_leaf(leaf: PersonLeaf | BehavioralLeaf) -> Callable[[LeafContext], LeafResult]:
    """The leaf's (value without negation, deadline) as `evaluate` computes it, prepared once.

    For compiled plans (`cohorts.plan`): operator matchers, windows and comparisons are resolved
    here instead of on every call. The result is the same function of (facts, now) as `_leaf`.
    """
    if isinstance(leaf, PersonLeaf):
        return _prepare_person(leaf)
    if isinstance(leaf, BehavioralLeaf):
        kind = _KINDS.get(leaf.kind)
        if kind is None:
            return _never
        prepared = None
        if leaf.kind in ("performed_event", "performed_event_multiple") and leaf.explicit_datetime is None:
            prepared = _prepare_bucketed(leaf)
        elif leaf.kind == "performed_event_first_time" and leaf.explicit_datetime is None:
            prepared = _prepare_first_time(leaf)
        elif leaf.kind in ("stopped_performing_event", "restarted_performing_event"):
            prepared = _prepare_two_windows(leaf)
        elif leaf.kind == "performed_event_sequence" and leaf.explicit_datetime is None:
            prepared = _prepare_sequence(leaf)
        elif leaf.kind == "performed_event_regularly":
            prepared = _prepare_regularly(leaf)
        return _guarded(kind, leaf) if prepared is None else prepared
    return _never


def _never(_context: LeafContext) -> LeafResult:
    return False, None


def _prepare_person(leaf: PersonLeaf) -> Callable[[LeafContext], LeafResult]:
    match = property_matcher(leaf.operator, leaf.value)
    key = leaf.key
    if leaf.operator in DATE_OPERATORS:

        def dated(context: LeafContext) -> LeafResult:
            properties = context.facts.properties
            now_us = context.now_us
            return match(properties.get(key), now_us), property_deadline_us(leaf, properties, now_us)

        return dated

    def plain(context: LeafContext) -> LeafResult:  # only date operators have deadlines
        return match(context.facts.properties.get(key), context.now_us), None

    return plain


def _prepare_bucketed(leaf: BehavioralLeaf) -> Callable[[LeafContext], LeafResult] | None:
    """performed_event(_multiple) over "the last N units": `_in_window` with its constants resolved."""
    if leaf.time_value is None or leaf.time_interval is None:
        return _never
    try:
        granularity, span = span_buckets(leaf.time_value, leaf.time_interval)
    except (KeyError, TypeError, ValueError):  # the generic path raises the same on every call
        return None
    bucket_us = BUCKET_US[granularity]
    matcher_hash = leaf.matcher_hash
    if leaf.kind == "performed_event":

        def performed(context: LeafContext) -> LeafResult:
            """`_bucket_sweep` with `_at_least_one`, in one pass when no bucket lies after now's:
            the count is >= 1 until the newest bucket in the window leaves it (at that bucket +
            span + 1). Most persons hold a bucket or two per matcher, and performed_event is the
            commonest leaf, so skipping the change list matters here."""
            counts = context.facts.buckets(matcher_hash, granularity)
            if not counts:  # no event: 0 now and at every later instant
                return False, None
            now_us = context.now_us
            newest = now_us // bucket_us
            oldest = newest - span
            last = None
            for bucket, weight in counts.items():
                if weight and bucket >= oldest:
                    if bucket > newest or weight < 0:  # a later bucket enters: the full sweep
                        return _in_bucket_window(counts, granularity, span, now_us, _at_least_one)
                    if last is None or bucket > last:
                        last = bucket
            if last is None:
                return False, None
            return True, (last + span + 1) * bucket_us

        return performed

    test = count_test(leaf.operator, leaf.operator_value)
    no_events = test(0), None

    def bucketed(context: LeafContext) -> LeafResult:
        """`_bucket_sweep` without its change map when no bucket lies after now's: then the only
        changes are the window's buckets leaving it, one per bucket, oldest first."""
        counts = context.facts.buckets(matcher_hash, granularity)
        if not counts:  # no event: 0 now and at every later instant
            return no_events
        now_us = context.now_us
        newest = now_us // bucket_us
        oldest = newest - span
        count = 0
        inside: list[tuple[int, int]] = []
        for bucket, weight in counts.items():
            if weight and bucket >= oldest:
                if bucket > newest:  # a later bucket enters: the full sweep
                    return _in_bucket_window(counts, granularity, span, now_us, test)
                count += weight
                inside.append((bucket, weight))
        value = test(count)
        if len(inside) > 1:
            inside.sort()
        for bucket, weight in inside:
            count -= weight
            if test(count) != value:
                return value, (bucket + span + 1) * bucket_us
        return value, None

    return bucketed


def _prepare_first_time(leaf: BehavioralLeaf) -> Callable[[LeafContext], LeafResult] | None:
    """performed_event_first_time over "the last N units": `_first_time`'s sweep of one bucket."""
    if leaf.time_value is None or leaf.time_interval is None:
        return _never
    try:
        granularity, span = span_buckets(leaf.time_value, leaf.time_interval)
    except (KeyError, TypeError, ValueError):  # the generic path raises the same on every call
        return None
    bucket_us = BUCKET_US[granularity]
    matcher_hash = leaf.matcher_hash

    def first_time(context: LeafContext) -> LeafResult:
        first = context.facts.first_seen_us(matcher_hash)
        if first is None:
            return False, None
        bucket = first // bucket_us
        newest = context.now_us // bucket_us
        if bucket > newest:  # enters the window when now reaches its bucket
            return False, bucket * bucket_us
        if bucket < newest - span:  # left it for good
            return False, None
        return True, (bucket + span + 1) * bucket_us

    return first_time


def _prepare_two_windows(leaf: BehavioralLeaf) -> Callable[[LeafContext], LeafResult] | None:
    """stopped/restarted: `_two_windows` with both windows' granularity and span resolved."""
    if leaf.time_value is None or leaf.time_interval is None:
        return _never
    if leaf.seq_time_value is None or leaf.seq_time_interval is None:
        return _never
    try:
        long_granularity, long_span = span_buckets(leaf.time_value, leaf.time_interval)
        recent_granularity, recent_span = span_buckets(leaf.seq_time_value, leaf.seq_time_interval)
    except (KeyError, TypeError, ValueError):  # the generic path raises the same on every call
        return None
    long_us, recent_us = BUCKET_US[long_granularity], BUCKET_US[recent_granularity]
    matcher_hash = leaf.matcher_hash

    def windows(facts: PersonFacts) -> tuple[_Window, _Window]:
        return (
            (facts.buckets(matcher_hash, long_granularity), long_us, long_span),
            (facts.buckets(matcher_hash, recent_granularity), recent_us, recent_span),
        )

    if leaf.kind == "stopped_performing_event":

        def stopped(context: LeafContext) -> LeafResult:
            return _stopped_sweep(windows(context.facts), context.now_us)

        return stopped

    def restarted(context: LeafContext) -> LeafResult:
        facts = context.facts
        first = facts.first_seen_us(matcher_hash)
        if first is None:
            return False, None
        return _restarted_sweep(windows(facts), first, context.now_us)

    return restarted


def _prepare_sequence(leaf: BehavioralLeaf) -> Callable[[LeafContext], LeafResult] | None:
    """A sequence over "the last N units": `_sequence` with the gap and window resolved once."""
    seq_hash = leaf.seq_matcher_hash
    if seq_hash is None or leaf.seq_time_value is None or leaf.seq_time_interval is None:
        return _never
    try:
        gap = unit_us(leaf.seq_time_value, leaf.seq_time_interval)
        if leaf.time_value is None or leaf.time_interval is None:
            return _never
        granularity, span = span_buckets(leaf.time_value, leaf.time_interval)
    except (KeyError, TypeError, ValueError):  # the generic path raises the same on every call
        return None
    bucket_us = BUCKET_US[granularity]
    matcher_hash = leaf.matcher_hash

    def sequence(context: LeafContext) -> LeafResult:
        facts = context.facts
        firsts = facts.timestamps_us(matcher_hash)
        if not firsts:  # nothing paired: 0 now and at every later instant
            return False, None
        followers = facts.timestamps_us(seq_hash)
        paired = [t1 for t1 in firsts if _has_follower(followers, t1, gap)]
        return _in_bucket_window(_bucket_counts(paired, bucket_us), granularity, span, context.now_us, _at_least_one)

    return sequence


def _prepare_regularly(leaf: BehavioralLeaf) -> Callable[[LeafContext], LeafResult] | None:
    """`_regularly` with its periods, thresholds and bucket size resolved once."""
    if leaf.time_value is None or leaf.time_interval is None:
        return _never
    try:
        granularity, length = span_buckets(leaf.time_value, leaf.time_interval)
    except (KeyError, TypeError, ValueError):  # the generic path raises the same on every call
        return None
    total = leaf.total_periods or 0
    needed = 1 if leaf.min_periods is None else leaf.min_periods
    per_period = 1 if leaf.operator_value is None else leaf.operator_value
    if length <= 0 or total <= 0:
        return _never
    bucket_us = BUCKET_US[granularity]
    matcher_hash = leaf.matcher_hash

    def regularly(context: LeafContext) -> LeafResult:
        counts = context.facts.buckets(matcher_hash, granularity)
        return _periods_walk(counts, context.now_us // bucket_us, length, total, needed, per_period, bucket_us)

    return regularly


def _guarded(
    kind: Callable[[BehavioralLeaf, LeafContext], LeafResult], leaf: BehavioralLeaf
) -> Callable[[LeafContext], LeafResult]:
    def guarded(context: LeafContext) -> LeafResult:
        try:
            return kind(leaf, context)
        except DateValueError:  # as `_leaf`: an old definition with an unparseable date matches nothing
            return False, None

    return guarded


# --- counts over sliding windows --------------------------------------------------------------


def _bucket_sweep(
    counts: Mapping[int, int], span: int, newest: int, test: Callable[[int], bool]
) -> tuple[bool, int | None]:
    """test(count over buckets [newest - span, newest]) and the first later bucket where it differs.

    Bucket b is in the window while b <= newest <= b + span: it enters at b and leaves at b + span + 1.
    """
    oldest = newest - span
    count = 0
    changes: dict[int, int] = {}
    for bucket, weight in counts.items():
        if not weight or bucket < oldest:
            continue
        if bucket <= newest:
            count += weight
        else:
            changes[bucket] = changes.get(bucket, 0) + weight
        leave = bucket + span + 1
        changes[leave] = changes.get(leave, 0) - weight
    value = test(count)
    for bucket in sorted(changes):
        count += changes[bucket]
        if test(count) != value:
            return value, bucket
    return value, None


def _in_bucket_window(
    counts: Mapping[int, int], granularity: str, span: int, now_us: int, test: Callable[[int], bool]
) -> tuple[bool, int | None]:
    bucket_us = BUCKET_US[granularity]
    value, bucket = _bucket_sweep(counts, span, now_us // bucket_us, test)
    return value, None if bucket is None else bucket * bucket_us


def _sweep(spans: Iterable[_Span], now_us: int, test: Callable[[int], bool]) -> tuple[bool, int | None]:
    """test(count of spans covering now) and the first instant after now where it differs."""
    count = 0
    changes: dict[int, int] = {}
    for low, high, weight in spans:
        if high is not None and high < now_us:
            continue
        if low is None or low <= now_us:
            count += weight
        else:
            changes[low] = changes.get(low, 0) + weight
        if high is not None:
            changes[high + 1] = changes.get(high + 1, 0) - weight
    value = test(count)
    for instant in sorted(changes):
        count += changes[instant]
        if test(count) != value:
            return value, instant
    return value, None


class _Explicit:
    """An explicit window as bounds on `now` per timestamp (design §4.1: inclusive to the µs)."""

    __slots__ = ("end_fixed", "end_offset", "start_fixed", "start_offset")

    def __init__(self, leaf: BehavioralLeaf) -> None:
        start_text = leaf.explicit_datetime or ""
        seconds = relative_seconds(start_text)
        self.start_offset = None if seconds is None else seconds * 1_000_000
        self.start_fixed = resolve_date_us(start_text, 0) if seconds is None else None
        self.end_offset: int | None = 0  # no `_to`: the end is now
        self.end_fixed: int | None = None
        if leaf.explicit_datetime_to is not None:
            seconds = relative_seconds(leaf.explicit_datetime_to)
            self.end_offset = None if seconds is None else seconds * 1_000_000
            self.end_fixed = resolve_date_us(leaf.explicit_datetime_to, 0) if seconds is None else None

    def span(self, ts_us: int) -> _Span | None:
        """Instants `now` at which `ts_us` lies in [start(now), end(now)], or None for never."""
        low: int | None = None
        high: int | None = None
        if self.start_fixed is not None:
            if ts_us < self.start_fixed:
                return None
        else:  # ts >= now - D  <=>  now <= ts + D
            high = ts_us + (self.start_offset or 0)
        if self.end_fixed is not None:
            if ts_us > self.end_fixed:
                return None
        else:  # ts <= now - D  <=>  now >= ts + D
            low = ts_us + (self.end_offset or 0)
        if low is not None and high is not None and low > high:
            return None
        return low, high, 1

    def spans(self, timestamps: Iterable[int]) -> Iterable[_Span]:
        for ts in timestamps:
            span = self.span(ts)
            if span is not None:
                yield span


def _in_window(
    leaf: BehavioralLeaf, run: LeafContext, test: Callable[[int], bool], timestamps: Sequence[int] | None = None
) -> tuple[bool, int | None]:
    """test(count of the leaf's events in its main window), explicit or bucketed, and its deadline.

    `timestamps` replaces the matcher's events (sequences pass their paired first steps).
    """
    if leaf.explicit_datetime is not None:
        stamps = run.facts.timestamps_us(leaf.matcher_hash) if timestamps is None else timestamps
        return _sweep(_Explicit(leaf).spans(stamps), run.now_us, test)
    if leaf.time_value is None or leaf.time_interval is None:
        return False, None
    granularity, span = span_buckets(leaf.time_value, leaf.time_interval)
    if timestamps is None:
        counts = run.facts.buckets(leaf.matcher_hash, granularity)
    else:
        counts = _bucket_counts(timestamps, BUCKET_US[granularity])
    return _in_bucket_window(counts, granularity, span, run.now_us, test)


def _bucket_counts(timestamps: Iterable[int], bucket_us: int) -> dict[int, int]:
    """Events per bucket, as the facts keep them, for instants the facts do not bucket (paired first steps)."""
    counts: dict[int, int] = {}
    for ts in timestamps:
        bucket = ts // bucket_us
        counts[bucket] = counts.get(bucket, 0) + 1
    return counts


def _at_least_one(count: int) -> bool:
    return count >= 1


# --- behavioural kinds ------------------------------------------------------------------------


def _performed(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    return _in_window(leaf, run, _at_least_one)


def _performed_multiple(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    return _in_window(leaf, run, count_test(leaf.operator, leaf.operator_value))


def _first_time(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    """Design §4.1: the earliest matching timestamp ever seen lies in the window."""
    first = run.facts.first_seen_us(leaf.matcher_hash)
    if first is None:
        return False, None
    return _in_window(leaf, run, _at_least_one, timestamps=(first,))


def _sequence(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    """Design §4.1: t1 in the (bucketed) window, then `seq_event` at t2 with t1 < t2 <= t1 + gap.

    Whether a t1 has its t2 does not depend on now, so the result is "some paired t1 is in the
    window", a plain count over the paired first steps.
    """
    seq_hash = leaf.seq_matcher_hash
    if seq_hash is None or leaf.seq_time_value is None or leaf.seq_time_interval is None:
        return False, None
    gap = unit_us(leaf.seq_time_value, leaf.seq_time_interval)
    followers = run.facts.timestamps_us(seq_hash)
    paired = [t1 for t1 in run.facts.timestamps_us(leaf.matcher_hash) if _has_follower(followers, t1, gap)]
    return _in_window(leaf, run, _at_least_one, timestamps=paired)


def _has_follower(sorted_ts: Sequence[int], t1: int, gap_us: int) -> bool:
    index = bisect_right(sorted_ts, t1)
    return index < len(sorted_ts) and sorted_ts[index] <= t1 + gap_us


def _window_into(
    counts: Mapping[int, int], bucket_us: int, span: int, now_us: int, changes: dict[int, list[int]], index: int
) -> int:
    """One counter of a stopped/restarted sweep: the events in "the last `span` buckets" at now.

    Bucket b is in the window while start(b) <= now < start(b + span + 1); its entry (when after
    now) and its exit go into `changes` (instant -> [delta per counter], at `index`). One shared map
    with a short list per instant, rather than a generator of spans per counter and (counter,
    delta) pairs per instant: these leaves are evaluated on most events of their matcher.
    """
    count = 0
    reach = (span + 1) * bucket_us
    for bucket, weight in counts.items():
        if not weight:
            continue
        low = bucket * bucket_us
        leave = low + reach
        if leave <= now_us:
            continue
        if low <= now_us:
            count += weight
        else:
            entry = changes.get(low)
            if entry is None:
                entry = changes[low] = [0, 0, 0, 0]
            entry[index] += weight
        entry = changes.get(leave)
        if entry is None:
            entry = changes[leave] = [0, 0, 0, 0]
        entry[index] -= weight
    return count


def _regularly(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    """Design §4.1: period i covers buckets [B - (i+1)L + 1, B - iL]; a period needs >= operator_value.

    Each bucket moves one period older every L buckets, so the deadline walks those moves in order
    (a heap of next moves) until the number of satisfied periods crosses `min_periods`, giving up
    early after `_MAX_STEPS` distinct instants.
    """
    if leaf.time_value is None or leaf.time_interval is None:
        return False, None
    granularity, length = span_buckets(leaf.time_value, leaf.time_interval)
    total = leaf.total_periods or 0
    needed = 1 if leaf.min_periods is None else leaf.min_periods
    per_period = 1 if leaf.operator_value is None else leaf.operator_value
    if length <= 0 or total <= 0:
        return False, None
    bucket_us = BUCKET_US[granularity]
    counts = run.facts.buckets(leaf.matcher_hash, granularity)
    return _periods_walk(counts, run.now_us // bucket_us, length, total, needed, per_period, bucket_us)


def _periods_walk(
    counts: Mapping[int, int], now_bucket: int, length: int, total: int, needed: int, per_period: int, bucket_us: int
) -> LeafResult:
    """`_regularly` once its leaf is resolved: the satisfied periods now, then their moves in time order."""
    oldest = now_bucket - total * length + 1
    per = [0] * total
    moves: list[tuple[int, int, int, int]] = []  # (bucket index of the move, bucket, count, from period)
    for bucket, count in counts.items():
        if not count or bucket < oldest:
            continue
        if bucket > now_bucket:  # a future bucket enters period 0 when now reaches it
            moves.append((bucket, bucket, count, -1))
        else:
            period = (now_bucket - bucket) // length
            per[period] += count
            moves.append((bucket + (period + 1) * length, bucket, count, period))
    heapify(moves)
    satisfied = sum(1 for count in per if count >= per_period)
    value = satisfied >= needed
    for _step in range(_MAX_STEPS):
        if not moves:
            return value, None
        at = moves[0][0]
        while moves and moves[0][0] == at:
            _at, bucket, count, period = heappop(moves)
            if period >= 0:
                satisfied -= per[period] >= per_period
                per[period] -= count
                satisfied += per[period] >= per_period
            if period + 1 < total:
                satisfied -= per[period + 1] >= per_period
                per[period + 1] += count
                satisfied += per[period + 1] >= per_period
                heappush(moves, (bucket + (period + 2) * length, bucket, count, period + 1))
        if (satisfied >= needed) != value:
            return value, at * bucket_us
    return value, (moves[0][0] * bucket_us if moves else None)


_Window = tuple[Mapping[int, int], int, int]  # (bucket counts, bucket_us, span in buckets)


def _two_windows(leaf: BehavioralLeaf, run: LeafContext) -> tuple[_Window, _Window] | None:
    """The long (`time_*`) and the recent (`seq_*`) window of stopped/restarted, or None."""
    if leaf.time_value is None or leaf.time_interval is None:
        return None
    if leaf.seq_time_value is None or leaf.seq_time_interval is None:
        return None
    return (
        _window(leaf, run, leaf.time_value, leaf.time_interval),
        _window(leaf, run, leaf.seq_time_value, leaf.seq_time_interval),
    )


def _window(leaf: BehavioralLeaf, run: LeafContext, time_value: int, time_interval: str) -> _Window:
    granularity, span = span_buckets(time_value, time_interval)
    return run.facts.buckets(leaf.matcher_hash, granularity), BUCKET_US[granularity], span


def _stopped(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    """Design §4: >= 1 in the long window, 0 in the recent one, each bucketed by its own unit."""
    windows = _two_windows(leaf, run)
    if windows is None:
        return False, None
    return _stopped_sweep(windows, run.now_us)


def _stopped_sweep(windows: tuple[_Window, _Window], now_us: int) -> LeafResult:
    """>= 1 in the long window and 0 in the recent one now, and the first instant that changes."""
    (long_counts, long_us, long_span), (recent_counts, recent_us, recent_span) = windows
    changes: dict[int, list[int]] = {}
    long = _window_into(long_counts, long_us, long_span, now_us, changes, 0)
    recent = _window_into(recent_counts, recent_us, recent_span, now_us, changes, 1)
    value = long >= 1 and recent == 0
    for instant in sorted(changes):
        deltas = changes[instant]
        long += deltas[0]
        recent += deltas[1]
        if (long >= 1 and recent == 0) != value:
            return value, instant
    return value, None


def _restarted(leaf: BehavioralLeaf, run: LeafContext) -> tuple[bool, int | None]:
    """Design §4.1: >= 1 recently, 0 in the rest of the long window, >= 1 before its first bucket.

    "Rest of the long window" = long minus the overlap of both windows. A bucket of the finer
    granularity is in the overlap while it is in its own window and its enclosing coarser bucket is
    in the other: the intersection of two activity intervals, itself an interval. "Before" is judged
    on the first-seen time (it holds at any age): it becomes true once first-seen's bucket has left
    the long window.
    """
    windows = _two_windows(leaf, run)
    first = run.facts.first_seen_us(leaf.matcher_hash)
    if windows is None or first is None:
        return False, None
    return _restarted_sweep(windows, first, run.now_us)


def _restarted_sweep(windows: tuple[_Window, _Window], first: int, now_us: int) -> LeafResult:
    """Counters: 0 the long window, 1 the recent one, 2 their overlap, 3 "before the long window"."""
    (long_counts, long_us, long_span), (recent_counts, recent_us, recent_span) = windows
    changes: dict[int, list[int]] = {}
    long = _window_into(long_counts, long_us, long_span, now_us, changes, 0)
    recent = _window_into(recent_counts, recent_us, recent_span, now_us, changes, 1)
    overlap = _overlap_into(windows, now_us, changes)
    before_from = (first // long_us + long_span + 1) * long_us  # holds from then on, forever
    before = 1 if before_from <= now_us else 0
    if not before:
        entry = changes.get(before_from)
        if entry is None:
            entry = changes[before_from] = [0, 0, 0, 0]
        entry[3] += 1
    value = recent >= 1 and long - overlap == 0 and before >= 1
    for instant in sorted(changes):
        deltas = changes[instant]
        long += deltas[0]
        recent += deltas[1]
        overlap += deltas[2]
        before += deltas[3]
        if (recent >= 1 and long - overlap == 0 and before >= 1) != value:
            return value, instant
    return value, None


def _overlap_into(windows: tuple[_Window, _Window], now_us: int, changes: dict[int, list[int]]) -> int:
    """Counter 2 of `_restarted_sweep`: events in both windows at now (`_window_into`'s contract)."""
    (long_counts, long_us, long_span), (recent_counts, recent_us, recent_span) = windows
    if recent_us <= long_us:
        fine_counts, fine_us, fine_span, coarse_us, coarse_span = (
            recent_counts,
            recent_us,
            recent_span,
            long_us,
            long_span,
        )
    else:
        fine_counts, fine_us, fine_span, coarse_us, coarse_span = (
            long_counts,
            long_us,
            long_span,
            recent_us,
            recent_span,
        )
    count = 0
    for bucket, weight in fine_counts.items():
        if not weight:
            continue
        low = bucket * fine_us
        high = low + (fine_span + 1) * fine_us - 1
        coarse_low = low // coarse_us * coarse_us
        coarse_high = coarse_low + (coarse_span + 1) * coarse_us - 1
        start, end = max(low, coarse_low), min(high, coarse_high)
        if start > end or end < now_us:
            continue
        if start <= now_us:
            count += weight
        else:
            entry = changes.get(start)
            if entry is None:
                entry = changes[start] = [0, 0, 0, 0]
            entry[2] += weight
        entry = changes.get(end + 1)
        if entry is None:
            entry = changes[end + 1] = [0, 0, 0, 0]
        entry[2] -= weight
    return count


_KINDS: Final[dict[str, Callable[[BehavioralLeaf, LeafContext], tuple[bool, int | None]]]] = {
    "performed_event": _performed,
    "performed_event_multiple": _performed_multiple,
    "performed_event_first_time": _first_time,
    "performed_event_sequence": _sequence,
    "performed_event_regularly": _regularly,
    "stopped_performing_event": _stopped,
    "restarted_performing_event": _restarted,
}
