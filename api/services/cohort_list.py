"""The cohort list's filters and search (reference §1.1).

Non-deleted cohorts of the project, newest first (`-created_at`, then `-id` for rows created in
the same microsecond). `search` is case-insensitive on the name: if any name contains it
("exact"), only those rows; else rows whose name is similar (difflib ratio, standing in for
PostHog's trigram similarity), by similarity then newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from api.errors import validation
from api.views.cohorts import CohortReader
from cohorts.validate import has_behavioral

__all__ = ["MAX_SEARCH_LENGTH", "SIMILARITY_THRESHOLD", "ListQuery", "list_cohorts", "render_rows"]

MAX_SEARCH_LENGTH = 200
#: Minimum difflib ratio for a "similar" match (PostHog's pg_trgm default threshold is 0.3).
SIMILARITY_THRESHOLD = 0.4

_BASIC_DROPPED = ("query", "groups", "last_error_message", "experiment_set")


@dataclass(frozen=True, slots=True)
class ListQuery:
    type: str | None = None
    created_by_id: int | None = None
    search: str | None = None
    basic: bool = False
    hide_behavioral_cohorts: bool = False


def list_cohorts(reader: CohortReader, team_id: int, query: ListQuery) -> tuple[list[dict[str, Any]], str | None]:
    """Every matching stored row in list order, and the search match type (the router paginates
    and renders only the page with `render_rows`). The rows are shared: never change them."""
    search = (query.search or "").strip()
    if query.search is not None and len(query.search) > MAX_SEARCH_LENGTH:
        raise validation(f"Search query must be {MAX_SEARCH_LENGTH} characters or fewer.", "search")
    listed = reader.listed(team_id)
    rows = listed.live
    if query.type == "static":
        rows = [row for row in rows if row["is_static"]]
    elif query.type == "dynamic":
        rows = [row for row in rows if not row["is_static"]]
    if query.created_by_id is not None:
        rows = [row for row in rows if row.get("created_by_id") == query.created_by_id]
    if query.hide_behavioral_cohorts:
        lookup = reader.root_lookup(listed.by_id)
        rows = [row for row in rows if not has_behavioral(reader.root(row), lookup)]
    match_type = None
    if search:
        needle = search.lower()
        exact = [row for row in rows if needle in (row["name"] or "").lower()]
        if exact:
            rows, match_type = exact, "exact"
        else:
            scored = []
            for position, row in enumerate(rows):
                ratio = SequenceMatcher(None, needle, (row["name"] or "").lower()).ratio()
                if ratio >= SIMILARITY_THRESHOLD:
                    scored.append((-ratio, position, row))
            scored.sort(key=lambda item: (item[0], item[1]))
            rows, match_type = [row for _, _, row in scored], "similar"
    return rows, match_type


def render_rows(
    reader: CohortReader, rows: list[dict[str, Any]], query: ListQuery, match_type: str | None
) -> list[dict[str, Any]]:
    """The page's rows as the list shows them (`reader.render_many`, trimmed for `basic`)."""
    out = reader.render_many(rows)
    for rendered in out:
        if query.basic:
            for name in _BASIC_DROPPED:
                rendered.pop(name)
        if match_type is not None:
            rendered["search_match_type"] = match_type
    return out
