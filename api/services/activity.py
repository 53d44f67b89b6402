"""The cohort activity log's entries (reference §6): built with the change they describe.

An entry becomes an `ActivityRecord` on the api log, produced in the same Kafka transaction as
the change it records, so both or neither are seen (`api.views.activity` folds and reads them).
Change detection follows PostHog's `dict_changes_between` over the tracked fields; an
"updated" entry without changes is never written. The entry id is fixed by the writer, so every
api process shows the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from api.api_log import ActivityRecord
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
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock

    def record(
        self,
        *,
        team_id: int,
        item_id: int,
        user: dict[str, Any] | None,
        activity: str,
        changes: list[dict[str, Any]] | None,
        name: str | None,
    ) -> ActivityRecord:
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
        return ActivityRecord(team_id, item_id, entry)
