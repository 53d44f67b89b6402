"""Scenario 7 of the reliability issue: keys x scopes x projects x endpoints, every cell checked.

Scenario: two projects, A and B, each with a dynamic and a static cohort (a member each) and an
activity history. Keys of project A with each scope set of interest, an unrestricted key, an
invalid key and no key call every operation of `/api/schema/` under `/api/projects/{project_id}/`
on A, on B, on an unknown project and on `@current`. Each cell must answer exactly what the rules
of `api.auth` / `api.scopes` say: 401 (no or bad key), 404 "Project not found." (unknown project),
403 naming the project (a key restricted to another project), 403 naming the first missing scope,
or the operation's own answer. Then every key of A that may read or write is pointed, through
project A, at B's cohort ids (404 for every cohort route), and B is compared with a snapshot taken
before: nothing of it changed and nothing was written with B's team id.

The operations come from the app's own schema and must equal `REQUIRED_SCOPES`' keys, so a new
endpoint fails this test until its scopes are added here. The api's rules, not the broker, are
the subject: it runs in-process with the memory publisher (tests/unit/api/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from api.admin import create_key, create_project
from api.scopes import has_scope

from .conftest import Api, person_filters

#: operation id -> the scopes it needs, in the order they are checked (api/deps.py).
REQUIRED_SCOPES: dict[str, tuple[str, ...]] = {
    "cohorts_list": ("cohort:read",),
    "cohorts_create": ("cohort:write",),
    "cohorts_retrieve": ("cohort:read",),
    "cohorts_update": ("cohort:write",),
    "cohorts_partial_update": ("cohort:write",),
    "cohorts_destroy": ("cohort:write",),
    "cohorts_persons_retrieve": ("cohort:read", "person:read"),
    "cohorts_all_activity_retrieve": ("activity_log:read",),
    "cohorts_activity_retrieve": ("activity_log:read",),
    "cohorts_calculation_history_retrieve": ("cohort:read",),
    "cohorts_add_persons_to_static_cohort_partial_update": ("cohort:write",),
    "cohorts_remove_person_from_static_cohort_partial_update": ("cohort:write",),
    "cohorts_duplicate_as_static_cohort_retrieve": ("cohort:write",),
    "file_system_log_view_list": ("file_system:read",),
    "file_system_log_view_create": ("file_system:write",),
}

#: operation id -> (body sent, status when allowed). Bodies are harmless: no-op or refused writes,
#: or a write that stays in the caller's own project.
ALLOWED: dict[str, tuple[Any, int]] = {
    "cohorts_list": (None, 200),
    "cohorts_create": ({"name": "made by the matrix"}, 201),
    "cohorts_retrieve": (None, 200),
    "cohorts_update": ({}, 200),
    "cohorts_partial_update": ({}, 200),
    "cohorts_destroy": (None, 405),
    "cohorts_persons_retrieve": (None, 200),
    "cohorts_all_activity_retrieve": (None, 200),
    "cohorts_activity_retrieve": (None, 200),
    "cohorts_calculation_history_retrieve": (None, 200),
    "cohorts_add_persons_to_static_cohort_partial_update": ({"person_ids": []}, 400),
    "cohorts_remove_person_from_static_cohort_partial_update": ({"person_id": ""}, 400),
    "cohorts_duplicate_as_static_cohort_retrieve": (None, 200),
    "file_system_log_view_list": (None, 200),
    "file_system_log_view_create": ({"type": "cohort", "ref": "1"}, 204),
}

#: Scope sets of the keys of project A; `[]` is a legacy key (everything allowed).
SCOPE_SETS: list[list[str]] = [
    ["*"],
    [],
    ["cohort:read"],
    ["cohort:write"],
    ["person:read"],
    ["cohort:read", "person:read"],
    ["activity_log:read"],
    ["activity_log:write"],
    ["file_system:read"],
    ["file_system:write"],
    ["feature_flag:write", "insight:read"],
]

UNKNOWN_PROJECT = 999_999


def _operations(api: Api) -> list[tuple[str, str, str]]:
    """(method, path template, operation id) of every project-scoped operation in the schema."""
    schema = api.client.get("/api/schema/").json()
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert path.startswith("/api/projects/{project_id}/") or path in ("/_health", "/_ready"), path
                if path.startswith("/api/projects/"):
                    found.append((method.upper(), path, operation["operationId"]))
    return found


def _world(api: Api) -> dict[str, Any]:
    """Projects A (the fixture's) and B with cohorts, a static member and activity each."""
    b = create_project(api.settings, "B")
    b_key = create_key(api.settings, b["id"], "bob@b.com", ["*"])["key"]
    world: dict[str, Any] = {"b_id": b["id"], "b_key": b_key}
    for name, project, key in (("a", api.project_id, api.key), ("b", b["id"], b_key)):
        person = api.person({"email": f"x@{name}.com"}, team_id=project)
        dynamic = _ok(
            api.request(
                "POST", "cohorts/", key=key, project=project, json={"name": f"{name}-dyn", "filters": person_filters()}
            ),
            201,
        )
        static = _ok(
            api.request(
                "POST", "cohorts/", key=key, project=project, json={"name": f"{name}-static", "is_static": True}
            ),
            201,
        )
        _ok(
            api.request(
                "PATCH",
                f"cohorts/{static['id']}/add_persons_to_static_cohort/",
                key=key,
                project=project,
                json={"person_ids": [person]},
            ),
            200,
        )
        world[name] = {"dynamic": dynamic["id"], "static": static["id"], "person": person}
    return world


def _ok(response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _snapshot(api: Api, project: int, key: str, cohorts: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"list": _ok(api.request("GET", "cohorts/?limit=1000", key=key, project=project), 200)}
    out["activity"] = _ok(api.request("GET", "cohorts/activity/?limit=1000", key=key, project=project), 200)
    for cohort_id in cohorts:
        for sub in ("", "persons/", "calculation_history/"):
            out[f"{cohort_id}/{sub}"] = _ok(
                api.request("GET", f"cohorts/{cohort_id}/{sub}", key=key, project=project), 200
            )
    return out


def _expected(key: dict[str, Any], target: str, world: dict[str, Any], needs: tuple[str, ...], api: Api):
    """(status, code, detail) the rules give, or None for the operation's own answer."""
    if key["kind"] == "none":
        return 401, "not_authenticated", "Authentication credentials were not provided."
    if key["kind"] == "invalid":
        return 401, "authentication_failed", "Personal API key found in request header is invalid."
    project = {"a": api.project_id, "b": world["b_id"], "unknown": UNKNOWN_PROJECT, "current": api.project_id}[target]
    if target == "unknown" or (target == "current" and key["kind"] == "unrestricted"):
        # An unrestricted key's `@current` is its user's current project; this user has none.
        return 404, "not_found", "Project not found."
    if key["projects"] is not None and project not in key["projects"]:
        return 403, "permission_denied", f"API key does not have access to the requested project: ID {project}."
    for scope in needs:
        if not has_scope(key["scopes"], scope):
            return 403, "permission_denied", f"API key missing required scope '{scope}'"
    return None


def _path(template: str, project: str | int, cohort: int) -> str:
    return template.replace("{project_id}", str(project)).replace("{cohort_id}", str(cohort))


def test_every_key_scope_project_and_endpoint_gets_exactly_its_answer(api: Api) -> None:
    operations = _operations(api)
    assert {op for _, _, op in operations} == set(REQUIRED_SCOPES), "a new endpoint needs its scopes in this matrix"
    world = _world(api)
    b_cohorts = [world["b"]["dynamic"], world["b"]["static"]]
    b_before = _snapshot(api, world["b_id"], world["b_key"], b_cohorts)
    b_records_before = _records_of(api, world["b_id"])

    keys: list[dict[str, Any]] = [{"kind": "none", "token": "", "scopes": [], "projects": None}]
    keys.append({"kind": "invalid", "token": "phx_" + "0" * 40, "scopes": [], "projects": None})
    for scopes in SCOPE_SETS:
        token = api.new_key(scopes)
        keys.append({"kind": "a", "token": token, "scopes": scopes, "projects": [api.project_id]})

    cells, denied = _run_cells(api, world, keys, operations)
    # No key of A reaches B's cohorts through its own project either.
    cross = 0
    for key in keys:
        if key["kind"] != "a":
            continue
        for method, template, op in operations:
            if "{cohort_id}" not in template or op == "cohorts_destroy":
                continue
            if _expected(key, "a", world, REQUIRED_SCOPES[op], api) is not None:
                continue
            for cohort in b_cohorts:
                body, _ = ALLOWED[op]
                body = {"person_ids": [world["b"]["person"]]} if "add_persons" in op else body
                response = api.client.request(
                    method,
                    _path(template, api.project_id, cohort),
                    headers={"Authorization": f"Bearer {key['token']}"},
                    json=body,
                )
                cross += 1
                assert response.status_code == 404, (key["scopes"], method, template, response.text)

    assert _snapshot(api, world["b_id"], world["b_key"], b_cohorts) == b_before
    assert _records_of(api, world["b_id"]) == b_records_before, "a key of project A wrote into project B"

    # Unrestricted keys last: they may write into B by design (one organisation, api/auth.py).
    unrestricted = []
    for scopes in (["*"], ["cohort:read"]):
        token = create_key(api.settings, None, "root@a.com", scopes)["key"]
        unrestricted.append({"kind": "unrestricted", "token": token, "scopes": scopes, "projects": None})
    more_cells, more_denied = _run_cells(api, world, unrestricted, operations)
    cells, denied = cells + more_cells, denied + more_denied
    assert cells == (len(keys) + len(unrestricted)) * 4 * len(operations)
    assert denied > cells // 2 and cross > 0
    print(f"access matrix: {cells} cells ({denied} denials), {cross} cross-project attempts refused")


def _records_of(api: Api, team_id: int) -> list[bytes]:
    """Everything the publisher produced with `team_id`, except file-system views (a GET logs one)."""
    published = api.publisher
    catalog = [r.to_bytes() for r in published.catalog if r.team_id == team_id]
    control = [e.message.to_bytes() for e in published.control if e.message.team_id == team_id]
    log = [r.to_bytes() for r in published.api_log if getattr(r, "team_id", None) == team_id and r.kind != "view"]
    return catalog + control + log


def _run_cells(
    api: Api, world: dict[str, Any], keys: list[dict[str, Any]], operations: list[tuple[str, str, str]]
) -> tuple[int, int]:
    """Every key x target project x operation; returns (cells, denials)."""
    cells = denied = 0
    for key in keys:
        for target in ("a", "b", "unknown", "current"):
            project = {"a": api.project_id, "b": world["b_id"], "unknown": UNKNOWN_PROJECT, "current": "@current"}[
                target
            ]
            owner = world["b"] if target == "b" else world["a"]
            for method, template, op in operations:
                cohort = owner["static"] if "persons_to_static" in op or "from_static" in op else owner["dynamic"]
                body, allowed_status = ALLOWED[op]
                headers = {"Authorization": f"Bearer {key['token']}"} if key["token"] else {}
                response = api.client.request(method, _path(template, project, cohort), headers=headers, json=body)
                cells += 1
                want = _expected(key, target, world, REQUIRED_SCOPES[op], api)
                where = f"{key['kind']} {key['scopes']} -> {target}: {method} {template}"
                if want is None:
                    assert response.status_code == allowed_status, (where, response.status_code, response.text)
                    continue
                denied += 1
                status, code, detail = want
                assert response.status_code == status, (where, response.status_code, response.text)
                kind = "invalid_request" if status == 404 else "authentication_error"
                assert response.json() == {"type": kind, "code": code, "detail": detail, "attr": None}, where
    return cells, denied


@pytest.mark.parametrize("scopes", [["cohort:read"], ["person:read"]])
def test_persons_of_a_cohort_need_both_cohort_read_and_person_read(api: Api, scopes: list[str]) -> None:
    cohort = api.create(name="x", filters=person_filters())
    response = api.get(f"cohorts/{cohort['id']}/persons/", key=api.new_key(scopes))
    missing = "person:read" if scopes == ["cohort:read"] else "cohort:read"
    assert response.status_code == 403
    assert response.json()["detail"] == f"API key missing required scope '{missing}'"
