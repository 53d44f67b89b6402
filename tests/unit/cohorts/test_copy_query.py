"""The copy-a-cohort `query` (cohorts.copy_query, design §8): spec vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cohorts.copy_query import parse_copy_query
from cohorts.validate import FilterError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "copy_query.json").read_text())


@pytest.mark.parametrize("case", VECTORS["accepted"], ids=[c["name"] for c in VECTORS["accepted"]])
def test_copy_query_gives_source_cohort_and_table(case: dict[str, Any]) -> None:
    assert parse_copy_query(case["query"]) == tuple(case["result"])


@pytest.mark.parametrize("case", VECTORS["refused"], ids=[c["name"] for c in VECTORS["refused"]])
def test_other_queries_are_refused_naming_the_supported_form(case: dict[str, Any]) -> None:
    with pytest.raises(FilterError) as info:
        parse_copy_query(case["query"])
    assert case["detail"] in info.value.detail
    assert info.value.attr == "query"
    assert info.value.code == "invalid_input"
