"""Who is calling, and may they touch this project (reference §8, §0.1; design §8).

Order of the checks, each with PostHog's status and text:
1. Credentials: `Authorization: Bearer phx_…`, else `personal_api_key` in the query string, else
   in a JSON body. None -> 401 not_authenticated; unknown key -> 401 authentication_failed naming
   where the key was found.
2. Project: `@current` is the key's project when the key is restricted to exactly one, else the
   user's current project. Unknown id -> 404 "Project not found."; a key restricted to other
   projects -> 403. An unrestricted key reaches every project: the service is one organisation.
3. Scopes: the first required scope the key lacks -> 403 "API key missing required scope '…'".

Never: log or echo a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request

from api.auth_db import AuthDirectory
from api.errors import authentication_failed, not_authenticated, not_found, permission_denied
from api.scopes import missing_scope

__all__ = ["Caller", "ProjectAccess", "authenticate", "resolve_project"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated personal API key and its user."""

    key_id: str
    user: dict[str, Any]
    scopes: tuple[str, ...]
    scoped_teams: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """A caller allowed to use one project with the scopes a route needs."""

    caller: Caller
    project_id: int

    @property
    def user(self) -> dict[str, Any]:
        return self.caller.user


async def _find_key(request: Request) -> tuple[str, str] | None:
    """`(key, where)`: PostHog's `PersonalAPIKeyAuthentication.find_key_with_source`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "header"
    query_key = request.query_params.get("personal_api_key")
    if query_key:
        return query_key, "query string"
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        body = await request.body()
        if body and b"personal_api_key" in body:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return None
            if isinstance(data, dict) and isinstance(data.get("personal_api_key"), str) and data["personal_api_key"]:
                return data["personal_api_key"], "body"
    return None


async def authenticate(request: Request, directory: AuthDirectory) -> Caller:
    found = await _find_key(request)
    if found is None:
        raise not_authenticated()
    raw_key, where = found
    record = directory.key(raw_key)
    user = None if record is None else directory.user(record["user_id"])
    if record is None or user is None:
        raise authentication_failed(f"Personal API key found in request {where} is invalid.")
    teams = record.get("scoped_teams")
    return Caller(
        key_id=record["id"],
        user=user,
        scopes=tuple(record.get("scopes") or ()),
        scoped_teams=None if teams is None else tuple(teams),
    )


def resolve_project(
    caller: Caller, raw_project: str, directory: AuthDirectory, scopes: tuple[str, ...]
) -> ProjectAccess:
    if raw_project == "@current":
        if caller.scoped_teams is not None and len(caller.scoped_teams) == 1:
            project_id = caller.scoped_teams[0]
        else:
            project_id = caller.user.get("current_project_id")
            if project_id is None:
                raise not_found("Project not found.")
    elif raw_project.isascii() and raw_project.isdigit() and len(raw_project) <= 18:
        project_id = int(raw_project)
    else:
        raise not_found("Project not found.")
    if directory.project(project_id) is None:
        raise not_found("Project not found.")
    if caller.scoped_teams is not None and project_id not in caller.scoped_teams:
        raise permission_denied(f"API key does not have access to the requested project: ID {project_id}.")
    lacking = missing_scope(caller.scopes, scopes)
    if lacking is not None:
        raise permission_denied(f"API key missing required scope '{lacking}'")
    return ProjectAccess(caller=caller, project_id=project_id)
