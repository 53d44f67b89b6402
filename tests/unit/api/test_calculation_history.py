"""Calculation reports -> history rows and cohort fields (reference §1.11, §5, §7)."""

from __future__ import annotations

from tests.unit.api.conftest import Api, person_filters


def test_history_row_is_running_until_every_partition_finished(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    api.report(cohort["id"], 1, 0, started_at="2026-01-01T00:00:01Z", finished_at="2026-01-01T00:00:03Z", count=2)
    api.report(cohort["id"], 1, 1, started_at="2026-01-01T00:00:00Z")
    page = api.get(f"cohorts/{cohort['id']}/calculation_history/").json()
    assert page["count"] == 1 and page["next"] is None and page["previous"] is None
    row = page["results"][0]
    assert row["started_at"] == "2026-01-01T00:00:00.000000Z"
    assert row["finished_at"] is None and row["is_completed"] is False and row["duration_seconds"] is None
    assert row["filters"] == cohort["filters"]
    assert api.get(f"cohorts/{cohort['id']}/").json()["is_calculating"] is True


def test_completed_calculation_sets_cohort_fields(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    people = [api.person(), api.person(), api.person()]
    for person in people:
        api.flip(cohort["id"], person)
    api.finish(cohort["id"], 1, counts=[1, 2, 0, 0])
    body = api.get(f"cohorts/{cohort['id']}/").json()
    assert (body["version"], body["pending_version"], body["is_calculating"]) == (1, 1, False)
    assert body["count"] == 3
    assert body["last_calculation"] == "2026-01-01T00:00:05.000000Z"
    assert body["errors_calculating"] == 0 and body["last_error_message"] is None
    row = api.get(f"cohorts/{cohort['id']}/calculation_history/").json()["results"][0]
    assert row["count"] == 3 and row["is_completed"] is True and row["is_successful"] is True
    assert row["duration_seconds"] == 5.0
    assert row["queries"] == [] and row["main_query"] is None and row["total_query_ms"] == 0


def test_a_newer_pending_version_makes_the_cohort_calculating_again(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    api.finish(cohort["id"], 1)
    api.patch(f"cohorts/{cohort['id']}/", json={"name": "renamed"})
    body = api.get(f"cohorts/{cohort['id']}/").json()
    assert (body["version"], body["pending_version"], body["is_calculating"]) == (1, 2, True)


def test_errors_count_consecutive_failures_and_show_friendly_text(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    api.finish(cohort["id"], 1)
    for version in (2, 3):
        api.patch(f"cohorts/{cohort['id']}/", json={"name": f"v{version}"})
        api.finish(cohort["id"], version, error="timeout")
    body = api.get(f"cohorts/{cohort['id']}/").json()
    assert body["errors_calculating"] == 2
    assert "taking too long" in body["last_error_message"]
    rows = api.get(f"cohorts/{cohort['id']}/calculation_history/").json()["results"]
    assert rows[0]["is_successful"] is False and "taking too long" in rows[0]["error"]


def test_history_pagination_uses_relative_query_strings(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    for version in (1, 2, 3):
        api.report(cohort["id"], version, 0, started_at=f"2026-01-01T00:00:0{version}Z")
    first = api.get(f"cohorts/{cohort['id']}/calculation_history/?limit=2").json()
    assert first["count"] == 3 and first["next"] == "?limit=2&offset=2" and first["previous"] is None
    assert [r["started_at"][17:19] for r in first["results"]] == ["03", "02"]
    last = api.get(f"cohorts/{cohort['id']}/calculation_history/?limit=2&offset=2").json()
    assert last["next"] is None and last["previous"] == "?limit=2&offset=0"


def test_history_of_unknown_cohort_is_404(api: Api) -> None:
    assert api.get("cohorts/999/calculation_history/").status_code == 404


def test_replayed_report_changes_nothing_and_late_started_does_not_reopen(api: Api) -> None:
    cohort = api.create(name="c", filters=person_filters())
    api.finish(cohort["id"], 1, counts=[1, 1, 1, 1])
    api.finish(cohort["id"], 1, counts=[1, 1, 1, 1])
    api.report(cohort["id"], 1, 2, started_at="2026-01-01T00:00:00Z")
    row = api.get(f"cohorts/{cohort['id']}/calculation_history/").json()["results"][0]
    assert row["count"] == 4 and row["is_completed"] is True
