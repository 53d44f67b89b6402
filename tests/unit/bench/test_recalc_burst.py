"""The burst benchmark's cohorts: valid, of every kind, the same on every run.

Some of 50 share a definition (each is still a cohort of its own, recalculated on its own)."""

from __future__ import annotations

import importlib

from bench.recalc_burst import FIRST_ID, burst_cohorts
from cohorts.validate import definition_from_record


def test_the_module_imports_without_starting_anything() -> None:
    assert importlib.import_module("bench.recalc_burst").__all__


def test_burst_cohorts_are_valid_definitions_of_every_kind_and_deterministic() -> None:
    records = burst_cohorts(1, 50)
    assert [r.id for r in records] == list(range(FIRST_ID, FIRST_ID + 50))
    assert len({str(r.filters) for r in records}) > 40
    kinds = {leaf["type"] for r in records for leaf in r.filters["properties"]["values"]}
    assert kinds == {"person", "behavioral", "cohort"}
    for r in records:
        definition_from_record(r)  # raises FilterError on a definition the worker cannot compute
    assert burst_cohorts(1, 50) == records
