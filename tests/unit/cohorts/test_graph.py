"""The cohort reference graph (cohorts.graph): loops, unknown ids, evaluation order, dependents."""

from __future__ import annotations

from typing import Any

import pytest

from cohorts.graph import creates_loop, criteria_users, dependents, evaluation_order, unknown_references
from cohorts.model import CohortDefinition, Group
from cohorts.validate import normalise_filters, parse_filters


def _refs(*ids: int, kind: str = "AND") -> dict[str, Any]:
    values: list[dict[str, Any]] = [{"type": "cohort", "key": "id", "value": i} for i in ids]
    if not values:
        values = [{"type": "person", "key": "email", "operator": "is_set"}]
    return {"properties": {"type": kind, "values": values}}


def _root(*ids: int) -> Group | None:
    return parse_filters(_refs(*ids))


def _definition(cohort_id: int, *refs: int, is_static: bool = False, deleted: bool = False) -> CohortDefinition:
    filters = normalise_filters(_refs(*refs))
    return CohortDefinition(
        id=cohort_id,
        team_id=1,
        version=1,
        is_static=is_static,
        deleted=deleted,
        root=None if is_static else parse_filters(filters),
        filters=filters,
    )


def _defs(*definitions: CohortDefinition) -> dict[int, CohortDefinition]:
    return {d.id: d for d in definitions}


# --- creates_loop -----------------------------------------------------------------------------


def test_self_reference_is_a_loop() -> None:
    assert creates_loop(1, _root(1), lambda _id: None) is True


def test_self_reference_inside_nested_groups_is_a_loop() -> None:
    filters = {"properties": {"type": "OR", "values": [{"type": "AND", "values": _refs(2, 1)["properties"]["values"]}]}}
    assert creates_loop(1, parse_filters(filters), {2: _root()}.get) is True


def test_three_cycle_closed_by_the_saved_cohort_is_a_loop() -> None:
    """Scenario: 2 -> 3 -> 1 exist; saving 1 -> 2 closes 1 -> 2 -> 3 -> 1."""
    others = {2: _root(3), 3: _root(1)}
    assert creates_loop(1, _root(2), others.get) is True


def test_saved_definition_replaces_the_stored_one() -> None:
    """Scenario: stored 1 refers to 2 and 2 refers to 1; the new 1 drops the reference."""
    others = {1: _root(2), 2: _root(1)}
    assert creates_loop(1, _root(), others.get) is False
    assert creates_loop(2, _root(), others.get) is False


def test_diamond_is_not_a_loop() -> None:
    """Scenario: 1 -> {2, 3}, 2 -> 4, 3 -> 4: two paths to 4 but no cycle."""
    others = {2: _root(4), 3: _root(4), 4: _root()}
    assert creates_loop(1, _root(2, 3), others.get) is False


def test_chain_without_cycle_is_not_a_loop() -> None:
    others = {2: _root(3), 3: _root(4), 4: None}
    assert creates_loop(1, _root(2), others.get) is False


def test_existing_cycle_reachable_from_the_saved_cohort_is_reported() -> None:
    """Scenario: 2 <-> 3 already loop (bad stored data); 1 -> 2 reaches the back edge, as
    PostHog's DFS does."""
    others = {2: _root(3), 3: _root(2)}
    assert creates_loop(1, _root(2), others.get) is True


def test_unknown_and_criteria_less_references_have_no_edges() -> None:
    assert creates_loop(1, _root(99), lambda _id: None) is False
    assert creates_loop(1, None, lambda _id: None) is False


def test_long_chain_does_not_hit_the_recursion_limit() -> None:
    others = {i: _root(i + 1) for i in range(2, 5_000)}
    assert creates_loop(1, _root(2), others.get) is False
    others[4_999] = _root(1)
    assert creates_loop(1, _root(2), others.get) is True


# --- unknown_references -----------------------------------------------------------------------


def test_unknown_references_lists_ids_outside_the_project() -> None:
    assert unknown_references(_root(1, 2, 3), {1, 3, 7}) == {2}


def test_unknown_references_is_empty_when_all_known_or_no_root() -> None:
    assert unknown_references(_root(1), {1}) == set()
    assert unknown_references(None, set()) == set()


# --- evaluation_order -------------------------------------------------------------------------


def test_referenced_cohorts_come_first() -> None:
    definitions = _defs(_definition(1, 2, 3), _definition(2, 3), _definition(3), _definition(4, 1))
    assert evaluation_order(definitions) == [3, 2, 1, 4]


def test_order_is_deterministic_by_id_among_independent_cohorts() -> None:
    definitions = _defs(_definition(9), _definition(2), _definition(5))
    assert evaluation_order(definitions) == [2, 5, 9]
    assert evaluation_order(dict(reversed(list(definitions.items())))) == [2, 5, 9]


def test_empty_catalog_has_an_empty_order() -> None:
    assert evaluation_order({}) == []


def test_references_outside_the_mapping_are_ignored() -> None:
    assert evaluation_order(_defs(_definition(1, 50))) == [1]


def test_static_cohorts_depend_on_nothing() -> None:
    """Scenario: static 2's stored filters name 1, but its members are materialised."""
    definitions = _defs(_definition(1, 2), _definition(2, 1, is_static=True))
    assert evaluation_order(definitions) == [2, 1]


def test_self_reference_does_not_block_the_order() -> None:
    assert evaluation_order(_defs(_definition(1, 1), _definition(2, 1))) == [1, 2]


def test_three_cycle_is_broken_deterministically() -> None:
    """Scenario: 1 -> 2 -> 3 -> 1 and 4 -> 1; the smallest waiting id is released first."""
    definitions = _defs(_definition(1, 2), _definition(2, 3), _definition(3, 1), _definition(4, 1))
    order = evaluation_order(definitions)
    assert sorted(order) == [1, 2, 3, 4]
    assert order == evaluation_order(dict(reversed(list(definitions.items()))))
    assert order.index(1) < order.index(4)
    assert order == [1, 3, 2, 4]


# --- dependents and criteria_users ------------------------------------------------------------


def test_dependents_are_transitive() -> None:
    definitions = _defs(_definition(1), _definition(2, 1), _definition(3, 2), _definition(4), _definition(5, 4, 3))
    assert dependents(1, definitions) == {2, 3, 5}
    assert dependents(4, definitions) == {5}
    assert dependents(5, definitions) == set()


def test_dependents_exclude_the_cohort_itself_on_a_cycle() -> None:
    definitions = _defs(_definition(1, 3), _definition(2, 1), _definition(3, 2))
    assert dependents(1, definitions) == {2, 3}
    assert dependents(7, definitions) == set()


def test_dependents_do_not_pass_through_static_cohorts() -> None:
    definitions = _defs(_definition(1), _definition(2, 1, is_static=True), _definition(3, 2))
    assert dependents(1, definitions) == set()


def test_criteria_users_lists_direct_non_deleted_users() -> None:
    definitions = _defs(
        _definition(1),
        _definition(2, 1),
        _definition(3, 2),  # indirect: not a criteria user of 1
        _definition(4, 1, deleted=True),
        _definition(5, 1, is_static=True),  # static cohorts' stored filters count
        _definition(6, 1, 2),
    )
    assert criteria_users(1, definitions) == [2, 5, 6]
    assert criteria_users(2, definitions) == [3, 6]
    assert criteria_users(6, definitions) == []


def test_criteria_users_ignores_a_self_reference() -> None:
    assert criteria_users(1, _defs(_definition(1, 1))) == []


@pytest.mark.parametrize("missing", [99, 0])
def test_criteria_users_of_an_unused_id_is_empty(missing: int) -> None:
    assert criteria_users(missing, _defs(_definition(1, 2))) == []
