"""The sweeps of stopped/restarted and the bucketed leaves against a brute-force count per instant.

A value can only change where an activity interval starts or ends, so the oracle evaluates the
condition directly at now and at every such boundary after it, in order: the first boundary with
another value is the deadline (none: no deadline). The sweeps must give exactly that.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cohorts.evaluate import _restarted_sweep, _stopped_sweep, prepare_leaf
from cohorts.model import BehavioralLeaf
from tests.unit.cohorts.eval_helpers import DAY_US, HOUR_US, MINUTE_US

BASE_US = 19_732 * DAY_US  # 2024-01-10
UNITS = st.sampled_from([MINUTE_US, HOUR_US, DAY_US])


def _window(draw: st.DrawFn, now_us: int) -> tuple[dict[int, int], int, int]:
    bucket_us = draw(UNITS)
    newest = now_us // bucket_us
    buckets = draw(st.dictionaries(st.integers(newest - 40, newest + 3), st.integers(0, 3), max_size=4))
    return buckets, bucket_us, draw(st.integers(0, 35))


@st.composite
def cases(draw: st.DrawFn) -> tuple[tuple, int, int]:
    now_us = BASE_US + draw(st.integers(-3 * DAY_US, 3 * DAY_US))
    long_window, recent_window = _window(draw, now_us), _window(draw, now_us)
    if draw(st.booleans()) and long_window[1] == recent_window[1]:
        recent_window = (long_window[0], recent_window[1], recent_window[2])  # one matcher, as in the worker
    first_us = now_us + draw(st.integers(-60 * DAY_US, DAY_US))
    return (long_window, recent_window), first_us, now_us


def _spans(window: tuple[dict[int, int], int, int]) -> list[tuple[int, int, int]]:
    """[low, leave) intervals with weights: bucket b counts while start(b) <= t < start(b + span + 1)."""
    buckets, bucket_us, span = window
    return [(b * bucket_us, (b + span + 1) * bucket_us, c) for b, c in buckets.items() if c]


def _overlap(windows: tuple) -> list[tuple[int, int, int]]:
    """Events in both windows: the finer bucket's interval within its coarser bucket's."""
    fine, coarse = (windows[1], windows[0]) if windows[1][1] <= windows[0][1] else (windows[0], windows[1])
    found = []
    for low, leave, weight in _spans(fine):
        coarse_low = low // coarse[1] * coarse[1]
        start, end = max(low, coarse_low), min(leave, coarse_low + (coarse[2] + 1) * coarse[1])
        if start < end:
            found.append((start, end, weight))
    return found


def _count(spans: list[tuple[int, int, int]], t: int) -> int:
    return sum(w for low, leave, w in spans if low <= t < leave)


def _oracle(value_at, boundaries: set[int], now_us: int) -> tuple[bool, int | None]:
    value = value_at(now_us)
    for t in sorted(b for b in boundaries if b > now_us):
        if value_at(t) != value:
            return value, t
    return value, None


@settings(max_examples=1500, deadline=None)
@given(cases())
def test_stopped_is_the_first_boundary_where_its_value_changes(case):
    windows, _, now_us = case
    long, recent = _spans(windows[0]), _spans(windows[1])

    def value_at(t: int) -> bool:
        return _count(long, t) >= 1 and _count(recent, t) == 0

    boundaries = {edge for low, leave, _ in long + recent for edge in (low, leave)}
    assert _stopped_sweep(windows, now_us) == _oracle(value_at, boundaries, now_us)


@settings(max_examples=1500, deadline=None)
@given(cases())
def test_restarted_is_the_first_boundary_where_its_value_changes(case):
    windows, first_us, now_us = case
    long, recent, overlap = _spans(windows[0]), _spans(windows[1]), _overlap(windows)
    long_us, long_span = windows[0][1], windows[0][2]
    before_from = (first_us // long_us + long_span + 1) * long_us

    def value_at(t: int) -> bool:
        return _count(recent, t) >= 1 and _count(long, t) - _count(overlap, t) == 0 and t >= before_from

    boundaries = {edge for low, leave, _ in long + recent + overlap for edge in (low, leave)} | {before_from}
    assert _restarted_sweep(windows, first_us, now_us) == _oracle(value_at, boundaries, now_us)


class _Facts:
    def __init__(self, buckets: dict[int, int], first_us: int | None) -> None:
        self.properties: dict = {}
        self._buckets, self._first_us = buckets, first_us

    def buckets(self, matcher_hash: str, granularity: str) -> dict[int, int]:
        return self._buckets

    def first_seen_us(self, matcher_hash: str) -> int | None:
        return self._first_us


class _Context:
    def __init__(self, facts: _Facts, now_us: int) -> None:
        self.facts, self.now_us = facts, now_us


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["performed_event", "performed_event_multiple", "performed_event_first_time"]),
    st.sampled_from(["gte", "gt", "lte", "lt", "eq", None]),
    st.integers(0, 3),
    st.sampled_from([(1, "minute"), (90, "minute"), (2, "hour"), (1, "day"), (7, "day"), (2, "week")]),
    st.integers(-3 * DAY_US, 3 * DAY_US),
    st.data(),
)
def test_bucketed_leaves_are_the_first_boundary_where_their_value_changes(
    kind, operator, operand, window, offset_us, data
):
    """Scenario: performed, performed-multiple and first-time leaves over "the last N units", with
    buckets before, in and after now's (and counts of 0), checked as the sweeps are."""
    time_value, time_interval = window
    leaf = BehavioralLeaf(
        kind=kind,
        event="a",
        time_value=time_value,
        time_interval=time_interval,
        operator=operator,
        operator_value=operand,
    )
    now_us = BASE_US + offset_us
    bucket_us = MINUTE_US if time_interval in ("minute", "hour") else DAY_US
    span = time_value * {"minute": 1, "hour": 60, "day": 1, "week": 7}[time_interval]
    newest = now_us // bucket_us
    buckets = data.draw(st.dictionaries(st.integers(newest - span - 3, newest + 3), st.integers(0, 3), max_size=4))
    first_us = data.draw(st.none() | st.integers((newest - span - 3) * bucket_us, (newest + 3) * bucket_us))
    if kind == "performed_event_first_time":
        buckets = {} if first_us is None else {first_us // bucket_us: 1}
    spans = _spans((buckets, bucket_us, span))
    value = operand if operand is not None else 1
    tests = {"gte": value.__le__, "gt": value.__lt__, "lte": value.__ge__, "lt": value.__gt__}
    test = (lambda n: n >= 1) if kind != "performed_event_multiple" else tests.get(operator or "", value.__eq__)

    def value_at(t: int) -> bool:
        return test(_count(spans, t))

    boundaries = {edge for low, leave, _ in spans for edge in (low, leave)}
    expected = _oracle(value_at, boundaries, now_us)
    assert prepare_leaf(leaf)(_Context(_Facts(buckets, first_us), now_us)) == expected
