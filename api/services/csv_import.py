"""Reading a static cohort's CSV upload (reference §3.2): bytes in, a list of ids of one kind out.

Pure: no lookups. Resolving the ids to persons of the project is `StaticMembers`' job. Every
problem is a 400 with attr "csv" and PostHog's text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Literal

from api.errors import ApiError, validation

__all__ = ["CsvIds", "parse_csv"]

IdKind = Literal["person_id", "distinct_id", "email"]

_PERSON_ID_HEADERS = ("person_id", "person-id", "person .id")
_DISTINCT_ID_HEADERS = ("distinct_id", "distinct-id")
_EMAIL_HEADERS = ("email", "e-mail")

_ENCODING = "CSV file encoding is not supported. Please save your file as UTF-8 and try again."
_EMPTY = "CSV file is empty. Please upload a CSV file with at least one row of data."
_NO_IDS = (
    "CSV file contains no valid person IDs, distinct IDs, or email addresses. Please ensure your file has data rows "
    "with person IDs, distinct IDs, or email addresses."
)
_INVALID = "CSV file format is invalid. Please check your file format and try again."


@dataclass(frozen=True, slots=True)
class CsvIds:
    kind: IdKind
    values: list[str]


def _fail(detail: str) -> ApiError:
    return validation(detail, "csv")


def _kind_of(header: str) -> IdKind | None:
    name = header.strip().lower()
    if name in _PERSON_ID_HEADERS:
        return "person_id"
    if name in _DISTINCT_ID_HEADERS:
        return "distinct_id"
    if name in _EMAIL_HEADERS:
        return "email"
    return None


def parse_csv(data: bytes) -> CsvIds:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _fail(_ENCODING) from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        raise _fail(_INVALID) from None
    while rows and not rows[0]:  # blank lines; a row of empty cells is a row (",,," -> no ids)
        rows.pop(0)
    if not rows:
        raise _fail(_EMPTY)
    header = rows[0]
    non_blank = [i for i, cell in enumerate(header) if cell.strip()]
    if len(non_blank) <= 1:
        column = non_blank[0] if non_blank else 0
        kind = _kind_of(header[column]) if non_blank else None
        if kind in ("person_id", "email"):
            body = rows[1:]
        else:
            kind, body = "distinct_id", rows
    else:
        column = -1
        kind = None
        for wanted in ("person_id", "distinct_id", "email"):
            found = next((i for i in non_blank if _kind_of(header[i]) == wanted), None)
            if found is not None:
                column, kind = found, wanted
                break
        if kind is None:
            names = ", ".join(f"'{header[i].strip()}'" for i in non_blank) or "none"
            raise _fail(
                "Multi-column CSV must contain at least one column with a supported ID header: 'person_id', "
                "'Person .id' (PostHog export format), 'distinct_id', 'distinct-id', or 'email'. "
                f"Found columns: {names}"
            )
        body = rows[1:]
    values = []
    for row in body:
        if len(row) <= column:
            continue
        value = row[column].strip()
        if value:
            values.append(value)
    if not values:
        raise _fail(_NO_IDS)
    return CsvIds(kind, values)
