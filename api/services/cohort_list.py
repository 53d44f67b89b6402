"""The cohort list's filters and search (reference §1.1).

Non-deleted cohorts of the project, newest first (`-created_at`, then `-id` for rows created in
the same microsecond). `search` is case-insensitive on the name: if any name contains it
("exact"), only those rows; else rows whose name is similar (difflib ratio, standing in for
PostHog's trigram similarity), by similarity then newest first.

A rendered page (`list_page`, JSON bytes) is kept per (project, URL) in `ListPages` while the
reader's `render_token` is unchanged: any write to a cohort row, a calculation summary, a count
or the auth database moves the token, so a kept page is never staler than the views. Searches are
not kept (rare, and each search string would take a slot).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from api.errors import validation
from api.pagination import LimitOffset, limit_offset_page
from api.responses import json_bytes
from api.views.cohorts import CohortReader
from cohorts.validate import has_behavioral

__all__ = [
    "MAX_SEARCH_LENGTH",
    "SIMILARITY_THRESHOLD",
    "ListPages",
    "ListQuery",
    "list_cohorts",
    "list_page",
    "render_rows",
]

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
    if not query.basic and match_type is None:
        return out
    trimmed = []
    for shared in out:
        rendered = dict(shared)  # the reader's rendered rows are shared between requests
        if query.basic:
            for name in _BASIC_DROPPED:
                rendered.pop(name)
        if match_type is not None:
            rendered["search_match_type"] = match_type
        trimmed.append(rendered)
    return trimmed


class ListPages:
    """Rendered list pages by (project, URL), each with the render token it was rendered under.
    Dropped whole beyond `limit` pages, as the reader's caches are."""

    def __init__(self, limit: int = 1_000) -> None:
        self._limit = limit
        self._pages: dict[tuple[int, str], tuple[Any, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, team_id: int, url: str, token: Any) -> bytes | None:
        kept = self._pages.get((team_id, url))
        return kept[1] if kept is not None and kept[0] == token else None

    def put(self, team_id: int, url: str, token: Any, body: bytes) -> None:
        with self._lock:
            if len(self._pages) >= self._limit:
                self._pages.clear()
            self._pages[(team_id, url)] = (token, body)


def list_page(
    reader: CohortReader, pages: ListPages, team_id: int, url: str, query: ListQuery, page: LimitOffset
) -> bytes:
    """The JSON body of one list page (reference §1.1): kept, or rendered and kept."""
    token = reader.render_token()  # before any read: see `CohortReader.render_token`
    kept = None if query.search else pages.get(team_id, url, token)
    if kept is not None:
        return kept
    rows, match_type = list_cohorts(reader, team_id, query)
    envelope = limit_offset_page(url, rows, page)
    envelope["results"] = render_rows(reader, envelope["results"], query, match_type)
    body = json_bytes(envelope)
    if not query.search:
        pages.put(team_id, url, token, body)
    return body
