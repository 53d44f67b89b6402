"""The worker's in-memory catalog: every cohort definition, as the `cohort_catalog` topic says.

Every worker needs the whole catalog (a person's partition may hold any team), so each process
reads the single catalog partition from the beginning with its own group-less consumer
(`stream.agents.catalog`) and keeps following it. This module is the pure part: apply records,
answer "which cohorts does team T have, in dependency order, and which matchers do they need".

Invariants:
- Keys that are not integers are ignored: the api writes reservation records with other keys.
- A tombstone or `deleted: true` keeps the cohort as deleted (its team and last version stay known,
  so its members can be sent `left`).
- A record whose filters do not parse keeps the previous definition and records the error, which
  the next calculation report carries; it never stops the worker.

It never reads Kafka itself and never evaluates a person.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from cohorts.graph import dependents, evaluation_order
from cohorts.model import BehavioralLeaf, CohortDefinition, PersonLeaf, iter_leaves, referenced_cohort_ids
from cohorts.plan import TeamPlan
from cohorts.requirements import MatcherRequirement, matchers_by_event, state_requirements
from cohorts.validate import FilterError, definition_from_record
from cohorts.wire import CatalogRecord, WireError
from stream.posthog import INT64_MAX

__all__ = ["RESERVATION_PREFIX", "Catalog", "CatalogUpdate", "TeamCatalog", "parse_cohort_key", "read_record"]

#: Keys of the api's id reservations on the catalog topic (api/publisher.py), ignored here.
RESERVATION_PREFIX: Final = b"reserve:"

#: Distinct affected-sets whose candidates a team remembers before it starts over.
_CANDIDATES_CACHED: Final[int] = 4_096


@dataclass(frozen=True, slots=True)
class TeamCatalog:
    """One team's live cohorts, dependencies first, and the per-person state they need."""

    team_id: int
    ordered: tuple[CohortDefinition, ...] = ()
    requirements: Mapping[str, MatcherRequirement] = field(default_factory=dict)
    by_event: Mapping[str, Sequence[MatcherRequirement]] = field(default_factory=dict)
    #: Version of every cohort of the team ever seen, deleted ones included (for `left` flips).
    versions: Mapping[int, int] = field(default_factory=dict)
    #: matcher hash -> live cohorts with a behavioural leaf reading it (main or sequence step).
    cohorts_by_matcher: Mapping[str, frozenset[int]] = field(default_factory=dict)
    #: event name -> the event properties its matchers' filters read (ingest forwards only these).
    event_property_keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: live cohorts with a person-property leaf.
    person_cohorts: frozenset[int] = frozenset()
    #: person property key -> live cohorts with a leaf on that key.
    cohorts_by_property: Mapping[str, frozenset[int]] = field(default_factory=dict)
    #: live cohort -> the cohorts its definition refers to directly.
    references: Mapping[int, frozenset[int]] = field(default_factory=dict)
    #: live cohort -> every live cohort that refers to it, directly or through others.
    dependents: Mapping[int, frozenset[int]] = field(default_factory=dict)
    #: live cohort -> its index in `ordered`.
    position: Mapping[int, int] = field(default_factory=dict)
    #: `ordered`, compiled once (built with the team, so a catalog change replaces it).
    plan: TeamPlan = field(default_factory=lambda: TeamPlan(()))
    #: the keys of `position` as a set: a recalculation checks every person's member cohorts
    #: against it (`frozenset.issuperset` takes the record's flat list as it is).
    cohort_ids: frozenset[int] = field(init=False, compare=False, repr=False)

    #: candidates() answers by set of affected cohorts (inputs repeat a few combinations).
    _candidates: dict[frozenset[int], tuple[CohortDefinition, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "cohort_ids", frozenset(self.position))

    def candidates(self, affected: Iterable[int]) -> tuple[CohortDefinition, ...]:
        """`affected` and everything depending on them, in evaluation order (memoised, bounded)."""
        key = affected if isinstance(affected, frozenset) else frozenset(affected)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= _CANDIDATES_CACHED:
                self._candidates.clear()
            found = self._candidates[key] = self._candidates_of(key)
        return found

    def _candidates_of(self, affected: frozenset[int]) -> tuple[CohortDefinition, ...]:
        wanted: set[int] = set()
        for cohort_id in affected:
            if cohort_id in self.position:
                wanted.add(cohort_id)
                wanted |= self.dependents.get(cohort_id, frozenset())
        return tuple(self.ordered[i] for i in sorted(self.position[c] for c in wanted))

    def uses_event(self, event: str) -> bool:
        return event in self.by_event


@dataclass(frozen=True, slots=True)
class CatalogUpdate:
    """What one catalog record changed: None values mean the record was ignored."""

    cohort_id: int
    team_id: int | None
    version: int | None
    deleted: bool
    error: str | None = None


def parse_cohort_key(key: bytes | None) -> int | None:
    """The cohort id of a catalog key, or None for keys that are not non-negative 64-bit integers."""
    if not key or len(key) > 19:  # longer digit strings exceed int64 (and int() refuses 4,300+ digits)
        return None
    try:
        text = key.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.isdigit() or int(text) > INT64_MAX:
        return None
    return int(text)


def read_record(cohort_id: int, value: bytes) -> CatalogRecord:
    """The record under key `cohort_id`, or WireError when it is not one the api writes: decoded
    JSON gives any field any type, so the fields the worker reads are checked here."""
    record = CatalogRecord.from_bytes(value)
    if type(record.id) is not int or record.id != cohort_id:
        raise WireError(f"record id {record.id!r} under key {cohort_id}")
    for name in ("team_id", "version"):
        found = getattr(record, name)
        if type(found) is not int or not 0 <= found <= INT64_MAX:
            raise WireError(f"{name} must be a non-negative 64-bit integer, not {found!r}")
    for name in ("is_static", "deleted"):
        if type(getattr(record, name)) is not bool:
            raise WireError(f"{name} must be true or false")
    if not isinstance(record.filters, dict) or not (record.name is None or isinstance(record.name, str)):
        raise WireError("filters must be an object and name a string")
    return record


class Catalog:
    def __init__(self) -> None:
        self._cohorts: dict[int, CohortDefinition] = {}
        self._errors: dict[int, str] = {}
        self._teams: dict[int, TeamCatalog] = {}
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()
        self.offset = -1

    # --- applying records -------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> CatalogUpdate | None:
        """Apply one catalog record; returns what changed, or None for an ignored key."""
        self.offset = max(self.offset, offset)
        cohort_id = parse_cohort_key(key)
        if cohort_id is None:
            return None
        previous = self._cohorts.get(cohort_id)
        tombstone = value is None
        update = self._tombstone(cohort_id, previous) if tombstone else self._upsert(cohort_id, value, previous)
        for team_id in {update.team_id, previous.team_id if previous else None}:
            if team_id is not None:
                self._teams.pop(team_id, None)
        self._notify()
        return update

    def _tombstone(self, cohort_id: int, previous: CohortDefinition | None) -> CatalogUpdate:
        self._errors.pop(cohort_id, None)
        if previous is None:
            return CatalogUpdate(cohort_id, None, None, deleted=True)
        self._cohorts[cohort_id] = replace(previous, deleted=True)
        return CatalogUpdate(cohort_id, previous.team_id, previous.version, deleted=True)

    def _upsert(self, cohort_id: int, value: bytes, previous: CohortDefinition | None) -> CatalogUpdate:
        try:
            definition = definition_from_record(read_record(cohort_id, value))
        except (WireError, FilterError, ValueError) as exc:
            message = f"cohort {cohort_id}: unreadable definition: {exc}"
            self._errors[cohort_id] = message
            team_id = previous.team_id if previous else None
            version = previous.version if previous else None
            return CatalogUpdate(cohort_id, team_id, version, deleted=False, error=message)
        self._errors.pop(cohort_id, None)
        self._cohorts[cohort_id] = definition
        return CatalogUpdate(cohort_id, definition.team_id, definition.version, definition.deleted)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- reading ----------------------------------------------------------------------------

    def cohort(self, cohort_id: int) -> CohortDefinition | None:
        """The latest definition of a cohort, deleted ones included."""
        return self._cohorts.get(cohort_id)

    def error(self, cohort_id: int) -> str | None:
        return self._errors.get(cohort_id)

    def team(self, team_id: int) -> TeamCatalog:
        cached = self._teams.get(team_id)
        if cached is None:
            cached = self._teams[team_id] = self._build_team(team_id)
        return cached

    def _build_team(self, team_id: int) -> TeamCatalog:
        mine = {cid: d for cid, d in self._cohorts.items() if d.team_id == team_id}
        live = {cid: d for cid, d in mine.items() if not d.deleted}
        ordered = tuple(live[cid] for cid in evaluation_order(live))
        dynamic = [d for d in ordered if not d.is_static and d.root is not None]
        requirements = state_requirements(dynamic)
        by_matcher: dict[str, set[int]] = {}
        by_property: dict[str, set[int]] = {}
        person_cohorts: set[int] = set()
        for definition in dynamic:
            for leaf in iter_leaves(definition.root):
                if isinstance(leaf, BehavioralLeaf):
                    by_matcher.setdefault(leaf.matcher_hash, set()).add(definition.id)
                    if leaf.seq_matcher_hash is not None:
                        by_matcher.setdefault(leaf.seq_matcher_hash, set()).add(definition.id)
                elif isinstance(leaf, PersonLeaf):
                    person_cohorts.add(definition.id)
                    by_property.setdefault(leaf.key, set()).add(definition.id)
        return TeamCatalog(
            team_id=team_id,
            ordered=ordered,
            requirements=requirements,
            by_event=matchers_by_event(requirements),
            event_property_keys={
                event: frozenset(f.key for requirement in found for f in requirement.filters)
                for event, found in matchers_by_event(requirements).items()
            },
            versions={cid: d.version for cid, d in mine.items()},
            cohorts_by_matcher={h: frozenset(ids) for h, ids in by_matcher.items()},
            person_cohorts=frozenset(person_cohorts),
            cohorts_by_property={key: frozenset(ids) for key, ids in by_property.items()},
            references={d.id: frozenset(referenced_cohort_ids(d.root)) for d in ordered},
            dependents={cid: frozenset(dependents(cid, live)) for cid in live},
            position={d.id: i for i, d in enumerate(ordered)},
            plan=TeamPlan(ordered),
        )

    def has_caught_up(self, cohort_id: int, version: int | None) -> bool:
        """Whether this catalog reflects `version` of the cohort (None = its deletion) or later."""
        current = self._cohorts.get(cohort_id)
        if version is None:
            return current is None or current.deleted
        if current is not None and (current.version >= version or current.deleted):
            return True
        return cohort_id in self._errors

    async def wait_for(self, cohort_id: int, version: int | None, timeout_s: float) -> bool:
        """Wait until `has_caught_up`; False on timeout (the caller reports the error)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.has_caught_up(cohort_id, version):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.has_caught_up(cohort_id, version)
        return True
