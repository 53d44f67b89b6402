"""Legacy `groups` (cohorts.legacy_groups, reference §2.8): spec vectors and the link to validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cohorts.legacy_groups import GROUP_KEYS, groups_to_filters, validate_groups
from cohorts.validate import FilterError, parse_filters

VECTORS = json.loads((Path(__file__).parent / "vectors" / "legacy_groups.json").read_text())


@pytest.mark.parametrize("case", VECTORS["refused"], ids=[c["name"] for c in VECTORS["refused"]])
def test_refused_groups_give_the_spec_error(case: dict[str, Any]) -> None:
    with pytest.raises(FilterError) as info:
        validate_groups(case["groups"])
    assert info.value.detail == case["detail"]
    assert info.value.attr == "groups"
    assert info.value.code == "invalid_input"


@pytest.mark.parametrize("case", VECTORS["accepted"], ids=[c["name"] for c in VECTORS["accepted"]])
def test_accepted_groups_are_stored_with_the_full_key_set(case: dict[str, Any]) -> None:
    stored = validate_groups(case["groups"])
    assert stored == case["stored"]
    assert all(tuple(group) == GROUP_KEYS for group in stored)


@pytest.mark.parametrize("case", VECTORS["converted"], ids=[c["name"] for c in VECTORS["converted"]])
def test_groups_convert_to_filters_as_the_spec_says(case: dict[str, Any]) -> None:
    original = copy.deepcopy(case["groups"])
    assert groups_to_filters(case["groups"]) == case["filters"]
    assert case["groups"] == original  # never mutates the stored groups


def test_validated_groups_convert_the_same_as_raw_ones() -> None:
    raw = [{"event_id": "$pageview", "days": 3}, {"properties": [{"key": "a", "value": "b"}]}]
    assert groups_to_filters(validate_groups(raw)) == groups_to_filters(raw)


def test_converted_event_and_property_groups_are_computable() -> None:
    """Scenario: event_id and property groups convert into a definition the engine accepts."""
    groups = validate_groups(
        [{"event_id": "$pageview", "days": 7, "count": 2, "count_operator": "gte"}, {"properties": {"plan": "pro"}}]
    )
    root = parse_filters(groups_to_filters(groups))
    assert root is not None and root.type == "OR" and len(root.values) == 2


def test_converted_action_group_is_refused_by_validation() -> None:
    """Design §8: actions are not computable; the converted form says so at parse time."""
    with pytest.raises(FilterError, match="event_type 'actions'"):
        parse_filters(groups_to_filters(validate_groups([{"action_id": 4}])))


def test_groups_without_criteria_convert_to_no_criteria() -> None:
    assert parse_filters(groups_to_filters([])) is None
