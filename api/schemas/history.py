"""Calculation history rows and their page (reference §7, §1.11)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["CalculationHistoryPage", "CalculationHistoryRow"]


class CalculationHistoryRow(BaseModel):
    id: str
    filters: dict[str, Any] | None
    count: int | None
    started_at: str
    finished_at: str | None
    queries: list[dict[str, Any]]
    error: str | None
    duration_seconds: float | None
    is_completed: bool
    is_successful: bool
    total_query_ms: int
    total_memory_mb: float
    total_read_rows: int
    total_written_rows: int
    main_query: str | None
    main_query_id: str | None


class CalculationHistoryPage(BaseModel):
    results: list[CalculationHistoryRow]
    count: int
    next: str | None
    previous: str | None
