"""The folds that make one api process's writes every process's state: the catalog fold (rows)
and the api-log fold (activity, static members, views, version filters)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.api_log import (
    MEMBERS_PER_RECORD,
    ActivityRecord,
    ApiLogError,
    DefinitionRecord,
    StaticMembersRecord,
    ViewRecord,
    apply_api_log,
    decode,
    static_member_records,
)
from api.store import Store, key
from api.views.activity import ActivityView
from api.views.cohorts import apply_catalog, catalog_record, row_of
from api.views.file_system import FileSystemView
from api.views.record import Record
from api.views.static_members import StaticMembersView
from cohorts.wire import CatalogRecord, WireError

TEAM = 7


def fold(store: Store, fn, *records: Record) -> None:
    batch = store.batch()
    for record in records:
        fn(batch, record)
    batch.commit()


def catalog(cohort_id: int | str, value: bytes | None, offset: int = 0, timestamp_ms: int = 1_000) -> Record:
    return Record("cohort_catalog", 0, offset, str(cohort_id).encode(), value, timestamp_ms)


def logged(value: bytes, offset: int) -> Record:
    return Record("cohort_api_log", 0, offset, str(TEAM).encode(), value, 0)


def row(**fields: Any) -> dict[str, Any]:
    base = {
        "id": 5,
        "team_id": TEAM,
        "name": "Acme",
        "description": "d",
        "groups": [],
        "deleted": False,
        "filters": {},
        "query": None,
        "is_static": True,
        "cohort_type": None,
        "created_by_id": 3,
        "created_at_us": 1_700_000_000_000_000,
        "version": 1,
        "create_in_folder": "Unfiled/Cohorts",
        "last_import_total_count": 4,
        "last_import_unmatched_count": 1,
    }
    base.update(fields)
    return base


# Catalog -----------------------------------------------------------------------------------


def test_row_survives_the_catalog_record_round_trip(store: Store) -> None:
    """Scenario: a static cohort's stored filters ({}) differ from its effective definition, so
    the record carries both: the worker reads `filters`, the api rebuilds the row exactly."""
    original = row()
    record = catalog_record(original)
    assert record.filters == {"properties": {}} and record.stored_filters == {}
    fold(store, apply_catalog, catalog(5, record.to_bytes()))
    assert store.get(key("cohort", TEAM, 5)) == original
    assert store.get(key("catver", TEAM, 5, 1)) == {"properties": {}}


def test_legacy_groups_reach_the_worker_converted_and_the_api_as_sent(store: Store) -> None:
    groups = [{"properties": [{"key": "email", "value": "x", "type": "person", "operator": "icontains"}]}]
    original = row(is_static=False, groups=groups)
    record = catalog_record(original)
    assert record.filters["properties"]["type"] == "OR" and record.groups == groups
    fold(store, apply_catalog, catalog(5, record.to_bytes()))
    assert store.get(key("cohort", TEAM, 5)) == original


def test_only_a_newer_version_replaces_the_row_and_replays_change_nothing(store: Store) -> None:
    first = catalog_record(row(name="one")).to_bytes()
    second = catalog_record(row(name="two", version=2)).to_bytes()
    fold(store, apply_catalog, catalog(5, first, 0), catalog(5, second, 1), catalog(5, first, 2))
    assert store.get(key("cohort", TEAM, 5))["name"] == "two"
    fold(store, apply_catalog, catalog(5, second, 1))
    assert store.get(key("cohort", TEAM, 5))["version"] == 2


def test_reservations_are_skipped_and_a_tombstone_removes_the_cohort(store: Store) -> None:
    fold(store, apply_catalog, catalog("reserve:abc", b'{"reserved_at_ms": 1}'), catalog("reserve:abc", None))
    assert store.scan(b"cohort") == []
    fold(store, apply_catalog, catalog(5, catalog_record(row()).to_bytes()))
    fold(store, apply_catalog, catalog(5, None, 1))
    assert store.get(key("cohort", TEAM, 5)) is None
    assert store.get(key("cohortcount", "static")) == 0


def test_a_record_from_before_the_api_fields_existed_still_decodes(store: Store) -> None:
    """Scenario: an old record has only the worker's fields; the row takes defaults and its
    creation time from the record's Kafka timestamp."""
    old = orjson.dumps({"id": 9, "team_id": TEAM, "version": 2, "is_static": False, "deleted": False, "name": "n"})
    fold(store, apply_catalog, catalog(9, old, timestamp_ms=1_767_225_600_000))
    stored = store.get(key("cohort", TEAM, 9))
    assert (stored["description"], stored["groups"], stored["created_at_us"]) == ("", [], 1_767_225_600_000_000)
    assert row_of(CatalogRecord.from_bytes(old), 0)["filters"] == {}


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        orjson.dumps({"id": 6, "team_id": TEAM, "version": 1}),  # id differs from the key
        orjson.dumps({"id": 5, "team_id": "7", "version": 1}),
        orjson.dumps({"id": 5, "team_id": TEAM, "version": 0}),
        orjson.dumps({"id": 5, "team_id": TEAM, "version": 1, "unknown": 1}),
    ],
)
def test_bad_catalog_records_are_refused(store: Store, value: bytes) -> None:
    with pytest.raises((WireError, ValueError)):
        fold(store, apply_catalog, catalog(5, value))


def test_cohort_counts_follow_creates_type_changes_and_deletes(store: Store) -> None:
    fold(store, apply_catalog, catalog(5, catalog_record(row()).to_bytes()))
    fold(store, apply_catalog, catalog(6, catalog_record(row(id=6, is_static=False)).to_bytes()))
    fold(store, apply_catalog, catalog(5, catalog_record(row(version=2, is_static=False)).to_bytes()))
    fold(store, apply_catalog, catalog(6, catalog_record(row(id=6, version=2, deleted=True)).to_bytes()))
    counts = {kind: store.get(key("cohortcount", kind)) for kind in ("static", "dynamic")}
    assert counts == {"static": 0, "dynamic": 1}


# Api log -----------------------------------------------------------------------------------


def test_every_kind_round_trips_through_bytes() -> None:
    records = [
        ActivityRecord(TEAM, 5, {"id": "x", "activity": "created"}),
        StaticMembersRecord(TEAM, 5, added=["p1"], removed=["p2"]),
        ViewRecord(TEAM, 3, "cohort", "5", -1_000),
        DefinitionRecord(TEAM, 5, 2, {"properties": {}}),
    ]
    assert [decode(record.to_bytes()) for record in records] == records


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"[]",
        b'{"kind": "gossip", "team_id": 7}',
        b'{"kind": "view", "team_id": 7}',
        b'{"kind": "view", "team_id": -1, "user_id": 1, "type": "cohort", "ref": "1", "viewed_at_us": 0}',
        b'{"kind": "view", "team_id": 7, "user_id": 1, "type": 5, "ref": "1", "viewed_at_us": 0}',
        b'{"kind": "static_members", "team_id": 7, "cohort_id": 5, "added": [""]}',
        b'{"kind": "definition", "team_id": 7, "cohort_id": true, "version": 1, "filters": {}}',
    ],
)
def test_bad_api_log_records_are_refused(value: bytes | None) -> None:
    with pytest.raises(ApiLogError):
        decode(value)


def test_activity_is_ordered_by_log_offset_in_every_process(store: Store) -> None:
    first = ActivityRecord(TEAM, 5, {"activity": "created"}).to_bytes()
    second = ActivityRecord(TEAM, 5, {"activity": "updated"}).to_bytes()
    fold(store, apply_api_log, logged(first, 10), logged(second, 11), logged(first, 10))
    entries, total = ActivityView(store).page(TEAM, 5, 1, 10)
    assert total == 2 and [e["activity"] for e in entries] == ["updated", "created"]
    assert ActivityView(store).page(TEAM, None, 1, 10)[1] == 2


def test_static_members_fold_adds_removes_and_ignores_repeats(store: Store) -> None:
    records = [
        StaticMembersRecord(TEAM, 5, added=["p1", "p2"]),
        StaticMembersRecord(TEAM, 5, added=["p1"]),
        StaticMembersRecord(TEAM, 5, removed=["p2", "p3"]),
    ]
    fold(store, apply_api_log, *(logged(r.to_bytes(), i) for i, r in enumerate(records)))
    view = StaticMembersView(store)
    assert (view.members(TEAM, 5), view.count(TEAM, 5)) == (["p1"], 1)


def test_large_member_lists_are_split_into_records_of_bounded_size() -> None:
    people = [f"p{i}" for i in range(MEMBERS_PER_RECORD + 1)]
    records = static_member_records(TEAM, 5, added=people, removed=["x"])
    assert [len(r.added) for r in records] == [MEMBERS_PER_RECORD, 1, 0]
    assert records[-1].removed == ["x"]
    assert static_member_records(TEAM, 5) == []


def test_the_latest_view_record_wins_even_with_an_older_viewed_at(store: Store) -> None:
    newer = ViewRecord(TEAM, 3, "cohort", "5", 2_000_000).to_bytes()
    older = ViewRecord(TEAM, 3, "cohort", "5", 1_000_000).to_bytes()
    other = ViewRecord(TEAM, 3, "insight", "1", 1_000_000).to_bytes()
    fold(store, apply_api_log, logged(newer, 0), logged(other, 1), logged(older, 2))
    views = FileSystemView(store).recent(TEAM, 3, None, None)
    assert [(v["type"], v["viewed_at"]) for v in views] == [
        ("cohort", "1970-01-01T00:00:01.000000Z"),
        ("insight", "1970-01-01T00:00:01.000000Z"),
    ]


def test_definition_records_keep_old_versions_filters_for_history(store: Store) -> None:
    fold(store, apply_api_log, logged(DefinitionRecord(TEAM, 5, 1, {"properties": {"a": 1}}).to_bytes(), 0))
    assert store.get(key("catver", TEAM, 5, 1)) == {"properties": {"a": 1}}
