"""Compiled evaluation plans: a team's cohorts prepared once for the worker's hot path.

`TeamPlan(definitions)` turns definitions into closures that give what `cohorts.evaluate.evaluate`
gives (membership and next deadline), faster:

- leaves equal across cohorts (same fields, negation aside) are prepared once
  (`cohorts.evaluate.prepare_leaf`: operators, windows and comparisons resolved up front), and a
  `PlanRun` computes each of them at most once per person and instant, whichever cohorts share it;
- a group computes its value and its deadline in one pass over its members; single-member groups
  disappear; members are tried cheapest first (person and cohort leaves before behavioural ones);
- a cohort made of behavioural leaves only, for a person none of whose matchers ever matched, is
  answered by its result for "no history", computed once (it cannot depend on `now`).

Why this is exact: leaf results depend only on (facts, now), never on the cohort. A group's value
is an AND/OR and its deadline a min or max over members (`evaluate`'s rules), so neither depends on
member order. An AND is false with no deadline as soon as one false member has none (the latest of
the false members' deadlines is then "never"), which is where the pass stops; OR is the dual. A
single-member group has its member's value and deadline under both rules. Cohort leaves are not
shared: they read the memberships of the run, which the caller updates between cohorts.

Never reads a clock, a store or Kafka. `tests/unit/cohorts/test_plan.py` checks it against
`evaluate` on random trees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from cohorts.evaluate import LeafResult, PersonFacts, prepare_leaf
from cohorts.model import BehavioralLeaf, CohortDefinition, CohortLeaf, Group, Node, PersonLeaf, iter_leaves
from cohorts.vocab import DATE_OPERATORS

__all__ = ["Memberships", "PlanRun", "TeamPlan"]


class Memberships(Protocol):
    """The person's bits as cohort leaves read them: `get(cohort_id, False)` (a Mapping will do)."""

    def get(self, cohort_id: int, default: Any = ..., /) -> Any: ...


#: A compiled node: (membership or leaf value with its negation applied, deadline).
_Compiled = Callable[["PlanRun"], LeafResult]


class PlanRun:
    """One person at one instant: evaluates cohorts of the plan, each shared leaf at most once.

    `memberships` is read by cohort leaves when they are evaluated, so a caller evaluating in
    dependency order can record each result in it before evaluating the cohorts that refer to it.
    """

    __slots__ = ("_cohorts", "cache", "facts", "memberships", "now_us")

    def __init__(
        self,
        cohorts: Mapping[int, _Compiled],
        leaves: int,
        facts: PersonFacts,
        now_us: int,
        memberships: Memberships,
    ) -> None:
        self._cohorts = cohorts
        self.cache: list[LeafResult | None] = [None] * leaves
        self.facts = facts
        self.now_us = now_us
        self.memberships = memberships

    def evaluate(self, cohort_id: int) -> LeafResult:
        """(member, next deadline) of a cohort of the plan, as `cohorts.evaluate.evaluate` says."""
        return self._cohorts[cohort_id](self)


class TeamPlan:
    """The compiled form of some cohort definitions (a team's live ones, in the worker)."""

    __slots__ = ("_cohorts", "_leaves")

    def __init__(self, definitions: Iterable[CohortDefinition]) -> None:
        self._leaves: dict[object, int] = {}
        self._cohorts: dict[int, _Compiled] = {d.id: self._cohort(d) for d in definitions}

    def __contains__(self, cohort_id: object) -> bool:
        return cohort_id in self._cohorts

    @property
    def leaf_count(self) -> int:
        """Distinct leaves prepared (equal leaves of different cohorts count once)."""
        return len(self._leaves)

    def run(self, facts: PersonFacts, now_us: int, memberships: Memberships) -> PlanRun:
        return PlanRun(self._cohorts, len(self._leaves), facts, now_us, memberships)

    # --- compiling ----------------------------------------------------------------------------

    def _cohort(self, definition: CohortDefinition) -> _Compiled:
        if definition.deleted or (not definition.is_static and definition.root is None):
            return _nobody
        if definition.is_static:
            cohort_id = definition.id

            def static(run: PlanRun) -> LeafResult:
                return run.facts.is_static_member(cohort_id), None

            return static
        assert definition.root is not None
        compiled = self._node(definition.root)
        reads = _behavioural_matchers(definition.root)
        if not reads:
            return compiled
        return _unless_no_history(compiled, reads, compiled(PlanRun({}, len(self._leaves), _NO_HISTORY, 0, {})))

    def _node(self, node: Node) -> _Compiled:
        if isinstance(node, Group):
            members = [self._node(child) for _, child in sorted(enumerate(node.values), key=_cost)]
            if len(members) == 1:
                return members[0]
            return _and(members) if node.type == "AND" else _or(members)
        if isinstance(node, CohortLeaf):
            return _cohort_leaf(node.cohort_id, node.negation)
        if isinstance(node, PersonLeaf | BehavioralLeaf):
            shared = replace(node, negation=False) if node.negation else node
            try:
                index = self._leaves.setdefault(shared, len(self._leaves))
            except TypeError:  # an unhashable value (not from validation): prepared on its own
                index = self._leaves.setdefault(object(), len(self._leaves))  # type: ignore[arg-type]
            return _shared_leaf(index, prepare_leaf(shared), node.negation)
        return _constant(bool(getattr(node, "negation", False)))  # as evaluate: an unknown leaf is false


def _behavioural_matchers(root: Node) -> tuple[str, ...]:
    """The matchers a cohort made of behavioural leaves only reads; () if it has any other leaf."""
    found: list[str] = []
    for leaf in iter_leaves(root):
        if not isinstance(leaf, BehavioralLeaf):
            return ()
        found.append(leaf.matcher_hash)
        if leaf.seq_matcher_hash is not None:
            found.append(leaf.seq_matcher_hash)
    return tuple(dict.fromkeys(found))


class _NoHistory:
    """A person nothing is known about: no properties, no matching event ever, no static cohort."""

    properties: Mapping[str, Any] = {}

    def buckets(self, matcher_hash: str, granularity: str) -> Mapping[int, int]:
        return {}

    def first_seen_us(self, matcher_hash: str) -> int | None:
        return None

    def timestamps_us(self, matcher_hash: str) -> tuple[int, ...]:
        return ()

    def is_static_member(self, cohort_id: int) -> bool:
        return False


_NO_HISTORY: Final = _NoHistory()


def _unless_no_history(compiled: _Compiled, reads: tuple[str, ...], empty: LeafResult) -> _Compiled:
    """A behavioural-only cohort of a person none of whose matchers ever matched: `empty`.

    With no event, every window counts zero at every instant, so such a cohort has one result and
    no deadline whatever `now` is; it was computed once, at compile time. A matcher has history
    exactly when its first-seen time is set (kept for as long as any of its state is).
    """

    def shortcut(run: PlanRun) -> LeafResult:
        first_seen_us = run.facts.first_seen_us
        for matcher_hash in reads:
            if first_seen_us(matcher_hash) is not None:
                return compiled(run)
        return empty

    return shortcut


def _cost(indexed: tuple[int, Node]) -> tuple[int, int]:
    """Cheapest members first, original order among equals (stable and deterministic)."""
    position, node = indexed
    if isinstance(node, CohortLeaf) or (isinstance(node, PersonLeaf) and node.operator not in DATE_OPERATORS):
        return 0, position
    if isinstance(node, PersonLeaf):
        return 1, position
    if isinstance(node, BehavioralLeaf):
        return 2, position
    return 3, position


def _nobody(_run: PlanRun) -> LeafResult:
    return False, None


def _constant(value: bool) -> _Compiled:
    def constant(_run: PlanRun) -> LeafResult:
        return value, None

    return constant


def _cohort_leaf(cohort_id: int, negation: bool) -> _Compiled:
    def cohort_leaf(run: PlanRun) -> LeafResult:
        return run.memberships.get(cohort_id, False) != negation, None

    return cohort_leaf


def _shared_leaf(index: int, prepared: Callable[[Any], LeafResult], negation: bool) -> _Compiled:
    if negation:

        def negated(run: PlanRun) -> LeafResult:
            cache = run.cache
            found = cache[index]
            if found is None:
                found = cache[index] = prepared(run)
            return not found[0], found[1]

        return negated

    def leaf(run: PlanRun) -> LeafResult:
        cache = run.cache
        found = cache[index]
        if found is None:
            found = cache[index] = prepared(run)
        return found

    return leaf


def _and(members: list[_Compiled]) -> _Compiled:
    """True: the earliest member deadline. False: the latest false member's, None if one has none."""

    def conjunction(run: PlanRun) -> LeafResult:
        earliest: int | None = None
        latest: int | None = None
        false = False
        for member in members:
            value, deadline = member(run)
            if value:
                if not false and deadline is not None and (earliest is None or deadline < earliest):
                    earliest = deadline
            else:
                if deadline is None:
                    return False, None
                false = True
                if latest is None or deadline > latest:
                    latest = deadline
        return (False, latest) if false else (True, earliest)

    return conjunction


def _or(members: list[_Compiled]) -> _Compiled:
    """False: the earliest member deadline. True: the latest true member's, None if one has none."""

    def disjunction(run: PlanRun) -> LeafResult:
        earliest: int | None = None
        latest: int | None = None
        true = False
        for member in members:
            value, deadline = member(run)
            if value:
                if deadline is None:
                    return True, None
                true = True
                if latest is None or deadline > latest:
                    latest = deadline
            elif not true and deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return (True, latest) if true else (False, earliest)

    return disjunction
