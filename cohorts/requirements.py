"""What per-person state the worker must keep so `cohorts.evaluate` can answer every live cohort.

Design §5: state is per matcher (event name + event filters), shared by every leaf and cohort that
counts the same events. For each matcher this module says:
- which bucket granularities to keep and how far back: `granularities[g] = n` means buckets
  `bucket(now) - n` up to any later bucket must be kept (future buckets are always kept);
- whether timestamps are needed (sequences, explicit windows) and from when: keep every timestamp
  `>= timestamp_cutoff_us(now)`;
- first-seen times are cheap (one int per matcher) and are always kept: first_time and restarted
  read them.

Sequences also need their second step, `seq_event` matched by name only (design §4.1), which is a
matcher of its own (`BehavioralLeaf.seq_matcher_hash`, the hash of that name with no filters).
This module only reads definitions; it never sees events or persons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cohorts.dates import DateValueError, relative_seconds
from cohorts.model import BehavioralLeaf, CohortDefinition, EventFilter, iter_leaves
from cohorts.timebase import BUCKET_US, resolve_date_us, span_buckets

__all__ = ["MatcherRequirement", "matchers_by_event", "state_requirements"]


@dataclass(frozen=True)
class MatcherRequirement:
    """The state one matcher needs, merged over every leaf that uses it."""

    matcher_hash: str
    event: str
    filters: tuple[EventFilter, ...]
    #: granularity -> how many buckets back from bucket(now) must be kept (max lookback).
    granularities: dict[str, int] = field(default_factory=dict)
    #: keep timestamps >= now - horizon (sliding windows: sequences, relative explicit starts).
    timestamps_horizon_us: int | None = None
    #: keep timestamps >= this instant (explicit windows with an absolute start).
    timestamps_since_us: int | None = None

    @property
    def needs_timestamps(self) -> bool:
        return self.timestamps_horizon_us is not None or self.timestamps_since_us is not None

    def timestamp_cutoff_us(self, now_us: int) -> int | None:
        """Oldest timestamp still needed at `now_us` (keep all `>=` it); None: keep no timestamps."""
        cutoffs = []
        if self.timestamps_horizon_us is not None:
            cutoffs.append(now_us - self.timestamps_horizon_us)
        if self.timestamps_since_us is not None:
            cutoffs.append(self.timestamps_since_us)
        return min(cutoffs) if cutoffs else None


class _Needs:
    """Mutable accumulator for one matcher while definitions are walked."""

    __slots__ = ("event", "filters", "granularities", "horizon_us", "matcher_hash", "since_us")

    def __init__(self, matcher_hash: str, event: str, filters: tuple[EventFilter, ...]) -> None:
        self.matcher_hash = matcher_hash
        self.event = event
        self.filters = filters
        self.granularities: dict[str, int] = {}
        self.horizon_us: int | None = None
        self.since_us: int | None = None

    def buckets(self, granularity: str, lookback: int) -> None:
        self.granularities[granularity] = max(self.granularities.get(granularity, 0), lookback)

    def window(self, time_value: int, time_interval: str) -> None:
        self.buckets(*span_buckets(time_value, time_interval))

    def horizon(self, horizon_us: int) -> None:
        self.horizon_us = horizon_us if self.horizon_us is None else max(self.horizon_us, horizon_us)

    def since(self, since_us: int) -> None:
        self.since_us = since_us if self.since_us is None else min(self.since_us, since_us)

    def frozen(self) -> MatcherRequirement:
        return MatcherRequirement(
            matcher_hash=self.matcher_hash,
            event=self.event,
            filters=self.filters,
            granularities=dict(self.granularities),
            timestamps_horizon_us=self.horizon_us,
            timestamps_since_us=self.since_us,
        )


def state_requirements(definitions: Iterable[CohortDefinition]) -> dict[str, MatcherRequirement]:
    """matcher_hash -> what to keep for it, over every live dynamic definition given."""
    needs: dict[str, _Needs] = {}

    def need(matcher_hash: str, event: str, filters: tuple[EventFilter, ...]) -> _Needs:
        found = needs.get(matcher_hash)
        if found is None:
            found = needs[matcher_hash] = _Needs(matcher_hash, event, filters)
        return found

    for definition in definitions:
        if definition.deleted or definition.is_static or definition.root is None:
            continue
        for leaf in iter_leaves(definition.root):
            if isinstance(leaf, BehavioralLeaf):
                main = need(leaf.matcher_hash, leaf.event, leaf.event_filters)
                _add_leaf(leaf, main, need)
    return {matcher_hash: found.frozen() for matcher_hash, found in needs.items()}


def matchers_by_event(requirements: Mapping[str, MatcherRequirement]) -> dict[str, list[MatcherRequirement]]:
    """event name -> candidate matchers; the caller checks each one's filters with `match_event`."""
    by_event: dict[str, list[MatcherRequirement]] = {}
    for requirement in requirements.values():
        by_event.setdefault(requirement.event, []).append(requirement)
    return by_event


def _add_leaf(leaf: BehavioralLeaf, main: _Needs, need: Callable[[str, str, tuple], _Needs]) -> None:
    kind = leaf.kind
    has_window = leaf.time_value is not None and leaf.time_interval is not None
    if kind in ("performed_event", "performed_event_multiple"):
        if leaf.explicit_datetime is not None:
            _explicit_timestamps(leaf, main)
        elif has_window:
            main.window(leaf.time_value, leaf.time_interval)
    elif kind == "performed_event_sequence":
        seq = None
        if leaf.seq_event is not None and leaf.seq_matcher_hash is not None:
            seq = need(leaf.seq_matcher_hash, leaf.seq_event, ())
        for target in (main, seq):
            if target is None:
                continue
            # t2 > t1 >= the window's first instant, so one cutoff serves both steps.
            if leaf.explicit_datetime is not None:
                _explicit_timestamps(leaf, target)
            elif has_window:
                granularity, span = span_buckets(leaf.time_value, leaf.time_interval)
                target.horizon((span + 1) * BUCKET_US[granularity])
    elif kind == "performed_event_regularly":
        if has_window and leaf.total_periods:
            granularity, length = span_buckets(leaf.time_value, leaf.time_interval)
            # the oldest period starts at B - total * L + 1
            main.buckets(granularity, leaf.total_periods * length - 1)
    elif kind in ("stopped_performing_event", "restarted_performing_event"):
        if has_window:
            main.window(leaf.time_value, leaf.time_interval)
        if leaf.seq_time_value is not None and leaf.seq_time_interval is not None:
            main.window(leaf.seq_time_value, leaf.seq_time_interval)
    # performed_event_first_time reads only first-seen, which is always kept.


def _explicit_timestamps(leaf: BehavioralLeaf, target: _Needs) -> None:
    text = leaf.explicit_datetime or ""
    seconds = relative_seconds(text)
    if seconds is not None:
        target.horizon(seconds * 1_000_000)
        return
    try:
        target.since(resolve_date_us(text, 0))
    except DateValueError:  # validation refuses it; an unparseable start matches nothing anyway
        return
