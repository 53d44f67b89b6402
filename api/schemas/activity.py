"""Activity log entries and their page (reference §6, §0.4 style 2)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["ActivityEntry", "ActivityPage"]


class ActivityUser(BaseModel):
    first_name: str | None
    email: str | None


class ActivityChange(BaseModel):
    type: str
    action: str
    field: str | None
    before: Any
    after: Any


class ActivityDetail(BaseModel):
    changes: list[ActivityChange] | None
    trigger: dict[str, Any] | None
    name: str | None
    short_id: str | None
    type: str | None


class ActivityEntry(BaseModel):
    id: str
    user: ActivityUser | None
    activity: str
    scope: str
    item_id: str
    detail: ActivityDetail
    created_at: str
    is_system: bool
    was_impersonated: bool
    client: str | None


class ActivityPage(BaseModel):
    results: list[ActivityEntry]
    next: str | None
    previous: str | None
    total_count: int
