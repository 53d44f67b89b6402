"""File-system view log (design §8, reference §4)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LogViewCreate", "LogViewRow"]


class LogViewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    type: str = Field(min_length=1, max_length=100)
    ref: str = Field(min_length=1, max_length=100)
    viewed_at: datetime | None = None


class LogViewRow(BaseModel):
    type: str
    ref: str
    viewed_at: str
