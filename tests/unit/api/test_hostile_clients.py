"""Scenario 7 of the reliability issue, beyond the access matrix: hostile request bodies and
definitions are refused cleanly at save, with the error envelope, and change nothing.

Limits (docs/api-guide.md "Limits"): JSON bodies 1 MiB, multipart (CSV) bodies 50 MiB (413);
definitions at most `MAX_DEPTH` nested groups, `MAX_LEAVES` criteria and groups (400); regexes
must compile with RE2 (400). In-process with the memory publisher (tests/unit/api/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from api.main import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_UPLOAD_BYTES
from cohorts.vocab import MAX_DEPTH, MAX_LEAVES

from .conftest import Api, cohort_filters, person_filters


def _leaf(n: int = 0) -> dict[str, Any]:
    return {"type": "person", "key": "email", "operator": "exact", "value": f"p{n}@acme.com"}


def _nested(depth: int) -> dict[str, Any]:
    """`depth` groups, one inside the other, a leaf in the innermost."""
    node: dict[str, Any] = {"type": "AND", "values": [_leaf()]}
    for _ in range(depth - 1):
        node = {"type": "AND", "values": [node]}
    return {"properties": node}


def _wide(leaves: int) -> dict[str, Any]:
    return {"properties": {"type": "OR", "values": [_leaf(n) for n in range(leaves)]}}


def _refused(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"type", "code", "detail", "attr"}, body
    if code is not None:
        assert body["code"] == code, body
    return body


def _nothing_written(api: Api, before: int) -> None:
    assert len(api.publisher.catalog) == before


def test_json_body_one_byte_over_the_limit_is_413_and_at_the_limit_is_read(api: Api) -> None:
    padding = "x" * (DEFAULT_MAX_BODY_BYTES - 40)
    at_limit = f'{{"name": "n", "description": "{padding}"}}'.encode()
    at_limit += b" " * (DEFAULT_MAX_BODY_BYTES - len(at_limit))
    before = len(api.publisher.catalog)
    over = api.post("cohorts/", content=at_limit + b" ", headers={"Content-Type": "application/json"})
    _refused(over, 413, "request_too_large")
    _nothing_written(api, before)
    # At the limit the body is read; it is then refused for what it says, not for its size.
    assert api.post("cohorts/", content=at_limit, headers={"Content-Type": "application/json"}).status_code != 413


def test_streamed_json_body_without_length_over_the_limit_is_413(api: Api) -> None:
    def chunks():
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 65_536
        yield b'"}'

    _refused(api.patch("cohorts/1/", content=chunks(), headers={"Content-Type": "application/json"}), 413)


def test_csv_upload_over_the_upload_limit_is_413_and_creates_nothing(api: Api) -> None:
    big = b"person_id\n" + b"0" * (DEFAULT_MAX_UPLOAD_BYTES + 1)
    before = len(api.publisher.catalog)
    response = api.post(
        "cohorts/", data={"name": "big", "is_static": "true"}, files={"csv": ("a.csv", big, "text/csv")}
    )
    _refused(response, 413, "request_too_large")
    _nothing_written(api, before)


def test_csv_of_garbage_bytes_is_400_not_500(api: Api) -> None:
    for payload in (b"\xff\xfe\x00garbage", b"person_id\n\x00\x00", b'"unclosed\n', b""):
        response = api.post("cohorts/", data={"name": "bad", "is_static": "true"}, files={"csv": ("a.csv", payload)})
        assert response.status_code in (201, 400), (payload, response.text)
        if response.status_code == 400:
            _refused(response, 400)


@pytest.mark.parametrize("pattern", ["(", "[a-", "a**", "(?<=x)y", "x{1001}", "(a{999}){999}", "\\"])
@pytest.mark.parametrize("operator", ["regex", "not_regex"])
def test_invalid_regex_is_refused_at_save_on_create_and_patch(api: Api, pattern: str, operator: str) -> None:
    before = len(api.publisher.catalog)
    body = _refused(
        api.post("cohorts/", json={"name": "r", "filters": person_filters("email", operator, pattern)}), 400
    )
    assert "regex" in body["detail"].lower(), body
    _nothing_written(api, before)
    cohort = api.create(name="ok", filters=person_filters())
    response = api.patch(f"cohorts/{cohort['id']}/", json={"filters": person_filters("email", operator, pattern)})
    _refused(response, 400)
    assert api.get(f"cohorts/{cohort['id']}/").json()["filters"] == cohort["filters"]


def test_invalid_regex_in_a_behavioral_event_filter_is_refused_at_save(api: Api) -> None:
    leaf = {
        "type": "behavioral",
        "key": "$pageview",
        "value": "performed_event",
        "event_type": "events",
        "time_value": 30,
        "time_interval": "day",
        "event_filters": [{"type": "event", "key": "path", "operator": "regex", "value": "(unclosed"}],
    }
    filters = {"properties": {"type": "AND", "values": [leaf]}}
    _refused(api.post("cohorts/", json={"name": "r", "filters": filters}), 400)


def test_depth_at_the_limit_is_saved_and_one_deeper_is_refused(api: Api) -> None:
    assert api.post("cohorts/", json={"name": "deep", "filters": _nested(MAX_DEPTH)}).status_code == 201
    body = _refused(api.post("cohorts/", json={"name": "deeper", "filters": _nested(MAX_DEPTH + 1)}), 400)
    assert str(MAX_DEPTH) in body["detail"]


def test_width_at_the_limit_is_saved_and_one_wider_is_refused(api: Api) -> None:
    assert api.post("cohorts/", json={"name": "wide", "filters": _wide(MAX_LEAVES)}).status_code == 201
    body = _refused(api.post("cohorts/", json={"name": "wider", "filters": _wide(MAX_LEAVES + 1)}), 400)
    assert str(MAX_LEAVES) in body["detail"]


def test_too_many_groups_is_refused(api: Api) -> None:
    groups = [{"type": "AND", "values": [_leaf(n)]} for n in range(MAX_LEAVES)]
    filters = {"properties": {"type": "OR", "values": groups}}
    _refused(api.post("cohorts/", json={"name": "groups", "filters": filters}), 400)


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_json_nested_beyond_any_limit_is_400_not_a_crash(api: Api, depth: int) -> None:
    raw = '{"name": "n", "filters": {"properties": ' + '{"type": "AND", "values": [' * depth
    raw += "]}" * depth + "}}"
    if len(raw) > DEFAULT_MAX_BODY_BYTES:
        _refused(api.post("cohorts/", content=raw.encode(), headers={"Content-Type": "application/json"}), 413)
    else:
        _refused(api.post("cohorts/", content=raw.encode(), headers={"Content-Type": "application/json"}), 400)


def test_a_cohort_of_another_project_cannot_be_referenced(api: Api) -> None:
    from api.admin import create_key, create_project

    other = create_project(api.settings, "Other")
    other_key = create_key(api.settings, other["id"], "bob@other.com", ["*"])["key"]
    theirs = api.request("POST", "cohorts/", key=other_key, project=other["id"], json={"name": "theirs"}).json()
    before = len(api.publisher.catalog)
    _refused(api.post("cohorts/", json={"name": "mine", "filters": cohort_filters(theirs["id"])}), 400)
    _nothing_written(api, before)
