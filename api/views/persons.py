"""The persons the api knows, folded from `clickhouse_person` and `clickhouse_person_distinct_id`.

"Persons of the team" (reference §1.9, §1.10, §3.2) are the persons this view has seen on the
person topic. PostHog's formats (reference §9.3, §9.4): `properties` is a JSON string or an
object, flags are 0/1, and the highest `version` wins (a record with an equal or lower version
is a replay and changes nothing). A deleted person stays as a tombstone so an older record
cannot bring it back; it is never "of the team".

Layout:
    person:<team>:<person>              -> {id, team_id, properties, is_identified, is_deleted, version, created_at_us}
    did:<team>:<distinct id>            -> {distinct_id, person_id, version, is_deleted}
    pdids:<team>:<person>               -> [distinct id, ...]   (index: a person's distinct ids)
    email:<team>:<email>:<person>       -> person id            (index for CSV emails)

A person's distinct ids are one row, in the order of their key parts (`key(distinct_id)`), so a
persons page reads those of its 100 persons in one multi-get (a prefix scan for each was a quarter
of the page's time, benchmark 5). Data dirs folded before it held one `pdid:<team>:<person>:<id>`
row per distinct id; `ensure_distinct_id_lists` rewrites them once.

A person record that changes its place in persons pages also moves its entries in
`api.views.member_order` (in the same batch).

Never: write anything but these keys (and, through `member_order.reorder`, that index);
evaluate cohort criteria.
"""

from __future__ import annotations

import bisect
from typing import Any

import orjson

from api.store import Batch, Store, key
from api.views import member_order
from cohorts.timestamps import TimestampError, parse_timestamp

__all__ = ["PersonRecordError", "PersonsView", "apply_distinct_id", "apply_person", "ensure_distinct_id_lists"]


class PersonRecordError(ValueError):
    """A person or distinct-id record that cannot be folded (dead-lettered by the consumer)."""


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise PersonRecordError(f"{name} must be an integer")


def _as_flag(value: Any) -> bool:
    if value in (None, 0, "0", False, ""):
        return False
    return value in (1, "1", True, "true")


def _decode(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise PersonRecordError("empty value")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PersonRecordError("not JSON") from exc
    if not isinstance(data, dict):
        raise PersonRecordError("not a JSON object")
    return data


def _email_of(properties: dict[str, Any]) -> str | None:
    email = properties.get("email")
    return email if isinstance(email, str) and email else None


def apply_person(batch: Batch, raw: bytes | None) -> None:
    """Fold one `clickhouse_person` message."""
    data = _decode(raw)
    person_id = data.get("id")
    if not isinstance(person_id, str) or not person_id:
        raise PersonRecordError("id must be a non-empty string")
    team_id = _as_int(data.get("team_id"), "team_id")
    if team_id < 0:
        raise PersonRecordError("team_id must not be negative")
    version = _as_int(data.get("version", 0), "version")
    properties = data.get("properties") or {}
    if isinstance(properties, str):
        try:
            properties = orjson.loads(properties) if properties else {}
        except orjson.JSONDecodeError as exc:
            raise PersonRecordError("properties is not JSON") from exc
    if not isinstance(properties, dict):
        raise PersonRecordError("properties must be an object")
    created_at_us = None
    if data.get("created_at"):
        try:
            created_at_us = parse_timestamp(data["created_at"])
        except TimestampError as exc:
            raise PersonRecordError(str(exc)) from exc
    record_key = key("person", team_id, person_id)
    current = batch.get(record_key)
    if current is not None and current["version"] >= version:
        return
    if current is not None and not current["is_deleted"]:
        old_email = _email_of(current["properties"])
        if old_email is not None:
            batch.delete(key("email", team_id, old_email, person_id))
    is_deleted = _as_flag(data.get("is_deleted"))
    record = {
        "id": person_id,
        "team_id": team_id,
        "properties": {} if is_deleted else properties,
        "is_identified": _as_flag(data.get("is_identified")),
        "is_deleted": is_deleted,
        "version": version,
        "created_at_us": created_at_us if created_at_us is not None else (current or {}).get("created_at_us"),
    }
    batch.put(record_key, record)
    member_order.reorder(batch, team_id, person_id, record)
    email = _email_of(record["properties"])
    if email is not None and not is_deleted:
        batch.put(key("email", team_id, email, person_id), person_id)


def apply_distinct_id(batch: Batch, raw: bytes | None) -> None:
    """Fold one `clickhouse_person_distinct_id` message: the highest version per distinct id wins."""
    data = _decode(raw)
    distinct_id = data.get("distinct_id")
    person_id = data.get("person_id")
    if not isinstance(distinct_id, str) or not isinstance(person_id, str) or not person_id:
        raise PersonRecordError("distinct_id and person_id must be strings")
    team_id = _as_int(data.get("team_id"), "team_id")
    if team_id < 0:
        raise PersonRecordError("team_id must not be negative")
    version = _as_int(data.get("version", 0), "version")
    record_key = key("did", team_id, distinct_id)
    current = batch.get(record_key)
    if current is not None and current["version"] >= version:
        return
    if current is not None and not current["is_deleted"]:
        _unlist(batch, team_id, current["person_id"], distinct_id)
    is_deleted = _as_flag(data.get("is_deleted"))
    batch.put(
        record_key, {"distinct_id": distinct_id, "person_id": person_id, "version": version, "is_deleted": is_deleted}
    )
    if not is_deleted:
        _list(batch, team_id, person_id, distinct_id)


def _list(batch: Batch, team_id: int, person_id: str, distinct_id: str) -> None:
    list_key = key("pdids", team_id, person_id)
    ids = list(batch.get(list_key) or ())
    at = bisect.bisect_left(ids, key(distinct_id), key=key)
    if at == len(ids) or ids[at] != distinct_id:
        ids.insert(at, distinct_id)
        batch.put(list_key, ids)


def _unlist(batch: Batch, team_id: int, person_id: str, distinct_id: str) -> None:
    list_key = key("pdids", team_id, person_id)
    ids = [d for d in batch.get(list_key) or () if d != distinct_id]
    if ids:
        batch.put(list_key, ids)
    else:
        batch.delete(list_key)


_LISTS_MARKER = b"meta:distinct_id_lists"
_MIGRATE_BATCH = 5_000


def ensure_distinct_id_lists(store: Store) -> int:
    """Rewrite the `pdid:` rows of a data dir folded before `pdids:` lists existed, once.

    Returns how many distinct ids were listed (0 for a new or already rewritten data dir). The
    lists are built from the `did:` records, as the fold builds them; the keys of those records
    are parsed here only for their leading integer part (the team)."""
    if store.get(_LISTS_MARKER) is not None:
        return 0
    listed = 0
    batch = store.batch()
    for raw_key, raw in store.each(b"did:"):
        row = orjson.loads(raw)
        if not row["is_deleted"]:
            _list(batch, int(raw_key.split(b":", 2)[1]), row["person_id"], row["distinct_id"])
            listed += 1
        if len(batch) >= _MIGRATE_BATCH:
            batch.commit()
    for raw_key, _ in store.each(b"pdid:"):
        batch.delete(raw_key)
        if len(batch) >= _MIGRATE_BATCH:
            batch.commit()
    batch.put(_LISTS_MARKER, 1)
    batch.commit()
    return listed


class PersonsView:
    """Reads over the persons fold. A deleted person is reported as unknown."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, team_id: int, person_id: str) -> dict[str, Any] | None:
        record = self._store.get(key("person", team_id, person_id))
        if record is None or record["is_deleted"]:
            return None
        return record

    def get_many(self, team_id: int, person_ids: list[str]) -> list[dict[str, Any] | None]:
        """`get` of each person, in order, in one store read."""
        prefix = key("person", team_id) + b":"
        records = self._store.get_many([prefix + key(person_id) for person_id in person_ids])
        return [None if record is None or record["is_deleted"] else record for record in records]

    def exists(self, team_id: int, person_id: str) -> bool:
        return self.get(team_id, person_id) is not None

    def distinct_ids(self, team_id: int, person_id: str) -> list[str]:
        return self._store.get(key("pdids", team_id, person_id)) or []

    def get_many_with_ids(
        self, team_id: int, person_ids: list[str]
    ) -> tuple[list[dict[str, Any] | None], list[list[str]]]:
        """`get_many` and `distinct_ids` of each of the persons, in one multi-get (a persons page)."""
        person_prefix, ids_prefix = key("person", team_id) + b":", key("pdids", team_id) + b":"
        parts = [key(person_id) for person_id in person_ids]
        values = self._store.get_many([person_prefix + part for part in parts] + [ids_prefix + part for part in parts])
        records, ids = values[: len(parts)], values[len(parts) :]
        return [None if r is None or r["is_deleted"] else r for r in records], [found or [] for found in ids]

    def by_distinct_id(self, team_id: int, distinct_id: str) -> str | None:
        record = self._store.get(key("did", team_id, distinct_id))
        if record is None or record["is_deleted"]:
            return None
        return record["person_id"] if self.exists(team_id, record["person_id"]) else None

    def by_email(self, team_id: int, email: str) -> list[str]:
        ids = [v for _, v in self._store.scan(key("email", team_id, email) + b":")]
        return [person_id for person_id in ids if self.exists(team_id, person_id)]

    def all(self, team_id: int) -> list[dict[str, Any]]:
        """Every known, non-deleted person of the team (for a one-time static materialisation)."""
        return [row for _, row in self._store.scan(key("person", team_id) + b":") if not row["is_deleted"]]
