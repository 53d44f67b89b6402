"""Persons of a cohort (reference §1.8) and the static-membership action bodies (§1.9, §1.10)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["CohortPerson", "CohortPersonsPage"]


class CohortPerson(BaseModel):
    id: str
    uuid: str
    type: str
    name: str
    distinct_ids: list[str]
    properties: dict[str, Any]
    created_at: str | None
    last_seen_at: str | None
    is_identified: bool | None
    matched_recordings: list[Any]
    value_at_data_point: Any


class CohortPersonsPage(BaseModel):
    results: list[CohortPerson]
    next: str | None
    previous: str | None
