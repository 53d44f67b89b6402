"""Static-cohort membership as the api stores it (reference §3.3): the authoritative list.

Folded from the api log's `static_members` records (`api.api_log`), which the api produces in
the same Kafka transaction as the matching `static_add` / `static_remove` control messages for
the worker. Adding a member twice or removing a non-member changes nothing, so a replay is
harmless. The count moves with each change, so it is exact without a scan.

Layout:
    static:<team>:<cohort>:<person>  -> person id
    staticcount:<team>:<cohort>      -> int
"""

from __future__ import annotations

from api.store import Batch, Store, key

__all__ = ["StaticMembersView", "add_member", "remove_member"]


def add_member(batch: Batch, team_id: int, cohort_id: int, person_id: str) -> bool:
    """Add one member; False if it already was one."""
    member_key = key("static", team_id, cohort_id, person_id)
    if batch.get(member_key) is not None:
        return False
    batch.put(member_key, person_id)
    count_key = key("staticcount", team_id, cohort_id)
    batch.put(count_key, int(batch.get(count_key) or 0) + 1)
    return True


def remove_member(batch: Batch, team_id: int, cohort_id: int, person_id: str) -> bool:
    """Remove one member; False if it was not one."""
    member_key = key("static", team_id, cohort_id, person_id)
    if batch.get(member_key) is None:
        return False
    batch.delete(member_key)
    count_key = key("staticcount", team_id, cohort_id)
    batch.put(count_key, max(0, int(batch.get(count_key) or 0) - 1))
    return True


class StaticMembersView:
    def __init__(self, store: Store) -> None:
        self._store = store

    def count(self, team_id: int, cohort_id: int) -> int:
        return int(self._store.get(key("staticcount", team_id, cohort_id)) or 0)

    def members(self, team_id: int, cohort_id: int) -> list[str]:
        return [v for _, v in self._store.scan(key("static", team_id, cohort_id) + b":")]

    def is_member(self, team_id: int, cohort_id: int, person_id: str) -> bool:
        return self._store.get(key("static", team_id, cohort_id, person_id)) is not None
