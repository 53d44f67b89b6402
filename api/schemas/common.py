"""Shapes shared by every resource: the error envelope and the basic user (reference §0.3, §1.0)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ErrorBody", "UserBasic", "user_basic"]


class ErrorBody(BaseModel):
    """Every error response (reference §0.3)."""

    type: str
    code: str
    detail: str
    attr: str | None
    extra: dict[str, Any] | None = None


class UserBasic(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    uuid: str
    distinct_id: str | None
    first_name: str
    last_name: str
    email: str
    is_email_verified: bool | None
    hedgehog_config: dict[str, Any] | None
    role_at_organization: str | None


def user_basic(user: dict[str, Any] | None) -> dict[str, Any] | None:
    """`created_by` of a cohort: null when the user no longer exists."""
    if user is None:
        return None
    return {
        "id": user["id"],
        "uuid": user["uuid"],
        "distinct_id": user.get("distinct_id"),
        "first_name": user.get("first_name", ""),
        "last_name": user.get("last_name", ""),
        "email": user["email"],
        "is_email_verified": user.get("is_email_verified"),
        "hedgehog_config": None,
        "role_at_organization": None,
    }
