"""Catalog records for stream tests, in the stored (PostHog) filter shape."""

from __future__ import annotations

from typing import Any

from cohorts.wire import CatalogRecord
from stream.catalog import Catalog


def group(*values: dict[str, Any], type_: str = "AND") -> dict[str, Any]:
    return {"properties": {"type": "OR", "values": [{"type": type_, "values": list(values)}]}}


def performed(event: str, days: int = 7, *, interval: str = "day", negation: bool = False, **extra: Any):
    leaf = {
        "type": "behavioral",
        "key": event,
        "value": "performed_event",
        "event_type": "events",
        "time_value": days,
        "time_interval": interval,
        "negation": negation,
    }
    leaf.update(extra)
    return leaf


def performed_multiple(event: str, operator: str, count: int, days: int = 7) -> dict[str, Any]:
    return {
        "type": "behavioral",
        "key": event,
        "value": "performed_event_multiple",
        "event_type": "events",
        "time_value": days,
        "time_interval": "day",
        "operator": operator,
        "operator_value": count,
    }


def person_prop(key: str, value: Any, operator: str = "exact", negation: bool = False) -> dict[str, Any]:
    return {"type": "person", "key": key, "value": value, "operator": operator, "negation": negation}


def in_cohort(cohort_id: int, negation: bool = False) -> dict[str, Any]:
    return {"type": "cohort", "key": "id", "value": cohort_id, "negation": negation}


def record(cohort_id: int, filters: dict[str, Any], *, team_id: int = 1, version: int = 1, **kw: Any) -> bytes:
    return CatalogRecord(id=cohort_id, team_id=team_id, version=version, filters=filters, **kw).to_bytes()


def static(cohort_id: int, *, team_id: int = 1, version: int = 1) -> bytes:
    return CatalogRecord(id=cohort_id, team_id=team_id, version=version, is_static=True).to_bytes()


def catalog_of(*records: tuple[int, bytes | None]) -> Catalog:
    catalog = Catalog()
    for offset, (cohort_id, value) in enumerate(records):
        catalog.apply(str(cohort_id).encode(), value, offset)
    return catalog
