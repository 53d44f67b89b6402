"""Test doubles for the evaluator: a PersonFacts built from raw events, and tree builders.

`RawFacts` keeps everything (all buckets at both granularities, every timestamp, exact first-seen),
so it is the "infinitely large" state the worker's pruned record must agree with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cohorts.model import BehavioralLeaf, CohortDefinition, Group, Node, iter_leaves
from cohorts.properties import match_event
from cohorts.reference import RawEvent
from cohorts.timebase import bucket_of

__all__ = ["RawFacts", "cohort", "facts_for"]

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US


@dataclass
class RawFacts:
    """PersonFacts over a full event history, indexed by matcher hash."""

    properties: Mapping[str, Any] = field(default_factory=dict)
    matched: dict[str, list[int]] = field(default_factory=dict)
    static: frozenset[int] = frozenset()
    _bucket_cache: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict, repr=False)

    def buckets(self, matcher_hash: str, granularity: str) -> Mapping[int, int]:
        cached = self._bucket_cache.get((matcher_hash, granularity))
        if cached is None:
            cached = {}
            for ts in self.matched.get(matcher_hash, ()):
                bucket = bucket_of(ts, granularity)
                cached[bucket] = cached.get(bucket, 0) + 1
            self._bucket_cache[(matcher_hash, granularity)] = cached
        return cached

    def first_seen_us(self, matcher_hash: str) -> int | None:
        stamps = self.matched.get(matcher_hash)
        return min(stamps) if stamps else None

    def timestamps_us(self, matcher_hash: str) -> Sequence[int]:
        return sorted(self.matched.get(matcher_hash, ()))

    def is_static_member(self, cohort_id: int) -> bool:
        return cohort_id in self.static


def _matchers(nodes: Iterable[Node]) -> dict[str, tuple[str, tuple, bool]]:
    """matcher hash -> (event, filters, name-only) for every behavioural leaf (and sequence step)."""
    found: dict[str, tuple[str, tuple, bool]] = {}
    for node in nodes:
        for leaf in iter_leaves(node):
            if isinstance(leaf, BehavioralLeaf):
                found[leaf.matcher_hash] = (leaf.event, leaf.event_filters, False)
                if leaf.seq_event is not None and leaf.seq_matcher_hash is not None:
                    found[leaf.seq_matcher_hash] = (leaf.seq_event, (), True)
    return found


def facts_for(
    nodes: Iterable[Node],
    events: Iterable[RawEvent | tuple[str, int] | tuple[str, int, dict]],
    properties: Mapping[str, Any] | None = None,
    static: Iterable[int] = (),
) -> RawFacts:
    """Facts of one person: `events` are RawEvents or (name, ts_us[, properties]) tuples."""
    matchers = _matchers(nodes)
    matched: dict[str, list[int]] = {}
    for item in events:
        if isinstance(item, RawEvent):
            name, ts, props = item.event, item.timestamp_us, item.properties
        else:
            name, ts = item[0], item[1]
            props = item[2] if len(item) > 2 else {}
        for matcher_hash, (event, filters, _name_only) in matchers.items():
            if event == name and match_event(filters, props, ts):
                matched.setdefault(matcher_hash, []).append(ts)
    return RawFacts(properties=dict(properties or {}), matched=matched, static=frozenset(static))


def cohort(root: Group | Node | None, cohort_id: int = 1, team_id: int = 1, **kwargs: Any) -> CohortDefinition:
    """A dynamic cohort definition around `root` (a bare leaf is wrapped in an AND)."""
    if root is not None and not isinstance(root, Group):
        root = Group("AND", (root,))
    return CohortDefinition(id=cohort_id, team_id=team_id, version=1, root=root, **kwargs)
