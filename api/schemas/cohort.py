"""The Cohort resource (reference §1.0): the write shape (create and update) and the public shape.

Parsing follows DRF's field rules closely enough for clients: numbers are accepted as strings,
booleans accept "true"/"1"/"yes"..., read-only fields sent back by a client are ignored, any
other unknown field is refused. `filters`, `groups` and `query` are kept raw here: their rules
and PostHog's texts live in `cohorts.validate`, `cohorts.legacy_groups`, `cohorts.copy_query`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UserBasic

__all__ = [
    "READ_ONLY_FIELDS",
    "CohortListRow",
    "CohortPage",
    "CohortPublic",
    "CohortWrite",
    "SuccessBody",
]

#: Output-only fields: silently ignored on input, as DRF does (reference §1.0).
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "version",
        "pending_version",
        "is_calculating",
        "created_by",
        "created_at",
        "last_calculation",
        "last_backfill_person_properties_at",
        "errors_calculating",
        "last_error_message",
        "count",
        "last_import_total_count",
        "last_import_unmatched_count",
        "population",
        "condition_type",
        "experiment_set",
        "search_match_type",
        "personal_api_key",
    }
)

_JSON_OBJECT_OR_NULL = {"anyOf": [{"type": "object"}, {"type": "null"}]}


class CohortWrite(BaseModel):
    """Body of POST, PATCH and PUT (JSON, or multipart with a `csv` file). Nothing is required."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, populate_by_name=True)

    name: str | None = Field(default=None, max_length=400)
    description: str = Field(default="", max_length=1000)
    groups: Any = Field(default_factory=list, json_schema_extra={"type": "array", "items": {"type": "object"}})
    deleted: bool = False
    filters: Any = Field(default=None, json_schema_extra=_JSON_OBJECT_OR_NULL)
    query: Any = Field(default=None, json_schema_extra=_JSON_OBJECT_OR_NULL)
    is_static: bool = False
    cohort_type: str | None = Field(
        default=None,
        json_schema_extra={
            "anyOf": [
                {"enum": ["static", "person_property", "behavioral", "realtime", "analytical", ""]},
                {"type": "null"},
            ]
        },
    )
    create_in_folder: str | None = Field(default=None, alias="_create_in_folder")
    create_static_person_ids: list[str] = Field(default_factory=list, alias="_create_static_person_ids")


class CohortPublic(BaseModel):
    """A cohort as GET returns it (newest field order, reference §1.0)."""

    id: int
    name: str | None
    description: str
    groups: list[Any]
    deleted: bool
    filters: dict[str, Any]
    query: dict[str, Any] | None
    version: int | None
    pending_version: int | None
    is_calculating: bool
    created_by: UserBasic | None
    created_at: str | None
    last_calculation: str | None
    last_backfill_person_properties_at: str | None
    errors_calculating: int
    last_error_message: str | None
    count: int | None
    last_import_total_count: int | None
    last_import_unmatched_count: int | None
    population: dict[str, Any] | None
    is_static: bool
    cohort_type: str | None
    condition_type: dict[str, bool] | None
    experiment_set: list[int]


class CohortListRow(BaseModel):
    """A list row: `basic=true` drops query, groups, last_error_message and experiment_set, and
    `search_match_type` appears only with a non-blank `search` (reference §1.1)."""

    id: int
    name: str | None
    description: str
    groups: list[Any] | None = None
    deleted: bool
    filters: dict[str, Any]
    query: dict[str, Any] | None = None
    version: int | None
    pending_version: int | None
    is_calculating: bool
    created_by: UserBasic | None
    created_at: str | None
    last_calculation: str | None
    last_backfill_person_properties_at: str | None
    errors_calculating: int
    last_error_message: str | None = None
    count: int | None
    last_import_total_count: int | None
    last_import_unmatched_count: int | None
    population: None
    is_static: bool
    cohort_type: str | None
    condition_type: dict[str, bool] | None
    experiment_set: list[int] | None = None
    search_match_type: Literal["exact", "similar"] | None = None


class CohortPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[CohortListRow]


class SuccessBody(BaseModel):
    success: bool
