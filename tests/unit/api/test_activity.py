"""Activity log endpoints and entries (reference §1.6, §1.7, §6, §0.4 style 2)."""

from __future__ import annotations

from tests.unit.api.conftest import Api, person_filters


def strip(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("id", "created_at", "is_system", "was_impersonated", "client")}


def test_created_entry_has_exactly_posthogs_detail(api: Api) -> None:
    cohort = api.create(name="x")
    page = api.get(f"cohorts/{cohort['id']}/activity/").json()
    assert page["total_count"] == 1 and page["next"] is None and page["previous"] is None
    assert strip(page["results"][0]) == {
        "user": {"first_name": "ann", "email": "ann@acme.com"},
        "activity": "created",
        "scope": "Cohort",
        "item_id": str(cohort["id"]),
        "detail": {"changes": None, "trigger": None, "name": "x", "short_id": None, "type": None},
    }
    assert page["results"][0]["created_at"] == "2026-01-01T00:00:00.000000Z"


def test_updated_entry_lists_each_changed_field_newest_first(api: Api) -> None:
    cohort = api.create(name="old", description="")
    api.patch(f"cohorts/{cohort['id']}/", json={"name": "new", "description": "d"})
    entry = api.get(f"cohorts/{cohort['id']}/activity/").json()["results"][0]
    assert entry["activity"] == "updated"
    assert entry["detail"]["name"] == "new"
    assert entry["detail"]["changes"] == [
        {"type": "Cohort", "action": "changed", "field": "name", "before": "old", "after": "new"},
        {"type": "Cohort", "action": "changed", "field": "description", "before": "", "after": "d"},
    ]


def test_change_from_null_is_created_and_to_null_is_deleted(api: Api) -> None:
    cohort = api.create()
    api.patch(f"cohorts/{cohort['id']}/", json={"name": "n"})
    api.patch(f"cohorts/{cohort['id']}/", json={"name": None})
    entries = api.get(f"cohorts/{cohort['id']}/activity/").json()["results"]
    assert [e["detail"]["changes"][0]["action"] for e in entries[:2]] == ["deleted", "created"]


def test_update_without_changes_writes_no_entry(api: Api) -> None:
    cohort = api.create(name="x", filters=person_filters())
    api.patch(f"cohorts/{cohort['id']}/", json={"name": "x", "filters": person_filters()})
    assert api.get(f"cohorts/{cohort['id']}/activity/").json()["total_count"] == 1


def test_deleted_and_restored_entries_include_the_deleted_change(api: Api) -> None:
    cohort = api.create(name="x")
    api.patch(f"cohorts/{cohort['id']}/", json={"deleted": True})
    api.patch(f"cohorts/{cohort['id']}/", json={"deleted": False})
    entries = api.get(f"cohorts/{cohort['id']}/activity/").json()["results"]
    assert [e["activity"] for e in entries] == ["restored", "deleted", "created"]
    assert entries[1]["detail"]["changes"] == [
        {"type": "Cohort", "action": "changed", "field": "deleted", "before": False, "after": True}
    ]


def test_unknown_cohort_activity_is_404_with_empty_body(api: Api) -> None:
    response = api.get("cohorts/999/activity/")
    assert response.status_code == 404
    assert response.content == b""


def test_all_activity_covers_every_cohort_of_the_project_only(api: Api) -> None:
    api.create(name="a")
    api.create(name="b")
    page = api.get("cohorts/activity/").json()
    assert [e["detail"]["name"] for e in page["results"]] == ["b", "a"]
    assert page["total_count"] == 2


def test_page_and_limit_pagination_rewrites_or_appends_parameters(api: Api) -> None:
    cohort = api.create(name="v0")
    for i in range(1, 5):
        api.patch(f"cohorts/{cohort['id']}/", json={"name": f"v{i}"})
    base = f"http://testserver/api/projects/{api.project_id}/cohorts/{cohort['id']}/activity/"
    first = api.get(f"cohorts/{cohort['id']}/activity/?limit=2").json()
    assert first["total_count"] == 5
    assert [e["detail"]["name"] for e in first["results"]] == ["v4", "v3"]
    assert first["next"] == base + "?limit=2&page=2"
    assert first["previous"] is None
    second = api.get(f"cohorts/{cohort['id']}/activity/?limit=2&page=2").json()
    assert second["next"] == base + "?limit=2&page=3"
    assert second["previous"] == base + "?limit=2&page=1"
    last = api.get(f"cohorts/{cohort['id']}/activity/?limit=2&page=3").json()
    assert [e["detail"]["name"] for e in last["results"]] == ["v0"]
    assert last["next"] is None
    beyond = api.get(f"cohorts/{cohort['id']}/activity/?limit=2&page=9").json()
    assert beyond["results"] == [] and beyond["total_count"] == 5


def test_default_activity_page_size_is_ten(api: Api) -> None:
    cohort = api.create(name="v")
    for i in range(11):
        api.patch(f"cohorts/{cohort['id']}/", json={"name": f"v{i}"})
    page = api.get(f"cohorts/{cohort['id']}/activity/").json()
    assert len(page["results"]) == 10 and page["next"] is not None


def test_non_numeric_page_is_400_not_500(api: Api) -> None:
    response = api.get("cohorts/activity/?page=abc")
    assert response.status_code == 400
    assert response.json()["attr"] == "page"


def test_static_membership_actions_are_logged(api: Api) -> None:
    cohort = api.create(name="list", is_static=True)
    person = api.person()
    api.patch(f"cohorts/{cohort['id']}/add_persons_to_static_cohort/", json={"person_ids": [person]})
    api.patch(f"cohorts/{cohort['id']}/remove_person_from_static_cohort/", json={"person_id": person})
    entries = api.get(f"cohorts/{cohort['id']}/activity/").json()["results"]
    assert [e["activity"] for e in entries] == ["person_removed_manually", "persons_added_manually", "created"]
    manual = {"type": "Cohort", "action": "changed", "field": None, "before": None, "after": None}
    assert entries[0]["detail"]["changes"] == [manual]
    assert entries[0]["item_id"] == str(cohort["id"])
