"""What makes the list and retrieve cheap must never serve a stale answer: the per-cohort
calculation summary folded with the reports, the per-project rows cache dropped by catalog
writes, and the auth lookups cached until the CLI's stamp changes."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.admin import create_project
from api.auth_db import AuthDirectory
from api.store import Store, key
from api.views.reports import CalculationStatus, ReportsView, apply_report
from cohorts.settings import Settings
from tests.unit.api.conftest import Api, person_filters

TEAM = 7
PARTITIONS = 2


def report(cohort: int, version: int, partition: int, *, finished: bool, count: int = 1, error: str | None = None):
    value = {
        "team_id": TEAM,
        "cohort_id": cohort,
        "version": version,
        "partition": partition,
        "started_at": f"2026-01-01T00:00:0{version}Z",
        "count": count,
        "error": error,
    }
    if finished:
        value["finished_at"] = f"2026-01-01T00:01:0{version}Z"
    return orjson.dumps(value)


def fold(store: Store, *raws: bytes) -> None:
    batch = store.batch()
    for raw in raws:
        apply_report(batch, raw, PARTITIONS)
    batch.commit()


def scanned_status(store: Store, cohort: int) -> CalculationStatus:
    """The status as read without a summary (the scan of every calculation)."""
    batch = store.batch()
    batch.delete(key("calcstatus", TEAM, cohort))
    batch.commit()
    return ReportsView(store).status(TEAM, cohort)


_reports = st.tuples(
    st.integers(1, 4),  # version
    st.integers(0, PARTITIONS - 1),
    st.booleans(),  # finished
    st.integers(0, 5),
    st.sampled_from([None, None, "timeout", "memory_limit"]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reports=st.lists(_reports, max_size=16), cut=st.integers(0, 16))
def test_summary_status_equals_the_scanned_status_after_any_reports(tmp_path: Path, reports, cut) -> None:
    """Scenario: reports of several versions, partitions finishing in any order, errors, replays,
    folded in two batches split anywhere: the folded summary gives the status a scan of every
    calculation gives."""
    store = Store(tmp_path / f"api-{len(list(tmp_path.iterdir()))}")
    try:
        raws = [report(1, v, p, finished=f, count=c, error=e) for v, p, f, c, e in reports]
        fold(store, *raws[:cut])
        fold(store, *raws[cut:])
        summarised = ReportsView(store).status(TEAM, 1)
        assert summarised == scanned_status(store, 1)
        if reports:
            assert store.get(key("calcvers", TEAM, 1)) == sorted({v for v, *_ in reports})
    finally:
        store.close()


def test_cohort_without_reports_has_the_empty_status_and_no_summary(store: Store) -> None:
    view = ReportsView(store)
    assert [view.status(TEAM, 1), view.status(TEAM, 2)] == [CalculationStatus(), CalculationStatus()]
    assert store.get(key("calcstatus", TEAM, 1)) is None


def test_summary_of_a_data_dir_folded_before_summaries_keeps_the_older_calculations(store: Store) -> None:
    """Scenario: version 1 finished with an error before summaries existed (its `calc` row only);
    the first report folded afterwards seeds the summary from the stored history."""
    fold(store, *(report(1, 1, p, finished=True, error="timeout") for p in range(PARTITIONS)))
    batch = store.batch()
    batch.delete(key("calcstatus", TEAM, 1))
    batch.delete(key("calcvers", TEAM, 1))
    batch.commit()
    assert ReportsView(store).status(TEAM, 1).errors_calculating == 1  # read by the scan
    fold(store, *(report(1, 2, p, finished=True, error="timeout") for p in range(PARTITIONS)))
    assert store.get(key("calcvers", TEAM, 1)) == [1, 2]
    status = ReportsView(store).status(TEAM, 1)
    assert (status.version, status.errors_calculating) == (2, 2)


def test_list_shows_a_catalog_write_made_after_the_rows_were_cached(api: Api) -> None:
    first = api.create(name="first")
    assert [row["name"] for row in api.get("cohorts/").json()["results"]] == ["first"]
    listed = api.ctx.reader.listed(api.project_id)
    assert api.ctx.reader.listed(api.project_id) is listed  # no write since: the same cached rows
    api.create(name="second")
    api.patch(f"cohorts/{first['id']}/", json={"name": "renamed"})
    assert [row["name"] for row in api.get("cohorts/").json()["results"]] == ["second", "renamed"]
    api.patch(f"cohorts/{first['id']}/", json={"deleted": True})
    assert [row["name"] for row in api.get("cohorts/").json()["results"]] == ["second"]


def test_list_and_retrieve_show_a_report_folded_after_the_rows_were_cached(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    assert api.get("cohorts/").json()["results"][0]["last_calculation"] is None
    api.finish(cohort["id"], 1, counts=[0] * api.settings.partitions, error="timeout")
    listed = api.get("cohorts/").json()["results"][0]
    retrieved = api.get(f"cohorts/{cohort['id']}/").json()
    for shown in (listed, retrieved):
        assert shown["errors_calculating"] == 1
        assert shown["last_error_message"] == "Cohort calculation was terminated for taking too long."
        assert shown["last_calculation"] == "2026-01-01T00:00:05.000000Z"


def test_auth_lookup_cached_as_unknown_is_found_once_the_cli_wrote(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", partitions=1)
    directory = AuthDirectory(settings.data_dir)
    try:
        assert directory.project(1) is None
        assert directory.project(1) is None  # cached as unknown
        project = create_project(settings, "Acme")
        assert project["id"] == 1
        assert directory.project(1) is not None
    finally:
        directory.close()


def test_scan_skip_steps_over_rows_in_both_directions_and_past_the_end(store: Store) -> None:
    batch = store.batch()
    for name in ("a", "b", "c"):
        batch.put(key("row", 1, name), name)
    batch.put(key("row", 0, "z"), "other prefix before")
    batch.put(key("row", 2, "a"), "other prefix after")
    batch.commit()
    prefix = key("row", 1) + b":"
    assert [v for _, v in store.scan(prefix, skip=1)] == ["b", "c"]
    assert [v for _, v in store.scan(prefix, reverse=True, skip=1, limit=1)] == ["b"]
    assert store.scan(prefix, reverse=True, skip=3) == []
    assert store.scan(prefix, skip=5) == []


def test_generation_moves_only_after_writes_under_the_watched_prefix(store: Store) -> None:
    store.watch(b"cohort:")
    start = store.generation(b"cohort:")
    batch = store.batch()
    batch.put(key("cohortteam", 1), 7)  # shares letters, not the prefix
    batch.commit()
    assert store.generation(b"cohort:") == start
    batch = store.batch()
    batch.put(key("cohort", 7, 1), {"id": 1})
    assert store.generation(b"cohort:") == start  # not before the batch is written
    batch.commit()
    assert store.generation(b"cohort:") == start + 1
    store.put(key("cohort", 7, 2), {"id": 2})
    assert store.generation(b"cohort:") == start + 2


# Kept list pages (`api.services.cohort_list.ListPages`) -------------------------------------------


def kept_pages(api: Api) -> int:
    return len(api.ctx.list_pages._pages)


def test_list_page_is_kept_and_served_again_while_nothing_changed(api: Api) -> None:
    api.create(name="a")
    first = api.get("cohorts/")
    assert kept_pages(api) == 1
    again = api.get("cohorts/")
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert kept_pages(api) == 1


def test_list_page_shows_a_member_count_folded_after_the_page_was_kept(api: Api) -> None:
    """Scenario: a computed cohort with no members is listed (and kept), then a person enters it:
    the next list shows count 1, as a retrieve does."""
    cohort = api.create(name="c", filters=person_filters())
    api.finish(cohort["id"], 1)
    assert api.get("cohorts/").json()["results"][0]["count"] == 0
    api.flip(cohort["id"], api.person())
    assert api.get("cohorts/").json()["results"][0]["count"] == 1
    assert api.get(f"cohorts/{cohort['id']}/").json()["count"] == 1


def test_list_page_shows_a_static_member_added_after_the_page_was_kept(api: Api) -> None:
    static = api.create(name="s", is_static=True)
    assert api.get("cohorts/").json()["results"][0]["count"] == 0
    person = api.person()
    added = api.patch(f"cohorts/{static['id']}/add_persons_to_static_cohort/", json={"person_ids": [person]})
    assert added.status_code == 200
    assert api.get("cohorts/").json()["results"][0]["count"] == 1


def test_list_pages_are_kept_per_url_and_project(api: Api) -> None:
    """Scenario: two page sizes of one project and the same path under `@current`: three answers,
    each with its own links, none served for another."""
    for name in ("a", "b"):
        api.create(name=name)
    whole = api.get("cohorts/").json()
    first = api.get("cohorts/?limit=1").json()
    current = api.get("cohorts/?limit=1", project="@current").json()
    assert [r["name"] for r in whole["results"]] == ["b", "a"] and whole["next"] is None
    assert [r["name"] for r in first["results"]] == ["b"] and "offset=1" in first["next"]
    assert current["next"].startswith("http://testserver/api/projects/@current/")
    other = create_project(api.settings, "Other")
    everywhere = api.new_key(["*"], project_id=None)
    assert api.get("cohorts/", project=other["id"], key=everywhere).json()["count"] == 0
    assert api.get("cohorts/", key=everywhere).json() == whole


def test_list_search_is_answered_but_not_kept(api: Api) -> None:
    api.create(name="alpha")
    assert api.get("cohorts/?search=alp").json()["results"][0]["search_match_type"] == "exact"
    assert kept_pages(api) == 0


def test_render_token_moves_after_an_auth_write(api: Api) -> None:
    """A cohort's `created_by` is read from the auth database: a CLI write there (a new key, a new
    user) must move the token the kept pages are checked against."""
    before = api.ctx.reader.render_token()
    assert api.ctx.reader.render_token() == before
    api.new_key(["*"], email="bob@acme.com")
    assert api.ctx.reader.render_token() != before


def test_sequence_moves_with_every_write_and_only_then(store: Store) -> None:
    start = store.sequence()
    store.get(key("n"))
    store.scan(b"n")
    assert store.sequence() == start
    store.put(key("n"), 1)
    assert store.sequence() > start
    moved = store.sequence()
    batch = store.batch()
    batch.put(key("n"), 2)
    batch.delete(key("m"))
    batch.commit()
    assert store.sequence() > moved


# Rendered rows kept by the reader (`CohortReader.render_many`) ------------------------------------


def test_basic_and_search_pages_never_change_the_rows_other_pages_show(api: Api) -> None:
    """Scenario: the same rendered rows serve a full page, a `basic` page (fields dropped) and a
    search (a field added): each page shows its own fields, in every order of requests."""
    cohort = api.create(name="alpha")
    full = api.get("cohorts/").json()["results"][0]
    basic = api.get("cohorts/?basic=true").json()["results"][0]
    found = api.get("cohorts/?search=alp").json()["results"][0]
    assert "groups" in full and "search_match_type" not in full
    assert "groups" not in basic and "query" not in basic and "search_match_type" not in basic
    assert found["search_match_type"] == "exact" and "groups" in found
    assert api.get("cohorts/?limit=5").json()["results"][0] == full
    assert api.get(f"cohorts/{cohort['id']}/").json() == full


def test_only_the_row_whose_count_moved_is_rendered_again(api: Api) -> None:
    """Scenario: two computed cohorts are listed; a person enters one of them: the next page
    renders that row again (new count) and serves the other as it was rendered."""
    first, second = (api.create(name=name, filters=person_filters()) for name in ("first", "second"))
    for cohort in (first, second):
        api.finish(cohort["id"], 1)
    before = {row["id"]: row for row in api.ctx.reader.render_many(api.ctx.reader.listed(api.project_id).live)}
    api.flip(first["id"], api.person())
    after = {row["id"]: row for row in api.ctx.reader.render_many(api.ctx.reader.listed(api.project_id).live)}
    assert after[second["id"]] is before[second["id"]]
    assert (before[first["id"]]["count"], after[first["id"]]["count"]) == (0, 1)
    assert [row["count"] for row in api.get("cohorts/").json()["results"]] == [0, 1]


def test_a_creator_changed_through_the_cli_is_shown_on_the_next_render(api: Api) -> None:
    """An auth write moves the stamp that kept rows are checked against, so `created_by` is read
    again (here: the same user, so the same text, from a fresh lookup)."""
    api.finish(api.create(name="a", filters=person_filters())["id"], 1)
    listed = api.ctx.reader.listed(api.project_id).live
    kept = api.ctx.reader.render_many(listed)[0]
    assert api.ctx.reader.render_many(listed)[0] is kept
    api.new_key(["*"], email="bob@acme.com")
    again = api.ctx.reader.render_many(listed)[0]
    assert again is not kept and again == kept
