"""The members' persons-page order index (`api.views.member_order`): kept by the membership and
persons folds, it must always list exactly a cohort's members in `created_at DESC, id DESC`
order (persons without a creation time last), whatever order and repetition the records come in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.store import Store, key
from api.views import member_order
from api.views.member_order import MemberOrder, ensure_index
from api.views.membership import apply_change
from api.views.persons import apply_person

TEAM = 7


def flip(cohort: int, person: str, status: str = "entered", version: int = 1, second: int = 0) -> tuple:
    value = {
        "team_id": TEAM,
        "cohort_id": cohort,
        "person_id": person,
        "status": status,
        "last_updated": f"2026-01-01T00:00:{second:02d}Z",
        "version": version,
    }
    return apply_change, orjson.dumps(value)


def person(person_id: str, created: str | None, version: int = 1, deleted: bool = False) -> tuple:
    value: dict[str, Any] = {
        "id": person_id,
        "team_id": TEAM,
        "properties": "{}",
        "version": version,
        "is_deleted": int(deleted),
    }
    if created is not None:
        value["created_at"] = created
    return apply_person, orjson.dumps(value)


def fold(store: Store, *records: tuple) -> None:
    batch = store.batch()
    for fn, raw in records:
        fn(batch, raw)
    batch.commit()


def page(store: Store, cohort: int, offset: int = 0, limit: int = 100) -> list[str]:
    return MemberOrder(store).page(TEAM, cohort, offset=offset, limit=limit)


def index_keys(store: Store) -> dict[bytes, Any]:
    return dict(store.scan(b"mord:") + store.scan(b"pord:"))


def test_page_is_newest_created_first_ties_by_id_descending_and_unknown_persons_last(store: Store) -> None:
    fold(
        store,
        person("b", "2025-01-02 00:00:00"),
        person("a", "2025-01-02 00:00:00"),
        person("c", "2025-01-03 00:00:00"),
        person("old", "2025-01-01 00:00:00"),
        *(flip(1, p) for p in ("a", "b", "c", "old", "ghost-1", "ghost-2")),
    )
    assert page(store, 1) == ["c", "b", "a", "old", "ghost-2", "ghost-1"]


def test_first_last_and_past_the_end_pages_and_an_empty_cohort(store: Store) -> None:
    fold(store, *(person(f"p{i}", f"2025-01-{i + 1:02d} 00:00:00") for i in range(5)))
    fold(store, *(flip(1, f"p{i}") for i in range(5)))
    assert page(store, 1, 0, 2) == ["p4", "p3"]
    assert page(store, 1, 4, 2) == ["p0"]  # the last page is short
    assert page(store, 1, 5, 2) == []
    assert page(store, 2) == []  # a cohort nobody entered
    assert page(store, 1, 0, 1) == ["p4"]


def test_person_whose_created_at_changes_moves_in_every_cohort_it_is_in(store: Store) -> None:
    fold(store, person("x", "2025-01-01 00:00:00"), person("y", "2025-01-02 00:00:00"))
    fold(store, flip(1, "x"), flip(1, "y"), flip(2, "x"), flip(2, "y"))
    assert page(store, 1) == page(store, 2) == ["y", "x"]
    fold(store, person("x", "2025-01-03 00:00:00", version=2))
    assert page(store, 1) == page(store, 2) == ["x", "y"]
    fold(store, person("x", "2025-01-01 00:00:00", version=1))  # an older record changes nothing
    assert page(store, 1) == ["x", "y"]


def test_deleted_person_goes_last_and_member_known_before_its_person_record_moves_in(store: Store) -> None:
    """Scenario: a membership arrives before the person record (the member is placed with the
    persons without a creation time); the record then places it; deleting the person puts it
    back among those without a creation time."""
    fold(store, person("a", "2025-01-01 00:00:00"), flip(1, "a"), flip(1, "late"))
    assert page(store, 1) == ["a", "late"]
    fold(store, person("late", "2025-01-05 00:00:00"))
    assert page(store, 1) == ["late", "a"]
    fold(store, person("late", "2025-01-05 00:00:00", version=2, deleted=True))
    assert page(store, 1) == ["a", "late"]


def test_member_who_leaves_while_paging_shifts_the_later_pages_by_one(store: Store) -> None:
    fold(store, *(person(f"p{i}", f"2025-01-{i + 1:02d} 00:00:00") for i in range(6)))
    fold(store, *(flip(1, f"p{i}") for i in range(6)))
    first = page(store, 1, 0, 3)
    assert first == ["p5", "p4", "p3"]
    fold(store, flip(1, "p4", "left", version=2))
    assert page(store, 1, 3, 3) == ["p1", "p0"]  # p2 moved up to the first page: no duplicate
    assert page(store, 1, 0, 3) == ["p5", "p3", "p2"]


def test_duplicate_and_reordered_flips_and_replayed_persons_leave_the_index_unchanged(store: Store) -> None:
    records = [
        person("a", "2025-01-01 00:00:00"),
        flip(1, "a", version=1, second=1),
        flip(1, "a", "left", version=1, second=2),
        flip(1, "a", version=2, second=0),
        person("a", "2025-01-04 00:00:00", version=3),
    ]
    fold(store, *records)
    before = index_keys(store)
    assert page(store, 1) == ["a"]
    fold(store, *reversed(records))  # every record again, newest first: all are replays now
    fold(store, *records)
    assert index_keys(store) == before
    assert store.get(key("pord", TEAM, "a")) == {"o": before[key("pord", TEAM, "a")]["o"], "c": [1]}


def test_leaving_every_cohort_drops_the_person_entry(store: Store) -> None:
    fold(store, person("a", "2025-01-01 00:00:00"), flip(1, "a"), flip(2, "a"))
    fold(store, flip(1, "a", "left", version=2), flip(2, "a", "left", version=2))
    assert page(store, 1) == page(store, 2) == []
    assert index_keys(store) == {}


def test_person_ids_with_separators_keep_string_order(store: Store) -> None:
    ids = ["a:b", "a", "a%3A", "a0", "a;", "é", "z"]
    fold(store, *(flip(1, p) for p in ids))
    assert page(store, 1) == sorted(ids, reverse=True)


def test_ensure_index_builds_the_index_of_a_data_dir_folded_before_it(store: Store) -> None:
    assert ensure_index(store) == 0  # a new data dir: nothing to build, marked at once
    fold(
        store,
        person("a", "2025-01-01 00:00:00"),
        person("b", "2025-01-02 00:00:00"),
        flip(1, "a"),
        flip(1, "b"),
        flip(2, "b"),
        flip(2, "a", "left", version=2),
        flip(3, "a"),
    )
    built = index_keys(store)
    assert ensure_index(store) == 0
    batch = store.batch()
    for k in [*built, b"meta:member_order_index"]:
        batch.delete(k)
    batch.commit()
    assert page(store, 1) == []
    assert ensure_index(store) == 4
    assert index_keys(store) == built
    assert ensure_index(store) == 0


def test_last_page_read_while_a_member_enters_is_read_again_from_the_front(store: Store) -> None:
    """Scenario: the last page of five members is read forwards from the member count; a member
    enters between the count and the entries: the page is read again and is the new last page."""
    fold(store, *(person(f"p{i}", f"2025-01-0{i + 1} 00:00:00") for i in range(6)))
    fold(store, *(flip(1, f"p{i}") for i in range(5)))
    forward = store.scan

    def scan_while_p5_enters(prefix: bytes, **kwargs: Any):
        if not kwargs.get("reverse"):
            fold(store, flip(1, "p5"))
        return forward(prefix, **kwargs)

    store.scan = scan_while_p5_enters  # type: ignore[method-assign]
    assert page(store, 1, 4, 2) == ["p1", "p0"]
    store.scan = forward  # type: ignore[method-assign]
    assert page(store, 1, 4, 2) == ["p1", "p0"]
    assert page(store, 1, 0, 6) == ["p5", "p4", "p3", "p2", "p1", "p0"]


# A model of the order, checked against the index after any sequence of records ----------------

_PERSONS = ["p0", "p1", "p2", "p3"]


def _expected(records: list[tuple[str, dict[str, Any]]], cohort: int) -> list[str]:
    members: dict[str, tuple[int, int, str]] = {}
    persons: dict[str, dict[str, Any]] = {}
    for kind, value in records:
        if kind == "flip" and value["cohort"] == cohort:
            rank = (value["version"], value["second"])
            current = members.get(value["person"])
            if current is None or current[:2] < rank:
                members[value["person"]] = (*rank, value["status"])
        elif kind == "person":
            current = persons.get(value["person"])
            if current is None or current["version"] < value["version"]:
                created = value["day"] if value["day"] is not None else (current or {}).get("created")
                persons[value["person"]] = {
                    "version": value["version"],
                    "created": created,
                    "deleted": value["deleted"],
                }
    entered = [p for p, (_, _, status) in members.items() if status == "entered"]

    def place(person_id: str) -> tuple[int, str]:
        record = persons.get(person_id)
        if record is None or record["deleted"] or not record["created"]:
            return -1, person_id
        return record["created"], person_id

    return sorted(entered, key=place, reverse=True)


_flips = st.fixed_dictionaries(
    {
        "cohort": st.sampled_from([1, 2]),
        "person": st.sampled_from(_PERSONS),
        "status": st.sampled_from(["entered", "left"]),
        "version": st.integers(1, 3),
        "second": st.integers(0, 3),
    }
).map(lambda v: ("flip", v))
_person_records = st.fixed_dictionaries(
    {
        "person": st.sampled_from(_PERSONS),
        "version": st.integers(1, 4),
        "day": st.one_of(st.none(), st.integers(1, 3)),
        "deleted": st.booleans(),
    }
).map(lambda v: ("person", v))


def _raw(kind: str, value: dict[str, Any]) -> tuple:
    if kind == "flip":
        return flip(value["cohort"], value["person"], value["status"], value["version"], value["second"])
    created = None if value["day"] is None else f"2025-01-0{value['day']} 00:00:00"
    return person(value["person"], created, value["version"], value["deleted"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.one_of(_flips, _person_records), max_size=25), cut=st.integers(0, 25))
def test_index_matches_a_model_of_the_order_after_any_records_in_any_batches(tmp_path: Path, records, cut) -> None:
    """Scenario: random flips (duplicates, older versions, leaves) and person records (new
    creation times, deletions, records without a creation time), folded in two batches split
    anywhere: every page of both cohorts equals the model's order, for every offset."""
    store = Store(tmp_path / f"api-{len(list(tmp_path.iterdir()))}")
    try:
        fold(store, *(_raw(*r) for r in records[:cut]))
        fold(store, *(_raw(*r) for r in records[cut:]))
        for cohort in (1, 2):
            expected = _expected(records, cohort)
            assert page(store, cohort) == expected
            for offset in range(len(expected) + 1):
                for limit in (1, 2, 3):
                    assert page(store, cohort, offset, limit) == expected[offset : offset + limit]
            entries = {k for k in index_keys(store) if k.startswith(key("mord", TEAM, cohort) + b":")}
            assert len(entries) == len(expected)
    finally:
        store.close()


def test_place_of_a_person_without_a_creation_time_or_deleted_is_minus_one() -> None:
    assert member_order.place_of(None) == -1
    assert member_order.place_of({"is_deleted": True, "created_at_us": 5}) == -1
    assert member_order.place_of({"is_deleted": False, "created_at_us": None}) == -1
    assert member_order.place_of({"is_deleted": False, "created_at_us": 5}) == 5
