"""The cohort activity log (reference §6): entries written with the change they describe.

An entry is written into the caller's `Batch`, so it commits atomically with the cohort change
it records. Entries are ordered by a store-wide sequence number (not the clock, which tests
freeze), newest first. Change detection follows PostHog's `dict_changes_between` over the
tracked fields; an "updated" entry without changes is never written.

Layout:
    meta:activity_seq                   -> int
    act:<team>:<seq>                    -> entry
    actitem:<team>:<cohort id>:<seq>    -> entry
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from api.store import Batch, Store, key
from cohorts.timestamps import format_iso

__all__ = ["TRACKED_FIELDS", "ActivityLog", "changes_between"]

#: Fields whose changes an "updated" entry lists (reference §6, in `Cohort.to_dict` order).
TRACKED_FIELDS = ("name", "description", "deleted", "filters", "query", "groups", "is_static", "cohort_type")


def changes_between(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    changes = []
    for name in TRACKED_FIELDS:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None and new is not None:
            action = "created"
        elif old is not None and new is None:
            action = "deleted"
        else:
            action = "changed"
        changes.append({"type": "Cohort", "action": action, "field": name, "before": old, "after": new})
    return changes


class ActivityLog:
    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self._store = store
        self._clock = clock

    def record(
        self,
        batch: Batch,
        *,
        team_id: int,
        item_id: int,
        user: dict[str, Any] | None,
        activity: str,
        changes: list[dict[str, Any]] | None,
        name: str | None,
    ) -> None:
        seq = int(batch.get(b"meta:activity_seq") or 0) + 1
        batch.put(b"meta:activity_seq", seq)
        entry = {
            "id": str(uuid.uuid4()),
            "user": None if user is None else {"first_name": user.get("first_name"), "email": user.get("email")},
            "activity": activity,
            "scope": "Cohort",
            "item_id": str(item_id),
            "detail": {"changes": changes, "trigger": None, "name": name, "short_id": None, "type": None},
            "created_at": format_iso(self._clock()),
            "is_system": False,
            "was_impersonated": False,
            "client": None,
        }
        batch.put(key("act", team_id, seq), entry)
        batch.put(key("actitem", team_id, item_id, seq), entry)

    def page(self, team_id: int, item_id: int | None, page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of entries, newest first, and the total count."""
        prefix = (key("act", team_id) if item_id is None else key("actitem", team_id, item_id)) + b":"
        total = self._store.count(prefix)
        start = (page - 1) * limit
        if start >= total:
            return [], total
        rows = self._store.scan(prefix, reverse=True, limit=start + limit)
        return [entry for _, entry in rows[start:]], total
