"""File-system "recently viewed" rows as every api process reads them (design §8, reference §4).

One row per (project, user, type, ref); the latest api-log record for it wins, so a repeat view
refreshes `viewed_at`. Rows are read newest first by `viewed_at`, then by the record's offset,
so views within one clock tick keep their order.

Layout:
    fsview:<team>:<user>:<type>:<ref>  -> {type, ref, viewed_at_us, seq}
"""

from __future__ import annotations

from typing import Any

from api.store import Batch, Store, key
from cohorts.timestamps import format_iso

__all__ = ["FileSystemView", "apply_view"]


def apply_view(batch: Batch, team_id: int, user_id: int, type_: str, ref: str, viewed_at_us: int, seq: int) -> None:
    batch.put(
        key("fsview", team_id, user_id, type_, ref),
        {"type": type_, "ref": ref, "viewed_at_us": viewed_at_us, "seq": seq},
    )


class FileSystemView:
    def __init__(self, store: Store) -> None:
        self._store = store

    def recent(self, team_id: int, user_id: int, type_: str | None, limit: int | None) -> list[dict[str, Any]]:
        rows = [row for _, row in self._store.scan(key("fsview", team_id, user_id) + b":")]
        if type_ is not None:
            rows = [row for row in rows if row["type"] == type_]
        rows.sort(key=lambda r: (r["viewed_at_us"], r["seq"]), reverse=True)
        if limit is not None:
            rows = rows[:limit]
        return [{"type": r["type"], "ref": r["ref"], "viewed_at": format_iso(r["viewed_at_us"])} for r in rows]
