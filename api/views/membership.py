"""Dynamic-cohort membership, folded from `cohort_membership_changed` (design §3).

Per (cohort, person) the latest change wins, ordered by (version, last_updated): a duplicate or
an older change (replay, reordering across partitions) changes nothing, so the fold is
idempotent. A per-cohort counter of entered persons moves with each applied flip, in the same
batch, so `count` never needs a scan; so does the members' persons-page order
(`api.views.member_order`).

Layout:
    mem:<team>:<cohort>:<person>  -> {person_id, status, version, last_updated_us}
    memcount:<team>:<cohort>      -> int (persons whose latest status is "entered")

Never: write static membership (that is the static-members service's), or evaluate criteria.
"""

from __future__ import annotations

from api.store import Batch, Store, key
from api.views import member_order
from cohorts.timestamps import parse_timestamp
from cohorts.wire import MembershipChange

__all__ = ["MembershipView", "apply_change"]


def apply_change(batch: Batch, raw: bytes | None) -> None:
    """Fold one membership change; raises WireError / TimestampError for a malformed one."""
    if raw is None:
        return
    change = MembershipChange.from_bytes(raw)
    if change.status not in ("entered", "left"):
        raise ValueError(f"unknown status {change.status!r}")
    if not isinstance(change.team_id, int) or not isinstance(change.cohort_id, int):
        raise ValueError("team_id and cohort_id must be integers")
    if not isinstance(change.version, int) or change.team_id < 0 or change.cohort_id < 0:
        raise ValueError("version must be an integer; ids must not be negative")
    if not isinstance(change.person_id, str) or not change.person_id:
        raise ValueError("person_id must be a non-empty string")
    updated_us = parse_timestamp(change.last_updated)
    record_key = key("mem", change.team_id, change.cohort_id, change.person_id)
    current = batch.get(record_key)
    if current is not None and (current["version"], current["last_updated_us"]) >= (change.version, updated_us):
        return
    was_member = current is not None and current["status"] == "entered"
    is_member = change.status == "entered"
    batch.put(
        record_key,
        {
            "person_id": change.person_id,
            "status": change.status,
            "version": change.version,
            "last_updated_us": updated_us,
        },
    )
    if was_member != is_member:
        (member_order.enter if is_member else member_order.leave)(
            batch, change.team_id, change.cohort_id, change.person_id
        )
        count_key = key("memcount", change.team_id, change.cohort_id)
        batch.put(count_key, max(0, (batch.get(count_key) or 0) + (1 if is_member else -1)))


class MembershipView:
    def __init__(self, store: Store) -> None:
        self._store = store

    def count(self, team_id: int, cohort_id: int) -> int:
        return int(self._store.get(key("memcount", team_id, cohort_id)) or 0)

    def members(self, team_id: int, cohort_id: int) -> list[str]:
        prefix = key("mem", team_id, cohort_id) + b":"
        return [row["person_id"] for _, row in self._store.scan(prefix) if row["status"] == "entered"]

    def is_member(self, team_id: int, cohort_id: int, person_id: str) -> bool:
        row = self._store.get(key("mem", team_id, cohort_id, person_id))
        return row is not None and row["status"] == "entered"
