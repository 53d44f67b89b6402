"""The cohort activity log as every api process reads it (reference §6), folded from the api log.

An entry's sequence number is the offset of its api-log record, so entries are ordered the same
way in every process (not by the clock, which tests freeze), newest first.

Layout:
    act:<team>:<seq>                    -> entry
    actitem:<team>:<cohort id>:<seq>    -> entry

Never: build entries (that is `services.activity`, with the change it describes).
"""

from __future__ import annotations

from typing import Any

from api.store import Batch, Store, key

__all__ = ["ActivityView", "apply_activity"]


def apply_activity(batch: Batch, team_id: int, cohort_id: int, seq: int, entry: dict[str, Any]) -> None:
    """Idempotent: a replayed record rewrites the same two keys."""
    batch.put(key("act", team_id, seq), entry)
    batch.put(key("actitem", team_id, cohort_id, seq), entry)


class ActivityView:
    def __init__(self, store: Store) -> None:
        self._store = store

    def page(self, team_id: int, item_id: int | None, page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of entries, newest first, and the total count."""
        prefix = (key("act", team_id) if item_id is None else key("actitem", team_id, item_id)) + b":"
        total = self._store.count(prefix)
        start = (page - 1) * limit
        if start >= total:
            return [], total
        rows = self._store.scan(prefix, reverse=True, limit=start + limit)
        return [entry for _, entry in rows[start:]], total
