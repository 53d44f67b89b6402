"""`cohort_type` validation and the stored value (cohorts.cohort_type, reference §2.9, design §8)."""

from __future__ import annotations

from typing import Any

import pytest

from cohorts.cohort_type import COHORT_TYPES, required_cohort_type, stored_cohort_type, validate_cohort_type
from cohorts.model import Group
from cohorts.validate import FilterError, parse_filters

PERSON = {"type": "person", "key": "email", "operator": "icontains", "value": "@acme.com"}
PAGEVIEW = {
    "type": "behavioral",
    "key": "$pageview",
    "value": "performed_event",
    "event_type": "events",
    "time_value": 30,
    "time_interval": "day",
}
MULTIPLE = {**PAGEVIEW, "value": "performed_event_multiple", "operator": "gte", "operator_value": 2}
FIRST_TIME = {**PAGEVIEW, "value": "performed_event_first_time"}
REGULARLY = {
    **PAGEVIEW,
    "value": "performed_event_regularly",
    "operator_value": 1,
    "min_periods": 2,
    "total_periods": 3,
}
SEQUENCE = {
    **PAGEVIEW,
    "value": "performed_event_sequence",
    "seq_event": "buy",
    "seq_time_value": 1,
    "seq_time_interval": "day",
}
STOPPED = {**PAGEVIEW, "value": "stopped_performing_event", "seq_time_value": 7, "seq_time_interval": "day"}
RESTARTED = {**STOPPED, "value": "restarted_performing_event"}


def _cohort(cohort_id: int) -> dict[str, Any]:
    return {"type": "cohort", "key": "id", "value": cohort_id}


def _root(*leaves: dict[str, Any], kind: str = "AND") -> Group | None:
    return parse_filters({"properties": {"type": kind, "values": list(leaves)}})


def _nested(leaf: dict[str, Any]) -> Group | None:
    return parse_filters(
        {
            "properties": {
                "type": "OR",
                "values": [{"type": "AND", "values": [PERSON, {"type": "OR", "values": [leaf]}]}],
            }
        }
    )


def _lookup(table: dict[int, tuple[bool, Group | None]]):
    return table.get


NOTHING = _lookup({})


def _required(root: Group | None, lookup=NOTHING, *, is_static: bool = False, has_query: bool = False) -> str:
    return required_cohort_type(is_static=is_static, has_query=has_query, root=root, lookup=lookup)


# --- required_cohort_type ----------------------------------------------------------------------


def test_static_is_static_whatever_the_filters() -> None:
    assert _required(_root(FIRST_TIME), is_static=True) == "static"
    assert _required(None, is_static=True) == "static"


def test_query_is_analytical() -> None:
    assert _required(None, has_query=True) == "analytical"


def test_person_leaf_is_person_property() -> None:
    assert _required(_root(PERSON)) == "person_property"


@pytest.mark.parametrize("leaf", [PAGEVIEW, MULTIPLE], ids=["performed_event", "performed_event_multiple"])
def test_plain_behavioral_outranks_person(leaf: dict[str, Any]) -> None:
    assert _required(_root(PERSON, leaf)) == "behavioral"


@pytest.mark.parametrize("leaf", [FIRST_TIME, REGULARLY, SEQUENCE, STOPPED, RESTARTED], ids=lambda leaf: leaf["value"])
def test_lifecycle_kinds_are_analytical_at_any_depth(leaf: dict[str, Any]) -> None:
    assert _required(_nested(leaf)) == "analytical"


def test_cohort_leaf_takes_the_referenced_type() -> None:
    lookup = _lookup({2: (False, _root(PAGEVIEW)), 3: (False, _root(PERSON))})
    assert _required(_root(_cohort(2)), lookup) == "behavioral"
    assert _required(_root(_cohort(3)), lookup) == "person_property"


def test_static_reference_alone_is_static() -> None:
    assert _required(_root(_cohort(2)), _lookup({2: (True, None)})) == "static"


def test_static_reference_with_a_person_leaf_is_person_property() -> None:
    assert _required(_root(_cohort(2), PERSON), _lookup({2: (True, _root(FIRST_TIME))})) == "person_property"


def test_reference_type_is_recursive() -> None:
    """Scenario: 1 -> 2 -> 3, 3 is analytical, so a cohort referring to 1 is analytical."""
    lookup = _lookup(
        {1: (False, _root(_cohort(2))), 2: (False, _root(PERSON, _cohort(3))), 3: (False, _root(SEQUENCE))}
    )
    assert _required(_root(_cohort(1)), lookup) == "analytical"


def test_diamond_references_are_not_circular() -> None:
    lookup = _lookup({2: (False, _root(_cohort(4))), 3: (False, _root(_cohort(4))), 4: (False, _root(PERSON))})
    assert _required(_root(_cohort(2), _cohort(3)), lookup) == "person_property"


@pytest.mark.parametrize(
    "root, table",
    [
        (None, {}),
        (_root(), {}),
        (_root(_cohort(9)), {}),
        (_root(_cohort(2)), {2: (False, None)}),
        (_root(_cohort(2)), {2: (False, _root(_cohort(3))), 3: (False, _root(_cohort(2)))}),
        (_root(_cohort(2)), {2: (False, _root(_cohort(2)))}),
    ],
    ids=["no filters", "empty group", "missing reference", "reference without criteria", "2-cycle", "self-loop"],
)
def test_structural_problems_are_invalid_cohort_type(root: Group | None, table: dict[int, Any]) -> None:
    with pytest.raises(FilterError) as info:
        _required(root, _lookup(table))
    assert info.value.detail == "Invalid cohort type for the given filters"
    assert info.value.attr == "cohort_type"


# --- validate_cohort_type ----------------------------------------------------------------------


def _validate(provided: object, root: Group | None, lookup=NOTHING, **flags: bool) -> None:
    validate_cohort_type(
        provided,
        is_static=flags.get("is_static", False),
        has_query=flags.get("has_query", False),
        root=root,
        lookup=lookup,
    )


@pytest.mark.parametrize("provided", [None, "", False, 0])
def test_falsy_cohort_type_is_not_validated(provided: object) -> None:
    _validate(provided, None)  # no filters at all: would be "Invalid cohort type" if checked


def test_matching_cohort_type_passes() -> None:
    _validate("person_property", _root(PERSON))
    _validate("behavioral", _root(PAGEVIEW))
    _validate("analytical", _root(STOPPED))
    _validate("static", None, is_static=True)
    _validate("analytical", None, has_query=True)


def test_mismatch_names_provided_and_expected() -> None:
    with pytest.raises(FilterError) as info:
        _validate("person_property", _root(PERSON, PAGEVIEW))
    assert info.value.detail == "Cohort type 'person_property' does not match the filters. Expected type: 'behavioral'"
    assert info.value.attr == "cohort_type"
    assert info.value.code == "invalid_input"


def test_realtime_never_matches() -> None:
    with pytest.raises(FilterError) as info:
        _validate("realtime", _root(PAGEVIEW))
    assert info.value.detail == "Cohort type 'realtime' does not match the filters. Expected type: 'behavioral'"


def test_unknown_cohort_type_is_refused() -> None:
    with pytest.raises(FilterError) as info:
        _validate("dynamic", _root(PERSON))
    assert info.value.detail == '"dynamic" is not a valid choice.'
    assert info.value.attr == "cohort_type"


def test_known_type_with_structural_problem_is_invalid_cohort_type() -> None:
    with pytest.raises(FilterError) as info:
        _validate("person_property", _root(_cohort(9)))
    assert info.value.detail == "Invalid cohort type for the given filters"


def test_every_documented_type_is_known() -> None:
    assert set(COHORT_TYPES) == {"static", "person_property", "behavioral", "realtime", "analytical"}


# --- stored_cohort_type -----------------------------------------------------------------------


@pytest.mark.parametrize("provided", [None, "behavioral", "person_property"])
def test_computable_dynamic_cohort_is_stored_realtime(provided: str | None) -> None:
    """Design §8: even an analytical definition is computed in real time here."""
    assert stored_cohort_type(is_static=False, provided=provided, root=_root(SEQUENCE)) == "realtime"


@pytest.mark.parametrize("provided", [None, "static", ""])
def test_static_cohort_keeps_the_provided_value(provided: str | None) -> None:
    assert stored_cohort_type(is_static=True, provided=provided, root=_root(PERSON)) == provided


def test_dynamic_cohort_without_criteria_keeps_the_provided_value() -> None:
    assert stored_cohort_type(is_static=False, provided=None, root=None) is None
    assert stored_cohort_type(is_static=False, provided=None, root=Group("AND", ())) is None
