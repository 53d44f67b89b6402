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

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from cohorts.evaluate import LeafResult, PersonFacts, prepare_leaf
from cohorts.model import BehavioralLeaf, CohortDefinition, CohortLeaf, Group, Node, PersonLeaf, iter_leaves
from cohorts.vocab import DATE_OPERATORS

__all__ = ["Memberships", "PlanRun", "Step", "TeamPlan"]


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

    __slots__ = ("_cohorts", "cache", "facts", "memberships", "now_us", "seen")

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
        #: the matchers with history (`_seen_matchers`), found when a cohort first asks
        self.seen: Container[str] | bool | None = None

    def evaluate(self, cohort_id: int) -> LeafResult:
        """(member, next deadline) of a cohort of the plan, as `cohorts.evaluate.evaluate` says."""
        return self._cohorts[cohort_id](self)


#: One cohort of a plan, in the order the plan was given: (cohort id, definition version, compiled).
Step = tuple[int, int, _Compiled]


class TeamPlan:
    """The compiled form of some cohort definitions (a team's live ones, in the worker).

    `compiled[cohort_id](run)` is `run.evaluate(cohort_id)`, and `steps` lists (id, version,
    compiled) in the order given (the worker's is dependency order): a caller evaluating many
    cohorts calls each compiled cohort directly. `silent_without_history` are the behavioural-only
    cohorts whose result is (not a member, no deadline) for a person none of whose matchers ever
    matched, and `steps_with_history` the other steps: for such a person, a member of none of the
    silent cohorts, evaluating only those steps gives the same bits, deadlines and flips as
    evaluating all (a new person evaluates every cohort, and most behavioural ones are silent).
    """

    __slots__ = (
        "_cohorts",
        "_leaves",
        "_uses",
        "compiled",
        "memo",
        "silent_without_history",
        "steps",
        "steps_with_history",
    )

    def __init__(self, definitions: Iterable[CohortDefinition]) -> None:
        definitions = tuple(definitions)
        self._leaves: dict[object, int] = {}
        self._uses = _leaf_uses(definitions)
        silent: set[int] = set()
        self._cohorts: dict[int, _Compiled] = {d.id: self._cohort(d, silent) for d in definitions}
        cohorts = self.compiled = self._cohorts
        self.steps: tuple[Step, ...] = tuple((d.id, d.version, cohorts[d.id]) for d in definitions)
        self.silent_without_history: frozenset[int] = frozenset(silent)
        self.steps_with_history: tuple[Step, ...] = tuple(s for s in self.steps if s[0] not in silent)
        #: a caller's own memo of what it derives from these definitions (the worker's fold keeps
        #: its per-input lookups here); it goes when the plan is replaced, as the catalog changes
        self.memo: Any = None

    def __contains__(self, cohort_id: object) -> bool:
        return cohort_id in self._cohorts

    @property
    def leaf_count(self) -> int:
        """Distinct leaves prepared (equal leaves of different cohorts count once)."""
        return len(self._leaves)

    def run(self, facts: PersonFacts, now_us: int, memberships: Memberships) -> PlanRun:
        return PlanRun(self._cohorts, len(self._leaves), facts, now_us, memberships)

    # --- compiling ----------------------------------------------------------------------------

    def _cohort(self, definition: CohortDefinition, silent: set[int]) -> _Compiled:
        """The compiled cohort; its id goes into `silent` when it is (False, None) without history."""
        silent.discard(definition.id)
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
        empty = compiled(PlanRun({}, len(self._leaves), _NO_HISTORY, 0, {}))
        if empty == (False, None):
            silent.add(definition.id)
        return _unless_no_history(compiled, reads, empty)

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
                uses = self._uses.get(shared, 0)
            except TypeError:  # an unhashable value (not from validation): prepared on its own
                index = self._leaves.setdefault(object(), len(self._leaves))  # type: ignore[arg-type]
                uses = 1
            if uses <= 1:  # read once per run at most: nothing to share, so no cache to consult
                return _single_leaf(prepare_leaf(shared), node.negation)
            return _shared_leaf(index, prepare_leaf(shared), node.negation)
        return _constant(bool(getattr(node, "negation", False)))  # as evaluate: an unknown leaf is false


def _leaf_uses(definitions: Iterable[CohortDefinition]) -> dict[object, int]:
    """How many times each person or behavioural leaf (negation aside) occurs in the compiled
    cohorts: only a leaf occurring more than once needs the run's cache."""
    uses: dict[object, int] = {}
    for definition in definitions:
        if definition.deleted or definition.is_static or definition.root is None:
            continue
        for leaf in iter_leaves(definition.root):
            if isinstance(leaf, PersonLeaf | BehavioralLeaf):
                shared = replace(leaf, negation=False) if leaf.negation else leaf
                try:
                    uses[shared] = uses.get(shared, 0) + 1
                except TypeError:  # unhashable: `_node` prepares it on its own
                    continue
    return uses


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
        seen = run.seen
        if seen is None:
            seen = run.seen = _seen_matchers(run.facts)
        if seen is False:
            first_seen_us = run.facts.first_seen_us
            for matcher_hash in reads:
                if first_seen_us(matcher_hash) is not None:
                    return compiled(run)
            return empty
        for matcher_hash in reads:
            if matcher_hash in seen:
                return compiled(run)
        return empty

    return shortcut


def _seen_matchers(facts: PersonFacts) -> Container[str] | bool:
    """The matchers whose first-seen time is set, when the facts can list them (`seen_matchers()`,
    as `stream.state.record.RecordFacts` does): one pass per run instead of one call per matcher
    each time a cohort made of behavioural leaves is evaluated. False: ask `first_seen_us`."""
    listed = getattr(facts, "seen_matchers", None)
    return False if listed is None else listed()


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


def _single_leaf(prepared: Callable[[Any], LeafResult], negation: bool) -> _Compiled:
    if not negation:
        return prepared  # a prepared leaf takes the run as its context (facts, now_us)

    def negated(run: PlanRun) -> LeafResult:
        value, deadline = prepared(run)
        return not value, deadline

    return negated


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
