"""Save-time validation of `filters` (cohorts.validate): spec vectors plus model-level checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cohorts.model import BehavioralLeaf, CohortLeaf, EventFilter, Group, PersonLeaf, iter_leaves
from cohorts.validate import (
    FilterError,
    definition_from_record,
    has_behavioral,
    has_criteria,
    normalise_filters,
    parse_filters,
)
from cohorts.vocab import MAX_DEPTH, MAX_LEAVES
from cohorts.wire import CatalogRecord

VECTORS = Path(__file__).parent / "vectors"
REFUSED = json.loads((VECTORS / "filters_refused.json").read_text())["cases"]
ACCEPTED = json.loads((VECTORS / "filters_accepted.json").read_text())["cases"]


def _strip_hashes(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_hashes(v) for k, v in node.items() if k != "conditionHash"}
    if isinstance(node, list):
        return [_strip_hashes(v) for v in node]
    return node


def _dumped_leaves(node: dict[str, Any]):
    if node.get("type") in ("AND", "OR"):
        for child in node["values"]:
            yield from _dumped_leaves(child)
    else:
        yield node


def _person(key: str = "email", operator: str = "exact", value: Any = "x", **extra: Any) -> dict[str, Any]:
    return {"type": "person", "key": key, "operator": operator, "value": value, **extra}


def _wrap(*leaves: dict[str, Any], kind: str = "AND") -> dict[str, Any]:
    return {"properties": {"type": kind, "values": list(leaves)}}


# --- Spec vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", REFUSED, ids=[c["name"] for c in REFUSED])
def test_refused_filters_give_the_spec_error(case: dict[str, Any]) -> None:
    with pytest.raises(FilterError) as info:
        parse_filters(case["filters"])
    error = info.value
    if case.get("exact"):
        assert error.detail == case["detail"]
    else:
        assert case["detail"] in error.detail
    assert error.attr == case["attr"]
    assert error.code == "invalid_input"
    assert str(error) == error.detail


@pytest.mark.parametrize("case", REFUSED, ids=[c["name"] for c in REFUSED])
def test_normalise_refuses_what_parse_refuses(case: dict[str, Any]) -> None:
    with pytest.raises(FilterError):
        normalise_filters(case["filters"])


@pytest.mark.parametrize("case", ACCEPTED, ids=[c["name"] for c in ACCEPTED])
def test_accepted_filters_normalise_as_the_spec_says(case: dict[str, Any]) -> None:
    normalised = normalise_filters(case["filters"])
    assert _strip_hashes(normalised) == case["normalised"]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c["name"] for c in ACCEPTED])
def test_normalisation_is_idempotent(case: dict[str, Any]) -> None:
    once = normalise_filters(case["filters"])
    assert normalise_filters(once) == once


@pytest.mark.parametrize("case", ACCEPTED, ids=[c["name"] for c in ACCEPTED])
def test_every_normalised_leaf_carries_the_model_condition_hash(case: dict[str, Any]) -> None:
    root = parse_filters(case["filters"])
    if not case.get("criteria", True):
        assert root is None
        assert has_criteria(case["filters"]) is False
        return
    assert isinstance(root, Group)
    assert has_criteria(case["filters"]) is True
    dumped = list(_dumped_leaves(normalise_filters(case["filters"])["properties"]))
    model = list(iter_leaves(root))
    assert [leaf["conditionHash"] for leaf in dumped] == [leaf.condition_hash for leaf in model]
    assert all(leaf["negation"] == m.negation for leaf, m in zip(dumped, model, strict=True))


# --- The model tree -------------------------------------------------------------------------


def test_lists_become_tuples_in_the_model() -> None:
    root = parse_filters(_wrap(_person(value=["a", "b"]), _person(operator="between", value=[1, 2])))
    assert root == Group("AND", (PersonLeaf("email", "exact", ("a", "b")), PersonLeaf("email", "between", (1, 2))))
    hash(root)


def test_unwrapped_value_is_a_plain_string_in_the_model() -> None:
    root = parse_filters(_wrap(_person(operator="icontains", value=["@acme.com"])))
    assert root == Group("AND", (PersonLeaf("email", "icontains", "@acme.com"),))


def test_presence_operator_drops_its_value_from_the_model_only() -> None:
    """Scenario: the UI sends value "is_set" with is_set; the condition is the same as without."""
    with_value = parse_filters(_wrap(_person(operator="is_set", value="is_set")))
    without = parse_filters(_wrap({"type": "person", "key": "email", "operator": "is_set"}))
    assert with_value == without
    assert normalise_filters(_wrap(_person(operator="is_set", value="is_set")))["properties"]["values"][0]["value"] == (
        "is_set"
    )


def test_cohort_leaf_value_is_stored_as_int() -> None:
    root = parse_filters(_wrap({"type": "cohort", "key": "id", "value": ["17"], "negation": True}))
    assert root == Group("AND", (CohortLeaf(17, negation=True),))


def test_behavioral_leaf_fields_map_onto_the_model() -> None:
    raw = {
        "type": "behavioral",
        "key": "signup",
        "value": "performed_event_sequence",
        "event_type": "events",
        "time_value": "7",
        "time_interval": "day",
        "seq_event": 5,
        "seq_time_value": 1,
        "seq_time_interval": "hour",
        "event_filters": [{"type": "event", "key": "$browser", "value": ["Chrome", "Safari"]}],
    }
    (leaf,) = iter_leaves(parse_filters(_wrap(raw)))
    assert leaf == BehavioralLeaf(
        kind="performed_event_sequence",
        event="signup",
        event_filters=(EventFilter("$browser", "exact", ("Chrome", "Safari")),),
        time_value=7,
        time_interval="day",
        seq_event="5",
        seq_time_value=1,
        seq_time_interval="hour",
    )


def test_integer_event_key_becomes_the_event_name_string() -> None:
    raw = {"type": "behavioral", "key": 123, "value": "performed_event", "event_type": "events"}
    (leaf,) = iter_leaves(parse_filters(_wrap({**raw, "time_value": 1, "time_interval": "day"})))
    assert leaf.event == "123"


def test_negation_does_not_change_the_condition_hash() -> None:
    plain = normalise_filters(_wrap(_person()))["properties"]["values"][0]
    negated = normalise_filters(_wrap(_person(negation=True)))["properties"]["values"][0]
    assert plain["conditionHash"] == negated["conditionHash"]
    assert plain["negation"] is False and negated["negation"] is True


def test_normalise_does_not_mutate_its_input() -> None:
    raw = _wrap(_person(operator="icontains", value=["x"]), {"type": "cohort", "key": "id", "value": "3"})
    before = json.dumps(raw, sort_keys=True)
    normalise_filters(raw)
    parse_filters(raw)
    assert json.dumps(raw, sort_keys=True) == before


# --- Size limits ----------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "AND", "values": [_person()]}
    for _ in range(depth - 1):
        node = {"type": "OR", "values": [node]}
    return {"properties": node}


def test_nesting_at_the_depth_limit_is_accepted() -> None:
    root = parse_filters(_nested(MAX_DEPTH))
    assert list(iter_leaves(root)) == [PersonLeaf("email", "exact", "x")]


def test_nesting_one_past_the_depth_limit_is_refused() -> None:
    with pytest.raises(FilterError, match=f"at most {MAX_DEPTH} levels deep") as info:
        parse_filters(_nested(MAX_DEPTH + 1))
    assert info.value.attr == "filters"


def test_hostile_nesting_is_refused_without_recursion_error() -> None:
    with pytest.raises(FilterError, match="levels deep"):
        parse_filters(_nested(5_000))


def test_leaf_count_at_the_limit_is_accepted() -> None:
    root = parse_filters(_wrap(*[_person(key=f"k{i}") for i in range(MAX_LEAVES)]))
    assert len(list(iter_leaves(root))) == MAX_LEAVES


def test_leaf_count_one_past_the_limit_is_refused() -> None:
    with pytest.raises(FilterError, match=f"at most {MAX_LEAVES} criteria"):
        parse_filters(_wrap(*[_person(key=f"k{i}") for i in range(MAX_LEAVES + 1)]))


def test_leaves_are_counted_across_groups() -> None:
    half = MAX_LEAVES // 2 + 1
    group = {"type": "AND", "values": [_person(key=f"k{i}") for i in range(half)]}
    with pytest.raises(FilterError, match="criteria"):
        parse_filters({"properties": {"type": "OR", "values": [group, group]}})


def test_too_many_empty_groups_are_refused() -> None:
    with pytest.raises(FilterError, match="groups"):
        parse_filters(_wrap(*[{"type": "AND", "values": []} for _ in range(MAX_LEAVES + 1)]))


# --- has_criteria -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        "text",
        {"properties": {}},
        {"properties": None},
        {"properties": {"type": "AND", "values": []}},
        {"properties": {"type": "OR", "values": [{"type": "AND", "values": []}]}},
    ],
)
def test_has_criteria_is_false_without_a_leaf(raw: object) -> None:
    assert has_criteria(raw) is False


@pytest.mark.parametrize(
    "raw",
    [
        _wrap(_person()),
        {"properties": {"type": "OR", "values": [{"type": "AND", "values": [_person()]}]}},
        {"properties": [_person()]},  # malformed: must reach validation, not be skipped
        {"properties": {"type": "AND", "values": "x"}},
    ],
)
def test_has_criteria_is_true_with_a_leaf_or_anything_malformed(raw: object) -> None:
    assert has_criteria(raw) is True


# --- definition_from_record -------------------------------------------------------------------


def test_definition_from_record_parses_a_dynamic_cohort() -> None:
    filters = normalise_filters(_wrap(_person()))
    record = CatalogRecord(id=4, team_id=2, version=3, name="Acme", filters=filters)
    definition = definition_from_record(record)
    assert definition.root == Group("AND", (PersonLeaf("email", "exact", "x"),))
    assert (definition.id, definition.team_id, definition.version, definition.name) == (4, 2, 3, "Acme")
    assert definition.filters == filters
    assert definition.is_static is False and definition.deleted is False


def test_definition_from_record_has_no_root_for_a_static_cohort() -> None:
    record = CatalogRecord(id=4, team_id=2, version=1, is_static=True, filters=_wrap(_person()))
    assert definition_from_record(record).root is None


@pytest.mark.parametrize("filters", [{}, {"properties": {}}, {"properties": {"type": "AND", "values": []}}])
def test_definition_from_record_has_no_root_without_criteria(filters: dict[str, Any]) -> None:
    record = CatalogRecord(id=4, team_id=2, version=1, filters=filters)
    assert definition_from_record(record).root is None


def test_definition_from_record_keeps_deleted_flag_and_root() -> None:
    record = CatalogRecord(id=4, team_id=2, version=1, deleted=True, filters=_wrap(_person()))
    definition = definition_from_record(record)
    assert definition.deleted is True and definition.root is not None


def test_definition_from_record_raises_on_invalid_stored_filters() -> None:
    record = CatalogRecord(id=4, team_id=2, version=1, filters=_wrap({"type": "weird"}))
    with pytest.raises(FilterError):
        definition_from_record(record)


# --- has_behavioral ---------------------------------------------------------------------------

_BEHAVIORAL = {
    "type": "behavioral",
    "key": "$pageview",
    "value": "performed_event",
    "event_type": "events",
    "time_value": 7,
    "time_interval": "day",
}


def _cohort(cohort_id: int) -> dict[str, Any]:
    return {"type": "cohort", "key": "id", "value": cohort_id}


def test_has_behavioral_finds_a_direct_leaf() -> None:
    assert has_behavioral(parse_filters(_wrap(_person(), _BEHAVIORAL)), lambda _id: None) is True


def test_has_behavioral_is_false_for_person_only() -> None:
    assert has_behavioral(parse_filters(_wrap(_person())), lambda _id: None) is False
    assert has_behavioral(None, lambda _id: None) is False


def test_has_behavioral_follows_referenced_cohorts() -> None:
    """Scenario: 1 -> 2 -> 3, only 3 is behavioural; 1 counts as behavioural."""
    roots = {2: parse_filters(_wrap(_cohort(3))), 3: parse_filters(_wrap(_BEHAVIORAL))}
    assert has_behavioral(parse_filters(_wrap(_cohort(2))), roots.get) is True


def test_has_behavioral_terminates_on_a_cycle() -> None:
    roots = {2: parse_filters(_wrap(_cohort(3))), 3: parse_filters(_wrap(_cohort(2)))}
    calls: list[int] = []

    def lookup(cohort_id: int) -> Group | None:
        calls.append(cohort_id)
        return roots.get(cohort_id)

    assert has_behavioral(parse_filters(_wrap(_cohort(2))), lookup) is False
    assert sorted(calls) == [2, 3]


def test_has_behavioral_ignores_unknown_or_static_references() -> None:
    assert has_behavioral(parse_filters(_wrap(_cohort(99))), lambda _id: None) is False


# --- Robustness -------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["-7d", "10000d", "2024-01-15", "(", "person", "behavioral", "cohort", "events", "day"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
_LEAF_KEYS = [
    "type",
    "key",
    "value",
    "operator",
    "negation",
    "event_type",
    "time_value",
    "time_interval",
    "operator_value",
    "event_filters",
    "explicit_datetime",
    "seq_event",
    "min_periods",
    "total_periods",
]
_LEAF = st.dictionaries(st.sampled_from(_LEAF_KEYS), _JSON, max_size=8).map(
    lambda d: {**d, "type": d.get("type") if isinstance(d.get("type"), str) else "person"}
)


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(_JSON, st.builds(lambda leaves: _wrap(*leaves), st.lists(_LEAF, max_size=3))))
def test_arbitrary_input_raises_only_filter_error(raw: object) -> None:
    """Scenario: any JSON, including leaf-shaped junk, is either accepted or refused with a 400."""
    try:
        normalised = normalise_filters(raw)  # type: ignore[arg-type]
    except FilterError as error:
        assert error.detail and error.attr == "filters"
    else:
        assert normalise_filters(normalised) == normalised
