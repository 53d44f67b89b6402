"""Personal API keys, scopes and projects (reference §8, §0.1; design §8, §9)."""

from __future__ import annotations

import pytest

from api.admin import AdminError, create_key, create_project
from tests.unit.api.conftest import Api


def envelope(response) -> tuple[int, str, str, str]:
    body = response.json()
    assert body["attr"] is None
    return response.status_code, body["type"], body["code"], body["detail"]


def test_no_credentials_is_401_not_authenticated_with_www_authenticate(api: Api) -> None:
    response = api.get("cohorts/", key="")
    assert envelope(response) == (
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
    )
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"headers": {"Authorization": "Bearer phx_nope"}}, "header"),
        ({"params": {"personal_api_key": "phx_nope"}}, "query string"),
    ],
)
def test_invalid_key_is_401_naming_where_it_was_found(api: Api, kwargs, where) -> None:
    response = api.client.get(api.url("cohorts/"), **kwargs)
    assert envelope(response) == (
        401,
        "authentication_error",
        "authentication_failed",
        f"Personal API key found in request {where} is invalid.",
    )


def test_invalid_key_in_json_body_names_the_body(api: Api) -> None:
    response = api.client.post(api.url("cohorts/"), json={"name": "x", "personal_api_key": "phx_nope"})
    assert envelope(response)[3] == "Personal API key found in request body is invalid."


def test_key_in_query_string_and_body_authenticate(api: Api) -> None:
    assert api.client.get(api.url("cohorts/"), params={"personal_api_key": api.key}).status_code == 200
    response = api.client.post(api.url("cohorts/"), json={"name": "x", "personal_api_key": api.key})
    assert response.status_code == 201
    assert response.json()["name"] == "x"


def test_missing_scope_is_403_naming_the_scope(api: Api) -> None:
    reader = api.new_key(["cohort:read"])
    assert api.get("cohorts/", key=reader).status_code == 200
    response = api.post("cohorts/", key=reader, json={"name": "x"})
    assert envelope(response) == (
        403,
        "authentication_error",
        "permission_denied",
        "API key missing required scope 'cohort:write'",
    )


def test_write_scope_implies_read(api: Api) -> None:
    writer = api.new_key(["cohort:write"])
    assert api.get("cohorts/", key=writer).status_code == 200
    assert api.post("cohorts/", key=writer, json={"name": "x"}).status_code == 201


def test_legacy_key_without_scopes_is_allowed_everything(api: Api) -> None:
    legacy = api.new_key([])
    cohort = api.post("cohorts/", key=legacy, json={"name": "x"}).json()
    assert api.get(f"cohorts/{cohort['id']}/persons/", key=legacy).status_code == 200
    assert api.get("cohorts/activity/", key=legacy).status_code == 200


def test_persons_needs_both_cohort_read_and_person_read(api: Api) -> None:
    cohort = api.create(name="x")
    only_cohort = api.new_key(["cohort:read"])
    response = api.get(f"cohorts/{cohort['id']}/persons/", key=only_cohort)
    assert envelope(response)[3] == "API key missing required scope 'person:read'"
    both = api.new_key(["cohort:read", "person:read"])
    assert api.get(f"cohorts/{cohort['id']}/persons/", key=both).status_code == 200


def test_activity_needs_activity_log_read(api: Api) -> None:
    cohort_only = api.new_key(["cohort:write"])
    response = api.get("cohorts/activity/", key=cohort_only)
    assert envelope(response)[3] == "API key missing required scope 'activity_log:read'"
    assert api.get("cohorts/activity/", key=api.new_key(["activity_log:read"])).status_code == 200


def test_key_of_project_a_cannot_read_or_write_project_b(api: Api) -> None:
    other = create_project(api.settings, "Other")
    other_key = api.new_key(["*"], project_id=other["id"], email="bob@other.com")
    cohort = api.create(name="secret")
    response = api.get(f"cohorts/{cohort['id']}/", key=other_key)
    assert envelope(response) == (
        403,
        "authentication_error",
        "permission_denied",
        f"API key does not have access to the requested project: ID {api.project_id}.",
    )
    assert api.patch(f"cohorts/{cohort['id']}/", key=other_key, json={"name": "x"}).status_code == 403
    # Through its own project, the other key sees nothing of project A.
    assert api.get(f"cohorts/{cohort['id']}/", key=other_key, project=other["id"]).status_code == 404
    assert api.get("cohorts/", key=other_key, project=other["id"]).json()["count"] == 0


def test_unknown_project_is_404_project_not_found(api: Api) -> None:
    for project in ("999", "abc", "@other"):
        response = api.get("cohorts/", project=project)
        assert envelope(response) == (404, "invalid_request", "not_found", "Project not found.")


def test_current_resolves_to_the_keys_single_project(api: Api) -> None:
    cohort = api.create(name="x")
    response = api.get(f"cohorts/{cohort['id']}/", project="@current")
    assert response.status_code == 200
    assert response.json()["name"] == "x"


def test_unrestricted_key_reaches_every_project_and_current_is_the_users_first(api: Api) -> None:
    other = create_project(api.settings, "Other")
    unrestricted = api.new_key(["*"], project_id=None)
    assert api.get("cohorts/", key=unrestricted, project=other["id"]).status_code == 200
    api.create(name="in A")
    listing = api.get("cohorts/", key=unrestricted, project="@current").json()
    assert [row["name"] for row in listing["results"]] == ["in A"]


def test_legacy_cohort_base_maps_to_current_project(api: Api) -> None:
    cohort = api.create(name="x")
    headers = {"Authorization": f"Bearer {api.key}"}
    assert api.client.get(f"/api/cohort/{cohort['id']}", headers=headers).json()["name"] == "x"
    assert api.client.get("/api/cohort/", headers=headers).json()["count"] == 1
    assert api.client.get(f"/api/environments/{api.project_id}/cohorts/", headers=headers).json()["count"] == 1


def test_key_created_while_the_api_runs_works_immediately(api: Api) -> None:
    assert api.get("cohorts/").status_code == 200  # the api has opened the auth db
    fresh = create_key(api.settings, api.project_id, "carol@acme.com", ["cohort:read"])["key"]
    assert api.get("cohorts/", key=fresh).status_code == 200
    project = create_project(api.settings, "Later")
    later_key = create_key(api.settings, project["id"], "carol@acme.com", ["cohort:read"])["key"]
    assert api.get("cohorts/", key=later_key, project=project["id"]).status_code == 200


def test_create_key_rejects_unknown_project_bad_scope_and_bad_email(api: Api) -> None:
    with pytest.raises(AdminError, match="no project"):
        create_key(api.settings, 999, "a@b.c", [])
    with pytest.raises(AdminError, match="invalid scope"):
        create_key(api.settings, api.project_id, "a@b.c", ["cohort:delete"])
    with pytest.raises(AdminError, match="email"):
        create_key(api.settings, api.project_id, "nobody", [])
    with pytest.raises(AdminError, match="empty"):
        create_project(api.settings, "  ")


def test_create_key_returns_the_documented_shape(api: Api) -> None:
    created = create_key(api.settings, api.project_id, "dan@acme.com", ["cohort:read", "cohort:read", "*"])
    assert created["key"].startswith("phx_")
    assert created["scopes"] == ["cohort:read", "*"]
    assert created["projects"] == [api.project_id]
    assert created["user"]["email"] == "dan@acme.com"
    assert set(created) == {"key", "id", "user", "scopes", "projects"}


def test_same_email_is_one_user(api: Api) -> None:
    first = create_key(api.settings, api.project_id, "eve@acme.com", [])
    second = create_key(api.settings, api.project_id, "EVE@acme.com", [])
    assert first["user"]["id"] == second["user"]["id"]
