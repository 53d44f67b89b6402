"""The four envelopes of reference §0.4, as pure functions."""

from __future__ import annotations

import pytest

from api.errors import ApiError
from api.pagination import (
    LimitOffset,
    activity_page,
    history_page,
    limit_offset,
    limit_offset_page,
    page_number,
    persons_page,
)

URL = "http://h/api/x/?search=a"


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [(None, None, (100, 0)), ("5", "3", (5, 3)), ("0", "-1", (100, 0)), ("abc", "x", (100, 0))],
)
def test_limit_offset_falls_back_like_drf(limit, offset, expected) -> None:
    page = limit_offset(limit, offset)
    assert (page.limit, page.offset) == expected


def test_limit_offset_page_keeps_other_parameters_sorted() -> None:
    page = limit_offset_page(URL, list(range(5)), LimitOffset(2, 2))
    assert page["results"] == [2, 3] and page["count"] == 5
    assert page["next"] == "http://h/api/x/?limit=2&offset=4&search=a"
    assert page["previous"] == "http://h/api/x/?limit=2&search=a"


def test_limit_offset_last_page_edge() -> None:
    page = limit_offset_page(URL, list(range(4)), LimitOffset(2, 2))
    assert page["next"] is None


def test_activity_page_appends_then_rewrites() -> None:
    page = activity_page("http://h/a/?limit=2&page=2", ["x"], 5, 2, 2)
    assert page["next"] == "http://h/a/?limit=2&page=3"
    assert page["previous"] == "http://h/a/?limit=2&page=1"
    assert activity_page("http://h/a/", [], 0, 1, 10) == {
        "results": [],
        "next": None,
        "previous": None,
        "total_count": 0,
    }


def test_page_number_rejects_non_numbers_and_zero() -> None:
    assert page_number(None, None) == (1, 10)
    for page, limit in (("x", None), (None, "0")):
        with pytest.raises(ApiError):
            page_number(page, limit)


def test_persons_page_previous_quirk_at_zero() -> None:
    page = persons_page("http://h/p/?limit=2&offset=2", ["a", "b"], LimitOffset(2, 2))
    assert page["next"] == "http://h/p/?limit=2&offset=4"
    assert page["previous"] == "http://h/p/?limit=2&offset=2"
    assert persons_page("http://h/p/", ["a"], LimitOffset(2, 0)) == {"results": ["a"], "next": None, "previous": None}


def test_history_page_relative_links() -> None:
    page = history_page(list(range(3)), LimitOffset(1, 1))
    assert page == {"results": [1], "count": 3, "next": "?limit=1&offset=2", "previous": "?limit=1&offset=0"}
