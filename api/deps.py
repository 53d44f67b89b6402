"""Dependencies, exported as `Annotated` aliases: the context, the caller, the project with the
scopes a route needs, pagination and the cohort write body.

A check written twice belongs here. Routers declare what they need by type:

    def list_cohorts(access: CohortRead, ctx: Ctx, page: Page): ...

The context, project and page dependencies are `async` although they do not await: they only
read in-memory state and the cached auth lookups, and a sync dependency costs every request a
hop through the thread pool (design: api read latency, docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Path, Query, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.auth import Caller, ProjectAccess, authenticate, resolve_project
from api.context import ApiContext
from api.errors import ApiError, from_pydantic_error, validation
from api.pagination import LimitOffset, limit_offset
from api.schemas.cohort import READ_ONLY_FIELDS, CohortWrite
from api.services.cohorts import WriteRequest

__all__ = [
    "ActivityRead",
    "CallerDep",
    "CohortBody",
    "CohortRead",
    "CohortWriteAccess",
    "Ctx",
    "FileSystemRead",
    "FileSystemWrite",
    "JsonBody",
    "Page",
    "PersonsRead",
]


async def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


async def get_caller(request: Request, ctx: Ctx) -> Caller:
    return await authenticate(request, ctx.auth)


CallerDep = Annotated[Caller, Depends(get_caller)]

ProjectId = Annotated[str, Path(description="Project id, or `@current`.", max_length=64)]


def _project_for(*scopes: str):
    # One dependency, not one per step (caller, context): FastAPI solves every sub-dependency
    # of every request, and that was a good part of a read's cost.
    async def dependency(project_id: ProjectId, request: Request) -> ProjectAccess:
        directory = request.app.state.ctx.auth
        return resolve_project(await authenticate(request, directory), project_id, directory, scopes)

    return dependency


CohortRead = Annotated[ProjectAccess, Depends(_project_for("cohort:read"))]
CohortWriteAccess = Annotated[ProjectAccess, Depends(_project_for("cohort:write"))]
PersonsRead = Annotated[ProjectAccess, Depends(_project_for("cohort:read", "person:read"))]
ActivityRead = Annotated[ProjectAccess, Depends(_project_for("activity_log:read"))]
FileSystemRead = Annotated[ProjectAccess, Depends(_project_for("file_system:read"))]
FileSystemWrite = Annotated[ProjectAccess, Depends(_project_for("file_system:write"))]


async def get_page(
    limit: Annotated[int | None, Query(ge=0, description="Page size (default 100).")] = None,
    offset: Annotated[int | None, Query(ge=0, description="Rows to skip.")] = None,
) -> LimitOffset:
    return limit_offset(None if limit is None else str(limit), None if offset is None else str(offset))


Page = Annotated[LimitOffset, Depends(get_page)]


# Bodies ----------------------------------------------------------------------------------------

_JSON_FIELDS = ("filters", "groups", "query", "_create_static_person_ids")
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json_body(request: Request) -> Any:
    """The JSON body (None when empty); 400 on malformed JSON, 415 on another media type."""
    body = await request.body()
    if not body.strip():
        return None
    ctype = _content_type(request)
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(
            415, "invalid_request", "unsupported_media_type", f'Unsupported media type "{ctype}" in request.'
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_request", "parse_error", f"JSON parse error - {exc}") from None


JsonBody = Annotated[Any, Depends(read_json_body)]


async def _read_form(request: Request) -> tuple[dict[str, Any], bytes | None]:
    data: dict[str, Any] = {}
    csv_bytes = None
    try:
        form = await request.form(max_files=2, max_fields=200)
    except HTTPException:
        raise
    except Exception as exc:  # python-multipart raises several unrelated types for a bad body
        raise ApiError(400, "invalid_request", "parse_error", f"Multipart form parse error - {exc}") from None
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "csv":
                    raise validation(f"Unexpected file field '{name}'.", name)
                csv_bytes = await value.read()
            else:
                data[name] = value
    finally:
        await form.close()
    for name in _JSON_FIELDS:
        if isinstance(data.get(name), str):
            try:
                data[name] = orjson.loads(data[name])
            except orjson.JSONDecodeError:
                raise validation("Value must be valid JSON.", name) from None
    return data, csv_bytes


async def parse_cohort_body(request: Request) -> WriteRequest:
    """A cohort create/update body: JSON, or multipart with an optional `csv` file (reference §0.2)."""
    csv_bytes = None
    if _content_type(request) in _FORM_TYPES:
        data, csv_bytes = await _read_form(request)
    else:
        data = await read_json_body(request)
        if data is None:
            data = {}
    if not isinstance(data, dict):
        kind = {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(type(data), "value")
        raise validation(f"Invalid data. Expected a dictionary, but got {kind}.")
    data = {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
    try:
        body = CohortWrite.model_validate(data)
    except ValidationError as exc:
        raise from_pydantic_error(exc.errors()[0]) from None
    return WriteRequest(body=body, fields=frozenset(body.model_fields_set), csv=csv_bytes)


CohortBody = Annotated[WriteRequest, Depends(parse_cohort_body)]
