"""The parsed cohort definition: an immutable typed tree, built once at save by `cohorts.validate`.

Nothing downstream of validation touches raw filter dicts. Every node is a frozen dataclass, so
trees are hashable and safe to share between cohorts.

Condition identity (design §5): a leaf's `condition_hash` covers everything that defines it
except `negation`, so `A` and `NOT A` share one piece of per-person state. A behavioural leaf's
`matcher_hash` covers only what decides whether one event matches (event name and event
filters): every leaf with the same matcher can be fed from the same per-person buckets.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeAlias

import orjson

__all__ = [
    "BehavioralLeaf",
    "CohortDefinition",
    "CohortLeaf",
    "EventFilter",
    "Group",
    "Leaf",
    "Node",
    "PersonLeaf",
    "iter_leaves",
    "referenced_cohort_ids",
    "stable_hash",
]

JsonValue: TypeAlias = Any


def stable_hash(payload: object) -> str:
    """First 16 hex chars of SHA-256 over canonical JSON (sorted keys), as PostHog's conditionHash."""
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class PersonLeaf:
    """A person-property condition: `properties[key] <operator> value`.

    List values are stored as tuples so the leaf stays hashable.
    """

    key: str
    operator: str
    value: JsonValue = None
    negation: bool = False
    type: Literal["person"] = "person"

    @property
    def condition_hash(self) -> str:
        return stable_hash(["person", self.key, self.operator, self.value])


@dataclass(frozen=True, slots=True)
class CohortLeaf:
    """Membership of another cohort of the same project (dynamic or static)."""

    cohort_id: int
    negation: bool = False
    type: Literal["cohort"] = "cohort"

    @property
    def condition_hash(self) -> str:
        return stable_hash(["cohort", self.cohort_id])


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A filter on one event property; same operators and value rules as a person leaf."""

    key: str
    operator: str
    value: JsonValue = None


@dataclass(frozen=True, slots=True)
class BehavioralLeaf:
    """A condition on the person's events (design §4). Window fields mirror PostHog's names.

    Either (`time_value`, `time_interval`) or `explicit_datetime` (absolute ISO or relative like
    `-30d`, with optional `explicit_datetime_to`) defines the main window; validation guarantees
    that each kind has the attributes it needs (`cohorts.vocab.BEHAVIORAL_KINDS`).
    """

    kind: str
    event: str
    event_filters: tuple[EventFilter, ...] = ()
    time_value: int | None = None
    time_interval: str | None = None
    explicit_datetime: str | None = None
    explicit_datetime_to: str | None = None
    operator: str | None = None
    operator_value: int | None = None
    seq_event: str | None = None
    seq_time_value: int | None = None
    seq_time_interval: str | None = None
    total_periods: int | None = None
    min_periods: int | None = None
    negation: bool = False
    type: Literal["behavioral"] = "behavioral"

    _condition_hash: str = field(init=False, repr=False, compare=False)
    _matcher_hash: str = field(init=False, repr=False, compare=False)
    _seq_matcher_hash: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Hash once at construction: the fold asks for these on every event (design §5)."""
        filters = [asdict(f) for f in self.event_filters]
        defining = {f.name: getattr(self, f.name) for f in fields(self) if f.init and f.name != "negation"}
        defining["event_filters"] = filters
        object.__setattr__(self, "_condition_hash", stable_hash(["behavioral", defining]))
        object.__setattr__(self, "_matcher_hash", stable_hash(["matcher", self.event, filters]))
        seq_hash = None if self.seq_event is None else stable_hash(["matcher", self.seq_event, []])
        object.__setattr__(self, "_seq_matcher_hash", seq_hash)

    @property
    def condition_hash(self) -> str:
        return self._condition_hash

    @property
    def matcher_hash(self) -> str:
        """Identity of the event stream this leaf counts: name plus event filters."""
        return self._matcher_hash

    @property
    def seq_matcher_hash(self) -> str | None:
        """Identity of the sequence's second step: `seq_event` by name only (design §4.1)."""
        return self._seq_matcher_hash


Leaf: TypeAlias = PersonLeaf | CohortLeaf | BehavioralLeaf


@dataclass(frozen=True, slots=True)
class Group:
    """`AND`/`OR` over members; an empty AND is true, an empty OR is false."""

    type: Literal["AND", "OR"]
    values: tuple[Node, ...] = ()


Node: TypeAlias = Group | Leaf


@dataclass(frozen=True, slots=True)
class CohortDefinition:
    """What the worker needs of one cohort: the catalog record, parsed (design §3 `cohort_catalog`).

    `root` is None for static cohorts and for dynamic cohorts without criteria (nobody matches).
    `version` grows with every definition change; flips carry it.
    """

    id: int
    team_id: int
    version: int
    is_static: bool = False
    deleted: bool = False
    root: Group | None = None
    name: str | None = None
    filters: dict[str, Any] = field(default_factory=dict, compare=False)


def iter_leaves(node: Node | None):
    """Yield every leaf under `node`, depth first."""
    if node is None:
        return
    if isinstance(node, Group):
        for child in node.values:
            yield from iter_leaves(child)
    else:
        yield node


def referenced_cohort_ids(node: Node | None) -> set[int]:
    """Ids of the cohorts a definition refers to directly."""
    return {leaf.cohort_id for leaf in iter_leaves(node) if isinstance(leaf, CohortLeaf)}
