"""CSV reading rules of reference §3.2, without the api around them."""

from __future__ import annotations

import pytest

from api.errors import ApiError
from api.services.csv_import import parse_csv


@pytest.mark.parametrize(
    ("content", "kind", "values"),
    [
        (b"person_id\np1\n p2 \n\n", "person_id", ["p1", "p2"]),
        (b"Person .id\np1\n", "person_id", ["p1"]),
        (b"email\na@x.com\n", "email", ["a@x.com"]),
        (b"User ID\nu1\n0\n", "distinct_id", ["User ID", "u1", "0"]),
        (b"\n\nd1\n", "distinct_id", ["d1"]),
        (b"name,distinct-id,email\nA,d1,a@x\nB\n", "distinct_id", ["d1"]),
        (b"name,e-mail\nA,a@x\n", "email", ["a@x"]),
        ("\ufeffperson_id\np1\n".encode(), "person_id", ["p1"]),
    ],
)
def test_id_column_and_kind(content: bytes, kind: str, values: list[str]) -> None:
    parsed = parse_csv(content)
    assert (parsed.kind, parsed.values) == (kind, values)


def test_header_only_single_person_id_column_has_no_ids() -> None:
    with pytest.raises(ApiError) as raised:
        parse_csv(b"person_id\n")
    assert raised.value.attr == "csv"
    assert raised.value.detail.startswith("CSV file contains no valid person IDs")
