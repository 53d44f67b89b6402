"""The members of each dynamic cohort in persons-page order, so a page reads only its own rows.

The persons of a cohort are listed `created_at DESC, id DESC`, persons without a creation time
last (reference §1.8; `api.services.cohort_persons`). A member's place depends on its person
record, which the membership view does not hold, so this index is kept by two folds in the same
batch as their own writes:
- the membership fold (`enter`, `leave`) adds or removes the member's entry when its latest
  status flips, never on a duplicate or an older change (the flip decides, so replays are no-ops);
- the persons fold (`reorder`) moves every entry of a person whose place changed (a new
  `created_at`, a deletion, the first record of a person who was a member before it arrived).

Layout:
    mord:<team>:<cohort>:<place + 2**63>:<person id, raw UTF-8>  -> person id
    pord:<team>:<person>  -> {"o": place, "c": [cohort ids where the person is a member]}

`place` is the sort value of `_order` in the persons service: `created_at_us`, or -1 for a person
without a creation time, a deleted person or one with no record. It is biased by 2**63 so that it
is a non-negative fixed-width key part. The person id is the key's last part, unescaped, so that
byte order is the service's string order (UTF-8 keeps code-point order). A reverse scan of
`mord:<team>:<cohort>:` is therefore the page order.

Invariants: every entered (cohort, person) has exactly one `mord` entry, at the person's `pord`
place, and `pord.c` lists exactly those cohorts (a person in none has no `pord`).
`ensure_index` builds the index once for a data dir folded before it existed.

Never: decide membership (that is the membership fold), or write a person record.
"""

from __future__ import annotations

from typing import Any

from api.store import Batch, Store, key

__all__ = ["MemberOrder", "ensure_index", "enter", "leave", "place_of", "reorder"]

_BIAS = 1 << 63
_MARKER = b"meta:member_order_index"
_MIGRATE_BATCH = 5_000


def place_of(person: dict[str, Any] | None) -> int:
    """A member's sort value from its person record (as the persons view stores it)."""
    if person is None or person["is_deleted"]:
        return -1
    return person.get("created_at_us") or -1


def _entry_key(team_id: int, cohort_id: int, place: int, person_id: str) -> bytes:
    return key("mord", team_id, cohort_id, place + _BIAS) + b":" + person_id.encode()


def _person_place(batch: Batch, team_id: int, person_id: str) -> int:
    # The persons view's layout (`api.views.persons`): read through the batch, so a person record
    # folded earlier in the same batch decides.
    return place_of(batch.get(key("person", team_id, person_id)))


def enter(batch: Batch, team_id: int, cohort_id: int, person_id: str) -> None:
    """The person's latest status in the cohort became "entered"."""
    person_key = key("pord", team_id, person_id)
    entry = batch.get(person_key)
    if entry is None:
        entry = {"o": _person_place(batch, team_id, person_id), "c": []}
    if cohort_id not in entry["c"]:
        batch.put(person_key, {"o": entry["o"], "c": [*entry["c"], cohort_id]})
    batch.put(_entry_key(team_id, cohort_id, entry["o"], person_id), person_id)


def leave(batch: Batch, team_id: int, cohort_id: int, person_id: str) -> None:
    """The person's latest status in the cohort became "left"."""
    person_key = key("pord", team_id, person_id)
    entry = batch.get(person_key)
    if entry is None:
        return
    batch.delete(_entry_key(team_id, cohort_id, entry["o"], person_id))
    cohorts = [c for c in entry["c"] if c != cohort_id]
    if cohorts:
        batch.put(person_key, {"o": entry["o"], "c": cohorts})
    else:
        batch.delete(person_key)


def reorder(batch: Batch, team_id: int, person_id: str, person: dict[str, Any] | None) -> None:
    """The person record changed: move the person's entries if its place did."""
    person_key = key("pord", team_id, person_id)
    entry = batch.get(person_key)
    if entry is None:
        return
    place = place_of(person)
    if entry["o"] == place:
        return
    for cohort_id in entry["c"]:
        batch.delete(_entry_key(team_id, cohort_id, entry["o"], person_id))
        batch.put(_entry_key(team_id, cohort_id, place, person_id), person_id)
    batch.put(person_key, {"o": place, "c": entry["c"]})


def ensure_index(store: Store) -> int:
    """Build the index from the membership and persons views if this data dir predates it.

    Returns how many members were indexed (0 for a new or already indexed data dir). The keys
    of `mem:` rows are parsed here only for their two leading integer parts (team, cohort)."""
    if store.get(_MARKER) is not None:
        return 0
    indexed = 0
    batch = store.batch()
    for raw_key, row in store.scan(b"mem:"):
        if row["status"] != "entered":
            continue
        team_id, cohort_id = (int(part) for part in raw_key.split(b":", 3)[1:3])
        enter(batch, team_id, cohort_id, row["person_id"])
        indexed += 1
        if len(batch) >= _MIGRATE_BATCH:
            batch.commit()
    batch.put(_MARKER, 1)
    batch.commit()
    return indexed


class MemberOrder:
    """Reads of the index."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def page(self, team_id: int, cohort_id: int, *, offset: int, limit: int) -> list[str]:
        """The person ids of one persons page of a dynamic cohort, in page order.

        The entries are stepped over from the nearer end: a page past the middle is read forwards
        from the first key, counted back from the cohort's member count (`memcount`, which the
        membership fold moves in the batch that adds or removes an entry). Stepping costs about
        1 µs an entry, so the last page of a cohort of 1,000 no longer steps over 900 (benchmark
        5). The count and the entries must come from one state: if any write landed between the
        two reads (`Store.sequence` moved), the page is read again from the front."""
        prefix = key("mord", team_id, cohort_id) + b":"
        sequence = self._store.sequence()
        count = int(self._store.get(key("memcount", team_id, cohort_id)) or 0) if offset else 0
        after_page = max(0, count - offset - limit)  # entries the page order lists after the page
        if after_page < offset < count:
            rows = self._store.scan(prefix, limit=count - offset - after_page, skip=after_page)
            if self._store.sequence() == sequence:
                return [person_id for _, person_id in reversed(rows)]
        return [person_id for _, person_id in self._store.scan(prefix, reverse=True, limit=limit, skip=offset)]
