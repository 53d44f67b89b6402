"""File-system views (design §8, reference §4)."""

from __future__ import annotations

from tests.unit.api.conftest import Api


def test_each_retrieve_logs_one_view_per_user_and_cohort_refreshing_viewed_at(api: Api) -> None:
    a = api.create(name="a")
    b = api.create(name="b")
    api.get(f"cohorts/{a['id']}/")
    api.clock.advance(10)
    api.get(f"cohorts/{b['id']}/")
    api.clock.advance(10)
    api.get(f"cohorts/{a['id']}/")
    views = api.get("file_system/log_view/?type=cohort").json()
    assert views == [
        {"type": "cohort", "ref": str(a["id"]), "viewed_at": "2026-01-01T00:00:20.000000Z"},
        {"type": "cohort", "ref": str(b["id"]), "viewed_at": "2026-01-01T00:00:10.000000Z"},
    ]


def test_list_and_404_do_not_log_views(api: Api) -> None:
    api.create(name="a")
    api.get("cohorts/")
    api.get("cohorts/999/")
    assert api.get("file_system/log_view/").json() == []


def test_views_are_per_user(api: Api) -> None:
    cohort = api.create(name="a")
    other = api.new_key(["*"], email="bob@acme.com")
    api.get(f"cohorts/{cohort['id']}/", key=other)
    assert api.get("file_system/log_view/").json() == []
    assert len(api.get("file_system/log_view/", key=other).json()) == 1


def test_post_log_view_is_204_and_limit_and_type_filter(api: Api) -> None:
    for ref, at in (("1", "2025-01-01T00:00:00Z"), ("2", "2025-01-02T00:00:00Z")):
        response = api.post("file_system/log_view/", json={"type": "cohort", "ref": ref, "viewed_at": at})
        assert response.status_code == 204
        assert response.content == b""
    api.post("file_system/log_view/", json={"type": "insight", "ref": "9"})
    assert [v["ref"] for v in api.get("file_system/log_view/?type=cohort&limit=1").json()] == ["2"]
    assert [v["ref"] for v in api.get("file_system/log_view/?type=cohort").json()] == ["2", "1"]
    assert api.get("file_system/log_view/?type=insight").json()[0]["viewed_at"] == "2026-01-01T00:00:00.000000Z"


def test_post_log_view_validation(api: Api) -> None:
    response = api.post("file_system/log_view/", json={"ref": "1"})
    assert response.status_code == 400
    assert response.json()["attr"] == "type" and response.json()["code"] == "required"
    response = api.post("file_system/log_view/", json={"type": "cohort", "ref": "1", "viewed_at": "yesterday"})
    assert response.status_code == 400 and response.json()["attr"] == "viewed_at"
    assert api.post("file_system/log_view/", json=["x"]).status_code == 400


def test_file_system_scopes(api: Api) -> None:
    reader = api.new_key(["file_system:read"])
    assert api.get("file_system/log_view/", key=reader).status_code == 200
    response = api.post("file_system/log_view/", key=reader, json={"type": "cohort", "ref": "1"})
    assert response.status_code == 403
    assert response.json()["detail"] == "API key missing required scope 'file_system:write'"
