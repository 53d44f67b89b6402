"""The four pagination envelopes of reference §0.4, one function each, plus parameter parsing.

1. `limit_offset_page`   cohort list: {count, next, previous, results}, absolute URLs (DRF).
2. `activity_page`       activity: {results, next, previous, total_count}, page/limit (1-based).
3. `persons_page`        persons of a cohort: {results, next, previous}, no count.
4. `history_page`        calculation history: {results, count, next, previous}, relative URLs.

Limits and offsets are parsed as DRF does (`_positive_int` with a fallback to the default), so a
bad value never fails a list. Pure: takes the request URL as a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from api.errors import validation

__all__ = [
    "LimitOffset",
    "activity_page",
    "history_page",
    "limit_offset",
    "limit_offset_page",
    "page_number",
    "persons_page",
]

DEFAULT_LIMIT = 100
ACTIVITY_DEFAULT_LIMIT = 10


@dataclass(frozen=True, slots=True)
class LimitOffset:
    limit: int
    offset: int


def _positive_int(raw: str | None, default: int, *, strict: bool) -> int:
    """DRF `_positive_int`: a non-negative int (zero refused when strict), else the default."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    if value < 0 or (strict and value == 0):
        return default
    return value


def limit_offset(limit: str | None, offset: str | None, *, default_limit: int = DEFAULT_LIMIT) -> LimitOffset:
    return LimitOffset(_positive_int(limit, default_limit, strict=True), _positive_int(offset, 0, strict=False))


def page_number(page: str | None, limit: str | None) -> tuple[int, int]:
    """`(page, limit)` of an activity request; a non-numeric value is a 400 (PostHog: a 500)."""

    def parse(raw: str | None, default: int, name: str) -> int:
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise validation("A valid integer is required.", name) from None
        if value < 1:
            raise validation("Ensure this value is greater than or equal to 1.", name, "min_value")
        return value

    return parse(page, 1, "page"), parse(limit, ACTIVITY_DEFAULT_LIMIT, "limit")


# URL rewriting -------------------------------------------------------------------------------


def _query_dict(query: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


def _replace_query_param(url: str, key: str, value: object) -> str:
    """DRF `replace_query_param`: set one parameter; parameters come back sorted, as in DRF."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = _query_dict(query)
    params[key] = [str(value)]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(params.items()), doseq=True), fragment))


def _remove_query_param(url: str, key: str) -> str:
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = _query_dict(query)
    params.pop(key, None)
    return urlunsplit((scheme, netloc, path, urlencode(sorted(params.items()), doseq=True), fragment))


def _format_query_params_absolute_url(
    url: str, offset: int | None = None, limit: int | None = None, offset_alias: str = "offset"
) -> str:
    """PostHog's `format_query_params_absolute_url`: rewrite or append; a falsy value is skipped."""
    for alias, value in ((offset_alias, offset), ("limit", limit)):
        if not value:
            continue
        pattern = re.compile(rf"([&?]{alias}=)(\d+)")
        if pattern.search(url):
            url = pattern.sub(rf"\g<1>{value}", url)
        else:
            url = url + ("&" if "?" in url else "?") + f"{alias}={value}"
    return url


# Envelopes -----------------------------------------------------------------------------------


def limit_offset_page(url: str, rows: list[Any], page: LimitOffset) -> dict[str, Any]:
    """Style 1: slice `rows` (all matching rows, in order) and link the neighbours."""
    count = len(rows)
    results = rows[page.offset : page.offset + page.limit]
    next_url = None
    if page.offset + page.limit < count:
        next_url = _replace_query_param(
            _replace_query_param(url, "limit", page.limit), "offset", page.offset + page.limit
        )
    previous_url = None
    if page.offset > 0:
        base = _replace_query_param(url, "limit", page.limit)
        if page.offset - page.limit <= 0:
            previous_url = _remove_query_param(base, "offset")
        else:
            previous_url = _replace_query_param(base, "offset", page.offset - page.limit)
    return {"count": count, "next": next_url, "previous": previous_url, "results": results}


def activity_page(url: str, rows: list[Any], total: int, page: int, limit: int) -> dict[str, Any]:
    """Style 2: `rows` is already the requested page; `total` counts every entry."""
    has_next = page * limit < total
    has_previous = page > 1
    return {
        "results": rows,
        "next": _format_query_params_absolute_url(url, page + 1, limit, offset_alias="page") if has_next else None,
        "previous": _format_query_params_absolute_url(url, page - 1, limit, offset_alias="page")
        if has_previous
        else None,
        "total_count": total,
    }


def persons_page(url: str, rows: list[Any], page: LimitOffset) -> dict[str, Any]:
    """Style 3: `rows` is the page; next when it is full, previous per PostHog's quirk (§1.8)."""
    next_url = _format_query_params_absolute_url(url, page.offset + page.limit) if len(rows) >= page.limit else None
    previous_url = None
    if page.offset - page.limit >= 0:
        previous_url = _format_query_params_absolute_url(url, page.offset - page.limit)
    return {"results": rows, "next": next_url, "previous": previous_url}


def history_page(rows: list[Any], page: LimitOffset) -> dict[str, Any]:
    """Style 4: relative query strings (reference §1.11)."""
    count = len(rows)
    results = rows[page.offset : page.offset + page.limit]
    next_url = f"?limit={page.limit}&offset={page.offset + page.limit}" if page.offset + page.limit < count else None
    previous_url = None
    if page.offset > 0:
        previous_url = f"?limit={page.limit}&offset={max(0, page.offset - page.limit)}"
    return {"results": results, "count": count, "next": next_url, "previous": previous_url}
