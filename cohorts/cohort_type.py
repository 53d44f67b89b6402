"""`cohort_type`: validating an explicit value and choosing the stored one (reference §2.9).

Validation follows PostHog's `CohortTypeValidationSerializer`: the required type comes from the
effective `is_static` / `query` / definition, with priority static < person_property <
behavioral < analytical, and a cohort leaf takes its referenced cohort's type, recursively.
The required type is never "realtime", so an explicit "realtime" always fails the match.

The stored value departs from PostHog (design §8): every computable dynamic cohort is
evaluated in real time here, so it is stored as "realtime".

Never looks anything up itself: callers pass `lookup(cohort_id) -> (is_static, root) | None`
over the cohorts of the same project.
"""

from __future__ import annotations

from collections.abc import Callable

from cohorts.model import BehavioralLeaf, CohortLeaf, Group, PersonLeaf, iter_leaves
from cohorts.validate import FilterError
from cohorts.vocab import ANALYTICAL_KINDS

__all__ = ["COHORT_TYPES", "CohortLookup", "required_cohort_type", "stored_cohort_type", "validate_cohort_type"]

COHORT_TYPES: tuple[str, ...] = ("static", "person_property", "behavioral", "realtime", "analytical")

_PRIORITY = {"static": 0, "person_property": 1, "behavioral": 2, "analytical": 3}
_INVALID = "Invalid cohort type for the given filters"

CohortLookup = Callable[[int], tuple[bool, Group | None] | None]


def required_cohort_type(*, is_static: bool, has_query: bool, root: Group | None, lookup: CohortLookup) -> str:
    """The type the definition demands; FilterError (attr "cohort_type") for structural problems:
    no criteria, a missing referenced cohort, or a circular reference."""
    return _required(is_static, has_query, root, lookup, frozenset())


def _required(
    is_static: bool, has_query: bool, root: Group | None, lookup: CohortLookup, visited: frozenset[int]
) -> str:
    if is_static:
        return "static"
    if has_query:
        return "analytical"
    leaves = list(iter_leaves(root))
    if not leaves:  # "Cannot determine type: no valid filters found"
        raise FilterError(_INVALID, attr="cohort_type")
    if any(isinstance(leaf, BehavioralLeaf) and leaf.kind in ANALYTICAL_KINDS for leaf in leaves):
        return "analytical"
    best = "static"
    for leaf in leaves:
        if isinstance(leaf, PersonLeaf):
            found = "person_property"
        elif isinstance(leaf, BehavioralLeaf):
            found = "behavioral"
        elif isinstance(leaf, CohortLeaf):
            found = _referenced(leaf.cohort_id, lookup, visited)
        else:  # a leaf type the rules do not know
            raise FilterError(_INVALID, attr="cohort_type")
        if _PRIORITY[found] > _PRIORITY[best]:
            best = found
    return best


def _referenced(cohort_id: int, lookup: CohortLookup, visited: frozenset[int]) -> str:
    if cohort_id in visited:  # "Circular cohort reference detected"
        raise FilterError(_INVALID, attr="cohort_type")
    found = lookup(cohort_id)
    if found is None:  # "Referenced cohort {id} not found"
        raise FilterError(_INVALID, attr="cohort_type")
    ref_static, ref_root = found
    return _required(ref_static, False, ref_root, lookup, visited | {cohort_id})


def validate_cohort_type(
    provided: object, *, is_static: bool, has_query: bool, root: Group | None, lookup: CohortLookup
) -> None:
    """Check an explicit `cohort_type` (only truthy values, as PostHog does)."""
    if not provided:
        return
    if provided not in COHORT_TYPES:
        raise FilterError(f'"{provided}" is not a valid choice.', attr="cohort_type")
    required = required_cohort_type(is_static=is_static, has_query=has_query, root=root, lookup=lookup)
    if provided != required:
        raise FilterError(
            f"Cohort type '{provided}' does not match the filters. Expected type: '{required}'",
            attr="cohort_type",
        )


def stored_cohort_type(*, is_static: bool, provided: str | None, root: Group | None) -> str | None:
    """The `cohort_type` to store (design §8).

    Static cohorts keep what passed validation. A dynamic cohort with criteria is computed in
    real time, so "realtime"; one without criteria keeps what was provided (PostHog leaves the
    type alone when `filters` is empty).
    """
    if is_static:
        return provided
    if root is not None and next(iter_leaves(root), None) is not None:
        return "realtime"
    return provided
