"""Persons of a cohort (reference §1.8): members, filtered, searched, ordered, shaped.

Members come from the static list or the membership view; their details from the persons view
(a member the api has no person record for is shown with empty properties). Order is
`created_at DESC, id DESC`, persons without a creation time last. A dynamic cohort's page
without filters or search reads only its rows from the members' order index
(`api.views.member_order`, which must keep `_order`); any other page reads every member.
Pure over the views.
"""

from __future__ import annotations

import csv
import heapq
import io
import re
from collections.abc import Callable
from typing import Any

import orjson

from api.errors import validation
from api.views.cohorts import CohortReader
from api.views.member_order import MemberOrder
from api.views.persons import PersonsView
from cohorts.properties import match_property
from cohorts.timestamps import format_iso
from cohorts.vocab import PERSON_OPERATORS

__all__ = ["CSV_EXPORT_LIMIT", "SHORT_PAGE_END", "CohortPersons", "parse_properties", "persons_csv"]

#: PostHog's CSV_EXPORT_LIMIT (reference §1.8, probably 300000).
CSV_EXPORT_LIMIT = 300_000

#: A page that ends at most this far into the order index is "short" (`CohortPersons.is_short`).
SHORT_PAGE_END = 10_000

_DISPLAY_PROPERTIES = ("email", "name", "username")
_UUID_LIKE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_UNPARSABLE = "Properties are unparsable!"


def parse_properties(raw: str | None) -> list[dict[str, Any]]:
    """The `properties` parameter: a JSON list of property filters (person or cohort)."""
    if raw is None or raw == "":
        return []
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise validation(_UNPARSABLE, "properties") from None
    if isinstance(data, dict) and "values" in data:
        data = data["values"]
    if not isinstance(data, list):
        raise validation(_UNPARSABLE, "properties")
    filters = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise validation(_UNPARSABLE, "properties")
        kind = item.get("type", "person")
        if kind == "cohort":
            value = item.get("value")
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise validation("A cohort property filter needs an integer cohort id as value.", "properties")
            filters.append({"type": "cohort", "value": value, "negation": bool(item.get("negation"))})
            continue
        if kind != "person":
            raise validation(f"Unsupported property filter type '{kind}'. Use 'person' or 'cohort'.", "properties")
        operator = item.get("operator") or "exact"
        if operator not in PERSON_OPERATORS:
            raise validation(f"Unsupported operator '{operator}'.", "properties")
        filters.append({"type": "person", "key": item["key"], "operator": operator, "value": item.get("value")})
    return filters


def _display_name(person_id: str, properties: dict[str, Any], distinct_ids: list[str]) -> str:
    for name in _DISPLAY_PROPERTIES:
        value = properties.get(name)
        if isinstance(value, str) and value:
            return value
    for distinct_id in distinct_ids:
        if not _UUID_LIKE.match(distinct_id):
            return distinct_id
    return person_id


class CohortPersons:
    def __init__(
        self, reader: CohortReader, persons: PersonsView, order: MemberOrder, clock: Callable[[], int]
    ) -> None:
        self._reader = reader
        self._persons = persons
        self._order = order
        self._clock = clock

    def is_short(self, row: dict[str, Any], *, filters: list[dict[str, Any]], search: str | None, end: int) -> bool:
        """Whether `page` reads only the order index, and at most `SHORT_PAGE_END` entries of it."""
        return _reads_index(row, filters, search) and end <= SHORT_PAGE_END

    def page(
        self,
        row: dict[str, Any],
        *,
        filters: list[dict[str, Any]],
        search: str | None,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        team_id = row["team_id"]
        now_us = self._clock()
        needle = (search or "").strip().lower()
        if _reads_index(row, filters, search):
            return self._indexed_page(team_id, row["id"], limit=limit, offset=offset)
        members = self._reader.members(row)
        found: list[tuple[dict[str, Any], list[str] | None]] = []
        for person_id, record in zip(members, self._persons.get_many(team_id, members), strict=True):
            if record is None:
                record = {"id": person_id, "properties": {}, "is_identified": None, "created_at_us": None}
            if filters and not self._matches(team_id, record, filters, now_us):
                continue
            distinct_ids = None
            if needle:  # only a search reads every member's distinct ids; a page reads its own
                distinct_ids = self._persons.distinct_ids(team_id, person_id)
                if not _search_hit(needle, record, distinct_ids):
                    continue
            found.append((record, distinct_ids))
        if offset + limit < len(found):
            page = heapq.nlargest(offset + limit, found, key=_order)[offset:]
        else:
            page = sorted(found, key=_order, reverse=True)[offset : offset + limit]
        return [
            self._shape(
                record,
                ids if ids is not None else self._persons.distinct_ids(team_id, record["id"]),
                self._reader.iso,
            )
            for record, ids in page
        ]

    def _indexed_page(self, team_id: int, cohort_id: int, *, limit: int, offset: int) -> list[dict[str, Any]]:
        """A page of a dynamic cohort without filters or search: only its own rows, read from the
        members' order index (`api.views.member_order`), which holds this module's `_order`."""
        page = self._order.page(team_id, cohort_id, offset=offset, limit=limit)
        records, distinct_ids = self._persons.get_many_with_ids(team_id, page)
        shaped = []
        for person_id, record, ids in zip(page, records, distinct_ids, strict=True):
            if record is None:
                record = {"id": person_id, "properties": {}, "is_identified": None, "created_at_us": None}
            # Each person has a creation time of its own: the reader's memo of times would only churn.
            shaped.append(self._shape(record, ids, format_iso))
        return shaped

    def _matches(self, team_id: int, record: dict[str, Any], filters: list[dict[str, Any]], now_us: int) -> bool:
        for item in filters:
            if item["type"] == "cohort":
                other = self._reader.row(team_id, item["value"])
                member = other is not None and self._reader.is_member(other, record["id"])
                if member == item["negation"]:
                    return False
            elif not match_property(item["operator"], item["value"], record["properties"], item["key"], now_us):
                return False
        return True

    @staticmethod
    def _shape(record: dict[str, Any], distinct_ids: list[str], iso: Callable[[int], str]) -> dict[str, Any]:
        person_id = record["id"]
        created = record.get("created_at_us")
        return {
            "id": person_id,
            "uuid": person_id,
            "type": "person",
            "name": _display_name(person_id, record["properties"], distinct_ids),
            "distinct_ids": distinct_ids[:10],
            "properties": record["properties"],
            "created_at": None if created is None else iso(created),
            "last_seen_at": None,
            "is_identified": record.get("is_identified"),
            "matched_recordings": [],
            "value_at_data_point": None,
        }


def _reads_index(row: dict[str, Any], filters: list[dict[str, Any]], search: str | None) -> bool:
    return not filters and not (search or "").strip() and not row["is_static"]


def _order(item: tuple[dict[str, Any], Any]) -> tuple[int, str]:
    """`created_at DESC, id DESC` as an ascending key; persons without a creation time last."""
    return item[0].get("created_at_us") or -1, item[0]["id"]


def _search_hit(needle: str, record: dict[str, Any], distinct_ids: list[str]) -> bool:
    if needle in record["id"].lower():
        return True
    if any(needle in distinct_id.lower() for distinct_id in distinct_ids):
        return True
    return any(isinstance(value, str) and needle in value.lower() for value in record["properties"].values())


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}", v, out)
    else:
        out[prefix] = "" if value is None else str(value)


def persons_csv(results: list[dict[str, Any]]) -> str:
    """Reference §1.8: email moved to the top level, some keys dropped, nested values flattened
    into dotted columns, header sorted (as rest_framework_csv renders it)."""
    rows = []
    for person in results:
        shaped = {
            key: value
            for key, value in person.items()
            if key not in ("value_at_data_point", "uuid", "type", "is_identified", "matched_recordings")
        }
        email = person["properties"].get("email")
        if email is not None:
            shaped["email"] = email
        flat: dict[str, str] = {}
        _flatten("", shaped, flat)
        rows.append(flat)
    header = sorted({column for row in rows for column in row})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return buffer.getvalue()
