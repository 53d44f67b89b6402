"""Hypothesis strategies for random definitions, event histories and instants near window edges.

Timestamps are drawn near the boundaries the evaluator must get right: bucket starts (minute and
day), exact unit multiples from now, and the microseconds either side of them.
"""

from __future__ import annotations

from hypothesis import strategies as st

from cohorts.model import BehavioralLeaf, CohortLeaf, EventFilter, Group, PersonLeaf
from cohorts.reference import RawEvent

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

#: 2024-01-10T00:00:00Z, a Wednesday; every drawn now lies within a day or so of it.
BASE_US = 1_704_844_800_000_000

UNITS = ("minute", "hour", "day", "week", "month", "year")
SMALL_UNITS = ("minute", "hour", "day", "week")
EVENTS = ("a", "b")
COUNT_OPERATORS = (None, "gte", "gt", "lte", "lt", "eq", "exact")

nows = st.one_of(
    st.integers(BASE_US, BASE_US + 2 * DAY_US),
    st.sampled_from([BASE_US, BASE_US - 1, BASE_US + DAY_US - 1, BASE_US + MINUTE_US, BASE_US + 59 * 60_000_000]),
    st.integers(0, 2 * 24 * 60).map(lambda minutes: BASE_US + minutes * MINUTE_US + 59_999_999),
)


@st.composite
def timestamps(draw: st.DrawFn, now_us: int) -> int:
    """An instant near an edge the windows care about, mostly before now, sometimes after."""
    anchor = draw(
        st.sampled_from(
            [now_us, now_us // MINUTE_US * MINUTE_US, now_us // DAY_US * DAY_US, (now_us // DAY_US + 1) * DAY_US]
        )
    )
    step = draw(st.sampled_from([MINUTE_US, HOUR_US, DAY_US, 7 * DAY_US, 30 * DAY_US]))
    multiple = draw(st.integers(-6, 1))
    jitter = draw(st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-DAY_US, DAY_US)))
    return anchor + multiple * step + jitter


@st.composite
def event_lists(draw: st.DrawFn, now_us: int, person_ids: list[str], team_id: int = 1) -> list[RawEvent]:
    count = draw(st.integers(0, 12))
    events = []
    for _ in range(count):
        events.append(
            RawEvent(
                team_id=team_id,
                person_id=draw(st.sampled_from(person_ids)),
                event=draw(st.sampled_from(EVENTS)),
                timestamp_us=draw(timestamps(now_us)),
                properties=draw(st.sampled_from([{}, {"browser": "Chrome"}, {"browser": "Safari"}, {"n": 3}])),
            )
        )
    return events


event_filters = st.sampled_from(
    [(), (EventFilter("browser", "exact", "Chrome"),), (EventFilter("browser", "is_not", "Chrome"),)]
)

relative_dates = st.builds(
    lambda amount, suffix: f"-{amount}{suffix}", st.integers(0, 3), st.sampled_from(["h", "d", "w"])
)


@st.composite
def behavioral_leaves(draw: st.DrawFn) -> BehavioralLeaf:
    kind = draw(
        st.sampled_from(
            [
                "performed_event",
                "performed_event_multiple",
                "performed_event_first_time",
                "performed_event_sequence",
                "performed_event_regularly",
                "stopped_performing_event",
                "restarted_performing_event",
            ]
        )
    )
    event = draw(st.sampled_from(EVENTS))
    filters = draw(event_filters)
    negation = draw(st.booleans())
    time_value = draw(st.integers(0, 3))
    time_interval = draw(st.sampled_from(UNITS))
    common = {"kind": kind, "event": event, "event_filters": filters, "negation": negation}
    if kind in ("performed_event", "performed_event_multiple") and draw(st.integers(0, 2)) == 0:
        start = draw(st.one_of(relative_dates, st.sampled_from(["2024-01-08", "2024-01-09T12:00:00Z"])))
        end = draw(st.one_of(st.none(), relative_dates, st.sampled_from(["2024-01-10T12:00:00Z", "2024-01-11"])))
        window = {"explicit_datetime": start, "explicit_datetime_to": end}
    else:
        window = {"time_value": time_value, "time_interval": time_interval}
    if kind == "performed_event_multiple":
        return BehavioralLeaf(
            **common,
            **window,
            operator=draw(st.sampled_from(COUNT_OPERATORS)),
            operator_value=draw(st.integers(0, 3)),
        )
    if kind == "performed_event_sequence":
        return BehavioralLeaf(
            **common,
            time_value=time_value,
            time_interval=time_interval,
            seq_event=draw(st.sampled_from(EVENTS)),
            seq_time_value=draw(st.integers(0, 3)),
            seq_time_interval=draw(st.sampled_from(SMALL_UNITS)),
        )
    if kind == "performed_event_regularly":
        total = draw(st.integers(1, 4))
        return BehavioralLeaf(
            **common,
            time_value=draw(st.integers(1, 3)),
            time_interval=draw(st.sampled_from(SMALL_UNITS)),
            total_periods=total,
            min_periods=draw(st.integers(0, total)),
            operator_value=draw(st.one_of(st.none(), st.integers(1, 2))),
        )
    if kind in ("stopped_performing_event", "restarted_performing_event"):
        return BehavioralLeaf(
            **common,
            time_value=time_value,
            time_interval=time_interval,
            seq_time_value=draw(st.integers(0, 3)),
            seq_time_interval=draw(st.sampled_from(UNITS)),
        )
    return BehavioralLeaf(**common, **window)


person_leaves = st.one_of(
    st.builds(
        PersonLeaf,
        key=st.just("plan"),
        operator=st.sampled_from(["exact", "is_not", "icontains", "not_icontains", "regex", "is_set", "is_not_set"]),
        value=st.sampled_from(["pro", "free", ("pro", "team"), "^p"]),
        negation=st.booleans(),
    ),
    st.builds(
        PersonLeaf,
        key=st.just("age"),
        operator=st.sampled_from(["gt", "lte", "between", "not_between"]),
        value=st.sampled_from([30, "30", (18, 40)]),
        negation=st.booleans(),
    ),
    st.builds(
        PersonLeaf,
        key=st.just("signup"),
        operator=st.sampled_from(["is_date_before", "is_date_after", "is_date_exact"]),
        value=st.one_of(relative_dates, st.just("2024-01-09")),
        negation=st.booleans(),
    ),
)

person_properties = st.fixed_dictionaries(
    {},
    optional={
        "plan": st.sampled_from(["pro", "Free", "team", None]),
        "age": st.sampled_from([30, 30.0, "41", 17, "x", None]),
        "signup": st.sampled_from(
            ["2024-01-09T00:00:00Z", "2024-01-08 23:59:59.999999", "2024-01-09T10:30:00Z", "2023-12-31", "soon"]
        ),
    },
)


def trees(cohort_ids: tuple[int, ...] = ()) -> st.SearchStrategy[Group]:
    """A root group of up to two levels; cohort leaves only refer to `cohort_ids`."""
    leaves = [behavioral_leaves(), behavioral_leaves(), person_leaves]
    if cohort_ids:
        leaves.append(st.builds(CohortLeaf, cohort_id=st.sampled_from(cohort_ids), negation=st.booleans()))
    leaf = st.one_of(*leaves)
    inner = st.builds(Group, type=st.sampled_from(["AND", "OR"]), values=st.lists(leaf, max_size=3).map(tuple))
    return st.builds(
        Group,
        type=st.sampled_from(["AND", "OR"]),
        values=st.lists(st.one_of(leaf, inner), max_size=3).map(tuple),
    )
