"""Scenario: nothing acknowledged is lost when the api restarts on the same data dir."""

from __future__ import annotations

from collections.abc import Callable

from tests.unit.api.conftest import Api, person_filters


def test_restart_keeps_definitions_members_activity_views_and_views_state(make_api: Callable[[], Api]) -> None:
    first = make_api()
    dynamic = first.create(name="dyn", filters=person_filters())
    first.patch(f"cohorts/{dynamic['id']}/", json={"name": "dyn2", "description": "d"})
    static = first.create(name="list", is_static=True)
    person = first.person({"email": "a@acme.com"})
    first.patch(f"cohorts/{static['id']}/add_persons_to_static_cohort/", json={"person_ids": [person]})
    first.flip(dynamic["id"], person)
    first.finish(dynamic["id"], 2, counts=[1, 0, 0, 0])
    first.get(f"cohorts/{static['id']}/")
    before = {
        "list": first.get("cohorts/").json(),
        "activity": first.get("cohorts/activity/").json(),
        "views": first.get("file_system/log_view/").json(),
        "persons": first.get(f"cohorts/{dynamic['id']}/persons/").json(),
        "history": first.get(f"cohorts/{dynamic['id']}/calculation_history/").json(),
    }
    first.stop()

    second = make_api()
    after = {
        "list": second.get("cohorts/").json(),
        "activity": second.get("cohorts/activity/").json(),
        "views": second.get("file_system/log_view/").json(),
        "persons": second.get(f"cohorts/{dynamic['id']}/persons/").json(),
        "history": second.get(f"cohorts/{dynamic['id']}/calculation_history/").json(),
    }
    assert after == before
    names = {row["name"]: row for row in after["list"]["results"]}
    assert names["dyn2"]["description"] == "d" and names["dyn2"]["version"] == 2 and names["dyn2"]["count"] == 1
    assert names["list"]["count"] == 1
    assert after["activity"]["total_count"] == 4
    # The store's sequences survive too: new activity still sorts first.
    second.patch(f"cohorts/{static['id']}/", json={"name": "list2"})
    assert second.get("cohorts/activity/").json()["results"][0]["detail"]["name"] == "list2"
