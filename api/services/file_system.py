"""File-system "recently viewed" log (design §8, reference §4).

One row per (project, user, type, ref); a repeat view refreshes `viewed_at`. Every retrieve of a
cohort logs one for the calling user (a departure from PostHog, design §8), and clients can log
and read views through `file_system/log_view/`. Rows are ordered newest first by `viewed_at`,
then by a sequence number so views within one clock tick keep their order.

Layout:
    meta:view_seq                               -> int
    fsview:<team>:<user>:<type>:<ref>           -> {type, ref, viewed_at_us, seq}
"""

from __future__ import annotations

import threading
from typing import Any

from api.store import Store, key
from cohorts.timestamps import format_iso

__all__ = ["FileSystemViews"]


class FileSystemViews:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()

    def log(self, team_id: int, user_id: int, type_: str, ref: str, viewed_at_us: int) -> None:
        with self._lock:
            batch = self._store.batch()
            seq = int(batch.get(b"meta:view_seq") or 0) + 1
            batch.put(b"meta:view_seq", seq)
            batch.put(
                key("fsview", team_id, user_id, type_, ref),
                {"type": type_, "ref": ref, "viewed_at_us": viewed_at_us, "seq": seq},
            )
            batch.commit()

    def recent(self, team_id: int, user_id: int, type_: str | None, limit: int | None) -> list[dict[str, Any]]:
        rows = [row for _, row in self._store.scan(key("fsview", team_id, user_id) + b":")]
        if type_ is not None:
            rows = [row for row in rows if row["type"] == type_]
        rows.sort(key=lambda r: (r["viewed_at_us"], r["seq"]), reverse=True)
        if limit is not None:
            rows = rows[:limit]
        return [{"type": r["type"], "ref": r["ref"], "viewed_at": format_iso(r["viewed_at_us"])} for r in rows]
