"""The folds that feed the api's views from Kafka: idempotent, latest-wins, bad input refused."""

from __future__ import annotations

import orjson
import pytest

from api.store import Store, key
from api.views.membership import MembershipView, apply_change
from api.views.persons import (
    PersonRecordError,
    PersonsView,
    apply_distinct_id,
    apply_person,
    ensure_distinct_id_lists,
)
from api.views.reports import ReportsView, apply_report
from cohorts.wire import WireError


def fold(store: Store, fn, *values, **kwargs) -> None:
    batch = store.batch()
    for value in values:
        fn(batch, value if isinstance(value, bytes) else orjson.dumps(value), **kwargs)
    batch.commit()


def person(version: int, **fields) -> dict:
    record = {"id": "p1", "team_id": 7, "properties": {"email": "a@x.com"}, "version": version}
    record.update(fields)
    return record


def test_person_higher_version_wins_and_replays_change_nothing(store: Store) -> None:
    view = PersonsView(store)
    fold(store, apply_person, person(2, properties='{"email": "new@x.com"}'), person(1, properties={"email": "old"}))
    assert view.get(7, "p1")["properties"] == {"email": "new@x.com"}
    assert view.by_email(7, "new@x.com") == ["p1"]
    assert view.by_email(7, "old") == []


def test_person_update_moves_the_email_index(store: Store) -> None:
    view = PersonsView(store)
    fold(store, apply_person, person(1))
    fold(store, apply_person, person(2, properties={"email": "b@x.com"}))
    assert view.by_email(7, "a@x.com") == [] and view.by_email(7, "b@x.com") == ["p1"]


def test_deleted_person_is_unknown_and_cannot_be_resurrected_by_an_older_record(store: Store) -> None:
    view = PersonsView(store)
    fold(store, apply_person, person(1), person(5, is_deleted=1), person(3))
    assert view.get(7, "p1") is None and not view.exists(7, "p1")
    assert view.by_email(7, "a@x.com") == []


def test_persons_are_per_team(store: Store) -> None:
    fold(store, apply_person, person(1))
    assert PersonsView(store).get(8, "p1") is None


def test_ids_with_separators_do_not_collide(store: Store) -> None:
    view = PersonsView(store)
    fold(store, apply_person, person(1, id="a"), person(1, id="a:b"))
    fold(store, apply_distinct_id, {"team_id": 7, "distinct_id": "d", "person_id": "a:b", "version": 1})
    assert view.distinct_ids(7, "a") == [] and view.distinct_ids(7, "a:b") == ["d"]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        orjson.dumps({"team_id": 7}),
        orjson.dumps(person(1, properties="{bad")),
        orjson.dumps(person(1, team_id="x")),
        orjson.dumps(person(1, created_at="yesterday")),
    ],
)
def test_bad_person_records_are_refused(store: Store, raw: bytes) -> None:
    with pytest.raises(PersonRecordError):
        fold(store, apply_person, raw)


def test_distinct_id_reassigned_by_higher_version(store: Store) -> None:
    view = PersonsView(store)
    fold(store, apply_person, person(1, id="p1"), person(1, id="p2"))
    fold(
        store,
        apply_distinct_id,
        {"team_id": 7, "distinct_id": "d", "person_id": "p1", "version": 1},
        {"team_id": 7, "distinct_id": "d", "person_id": "p2", "version": 2},
        {"team_id": 7, "distinct_id": "d", "person_id": "p1", "version": 1},
    )
    assert view.by_distinct_id(7, "d") == "p2"
    assert view.distinct_ids(7, "p1") == [] and view.distinct_ids(7, "p2") == ["d"]
    fold(store, apply_distinct_id, {"team_id": 7, "distinct_id": "d", "person_id": "p2", "version": 3, "is_deleted": 1})
    assert view.by_distinct_id(7, "d") is None


def distinct(distinct_id: str, person_id: str, version: int = 1, team_id: int = 7, **fields) -> dict:
    return {"team_id": team_id, "distinct_id": distinct_id, "person_id": person_id, "version": version, **fields}


def test_distinct_ids_are_listed_in_the_order_of_their_key_parts(store: Store) -> None:
    """Scenario: ids folded in any order, some with the separators a key escapes (`:`, `%`): a
    person's list is in the byte order of `key(distinct_id)`, as one row per id was scanned."""
    ids = ["b", "a:z", "a", "a%", "ab", "", "Z", "é"]
    fold(store, apply_distinct_id, *(distinct(d, "p1") for d in ids))
    assert PersonsView(store).distinct_ids(7, "p1") == sorted(ids, key=key)
    assert store.get(key("pdids", 7, "p1")) == sorted(ids, key=key)


def test_distinct_id_moving_between_persons_leaves_one_list_and_joins_the_other(store: Store) -> None:
    view = PersonsView(store)
    fold(store, apply_distinct_id, distinct("d1", "p1"), distinct("d2", "p1"), distinct("d3", "p2"))
    fold(store, apply_distinct_id, distinct("d1", "p2", version=2), distinct("d2", "p1", version=2))
    assert view.distinct_ids(7, "p1") == ["d2"]
    fold(store, apply_person, person(1, id="p2"))
    assert view.get_many_with_ids(7, ["p2", "p1", "nobody"]) == (
        [view.get(7, "p2"), None, None],
        [["d1", "d3"], ["d2"], []],
    )
    fold(store, apply_distinct_id, distinct("d2", "p1", version=3, is_deleted=1))
    assert view.distinct_ids(7, "p1") == [] and store.get(key("pdids", 7, "p1")) is None
    assert view.distinct_ids(8, "p2") == []  # per team


def test_distinct_id_lists_are_built_once_from_a_data_dir_with_one_row_per_id(store: Store) -> None:
    """Scenario: a data dir folded before the lists: `did:` records and one `pdid:` row per id,
    no lists. The rewrite gives the lists the fold gives, drops the old rows and runs once."""
    records = [
        distinct("d1", "p1"),
        distinct("d:2", "p1"),
        distinct("d3", "p2", team_id=8),
        distinct("d4", "p1"),
        distinct("d4", "p2", version=2),
        distinct("d5", "p1", version=2, is_deleted=1),
    ]
    assert ensure_distinct_id_lists(store) == 0  # a new data dir: nothing to rewrite, marked at once
    fold(store, apply_distinct_id, *records)
    folded = dict(store.scan(b"pdids:"))
    assert ensure_distinct_id_lists(store) == 0
    batch = store.batch()
    batch.delete(b"meta:distinct_id_lists")
    for list_key in folded:
        batch.delete(list_key)
    for team_id, person_id, distinct_id in [(7, "p1", "d1"), (7, "p1", "d:2"), (8, "p2", "d3"), (7, "p2", "d4")]:
        batch.put(key("pdid", team_id, person_id, distinct_id), distinct_id)
    batch.commit()
    assert ensure_distinct_id_lists(store) == 4
    assert dict(store.scan(b"pdids:")) == folded
    assert folded[key("pdids", 7, "p1")] == ["d:2", "d1"] and folded[key("pdids", 8, "p2")] == ["d3"]
    assert store.scan(b"pdid:") == []
    assert ensure_distinct_id_lists(store) == 0


def change(status: str, version: int, at: str, person_id: str = "p1") -> dict:
    return {
        "team_id": 7,
        "cohort_id": 3,
        "person_id": person_id,
        "status": status,
        "last_updated": at,
        "version": version,
    }


def test_membership_latest_by_version_then_time_wins_and_count_follows(store: Store) -> None:
    view = MembershipView(store)
    fold(
        store, apply_change, change("entered", 1, "2026-01-01T00:00:00Z"), change("entered", 1, "2026-01-01T00:00:00Z")
    )
    assert view.count(7, 3) == 1
    fold(store, apply_change, change("left", 1, "2026-01-01T00:00:01Z"))
    assert view.count(7, 3) == 0 and view.members(7, 3) == []
    fold(store, apply_change, change("entered", 1, "2025-12-31T00:00:00Z"))  # older: ignored
    assert view.count(7, 3) == 0
    fold(store, apply_change, change("entered", 2, "2025-12-31T00:00:00Z"))  # newer version wins
    assert view.members(7, 3) == ["p1"] and view.count(7, 3) == 1


def test_membership_accepts_clickhouse_timestamps(store: Store) -> None:
    fold(store, apply_change, change("entered", 1, "2026-01-01 00:00:00.000000"))
    assert MembershipView(store).is_member(7, 3, "p1")


@pytest.mark.parametrize(
    "value",
    [b"{}", orjson.dumps({**change("entered", 1, "x")}), orjson.dumps({**change("maybe", 1, "2026-01-01T00:00:00Z")})],
)
def test_bad_membership_changes_are_refused(store: Store, value: bytes) -> None:
    with pytest.raises((WireError, ValueError)):
        fold(store, apply_change, value)


def report(partition: int, **fields) -> dict:
    value = {"team_id": 7, "cohort_id": 3, "version": 1, "partition": partition, "started_at": "2026-01-01T00:00:00Z"}
    value.update(fields)
    return value


def test_reports_aggregate_across_partitions(store: Store) -> None:
    view = ReportsView(store)
    fold(store, apply_report, report(0, finished_at="2026-01-01T00:00:02Z", count=2), partitions=2)
    assert view.status(7, 3).version is None
    fold(
        store,
        apply_report,
        report(1, started_at="2025-12-31T23:59:59Z", finished_at="2026-01-01T00:00:04Z", count=3, error="boom"),
        partitions=2,
    )
    (calc,) = view.calculations(7, 3)
    assert calc["count"] == 5 and calc["error"] == "boom"
    assert calc["finished_at_us"] - calc["started_at_us"] == 5_000_000
    status = view.status(7, 3)
    assert (status.version, status.errors_calculating, status.last_error_message) == (1, 1, "boom")


def test_bad_report_is_refused(store: Store) -> None:
    with pytest.raises((WireError, ValueError)):
        fold(store, apply_report, report(-1), partitions=2)
    assert store.get(key("calc", 7, 3, 1)) is None
