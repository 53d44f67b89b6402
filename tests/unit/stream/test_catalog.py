"""The in-memory catalog: which records count, deletions, unreadable definitions, waiting for versions."""

from __future__ import annotations

import asyncio

from stream.catalog import Catalog, parse_cohort_key
from tests.unit.stream.cohort_records import group, in_cohort, performed, person_prop, record, static


def test_keys_that_are_not_integers_are_ignored():
    """Scenario: the api writes id-reservation records under other keys in the same topic."""
    catalog = Catalog()
    assert catalog.apply(b"reservation:abc", b'{"anything": 1}', 0) is None
    assert catalog.apply(None, b"{}", 1) is None
    assert catalog.apply(b"-3", b"{}", 2) is None
    assert catalog.team(1).ordered == ()
    assert catalog.offset == 2
    assert parse_cohort_key(b"42") == 42
    assert parse_cohort_key(b"\xff") is None


def test_team_view_orders_dependencies_first_and_lists_matchers():
    catalog = Catalog()
    catalog.apply(b"5", record(5, group(in_cohort(9))), 0)
    catalog.apply(b"9", record(9, group(performed("$pageview", 7))), 1)
    catalog.apply(b"7", record(7, group(person_prop("plan", "pro")), team_id=2), 2)
    team = catalog.team(1)
    assert [d.id for d in team.ordered] == [9, 5]
    assert team.uses_event("$pageview") and not team.uses_event("purchase")
    assert [d.id for d in catalog.team(2).ordered] == [7]


def test_a_new_version_replaces_the_definition_and_invalidates_the_team_view():
    catalog = Catalog()
    catalog.apply(b"5", record(5, group(performed("$pageview"))), 0)
    assert catalog.team(1).uses_event("$pageview")
    catalog.apply(b"5", record(5, group(performed("purchase")), version=2), 1)
    team = catalog.team(1)
    assert team.uses_event("purchase") and not team.uses_event("$pageview")
    assert team.versions == {5: 2}


def test_tombstones_and_soft_deletes_keep_the_cohort_as_deleted():
    catalog = Catalog()
    catalog.apply(b"5", record(5, group(performed("$pageview")), version=3), 0)
    update = catalog.apply(b"5", None, 1)
    assert update is not None and update.deleted and update.team_id == 1 and update.version == 3
    assert catalog.team(1).ordered == () and catalog.team(1).versions == {5: 3}
    catalog.apply(b"6", record(6, group(performed("$pageview")), version=2, deleted=True), 2)
    assert catalog.cohort(6) is not None and catalog.cohort(6).deleted
    assert catalog.has_caught_up(5, None) and catalog.has_caught_up(6, 2)
    assert catalog.apply(b"77", None, 3) == update.__class__(77, None, None, deleted=True)


def test_an_unreadable_definition_keeps_the_previous_one_and_records_the_error():
    catalog = Catalog()
    catalog.apply(b"5", record(5, group(person_prop("plan", "pro"))), 0)
    bad = {"properties": {"type": "AND", "values": [{"type": "behavioral", "key": "x", "value": "nope"}]}}
    update = catalog.apply(b"5", record(5, bad, version=2), 1)
    assert update is not None and update.error is not None
    assert catalog.cohort(5).version == 1
    assert "unreadable definition" in (catalog.error(5) or "")
    assert catalog.has_caught_up(5, 2), "a recalculation must not wait forever for an unreadable version"
    catalog.apply(b"5", b"not json", 2)
    assert catalog.error(5) is not None
    catalog.apply(b"5", record(5, group(person_prop("plan", "free")), version=3), 3)
    assert catalog.error(5) is None and catalog.cohort(5).version == 3


def test_a_record_under_another_cohorts_key_is_an_error():
    catalog = Catalog()
    update = catalog.apply(b"5", record(6, group(person_prop("plan", "pro"))), 0)
    assert update is not None and update.error is not None and catalog.cohort(5) is None


def test_static_cohorts_need_no_matchers():
    catalog = Catalog()
    catalog.apply(b"3", static(3), 0)
    team = catalog.team(1)
    assert [d.id for d in team.ordered] == [3] and dict(team.requirements) == {}


async def test_wait_for_returns_once_the_version_arrives_and_times_out_otherwise():
    catalog = Catalog()
    waiter = asyncio.create_task(catalog.wait_for(5, 2, timeout_s=5))
    await asyncio.sleep(0.01)
    catalog.apply(b"5", record(5, group(person_prop("plan", "pro"))), 0)
    await asyncio.sleep(0.01)
    assert not waiter.done()
    catalog.apply(b"5", record(5, group(person_prop("plan", "pro")), version=2), 1)
    assert await asyncio.wait_for(waiter, 1) is True
    assert await catalog.wait_for(5, 9, timeout_s=0.05) is False
