"""`file_system/log_view/`: read and log "recently viewed" entries (design §8, reference §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import Ctx, FileSystemRead, FileSystemWrite, JsonBody
from api.errors import from_pydantic_error, validation
from api.schemas.file_system import LogViewCreate, LogViewRow
from cohorts.timestamps import from_datetime

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project_id}", tags=["file_system"])


@router.get(
    "/file_system/log_view/",
    operation_id="file_system_log_view_list",
    responses={200: {"model": list[LogViewRow]}},
)
def recent_views(
    access: FileSystemRead,
    ctx: Ctx,
    type: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return JSONResponse(ctx.file_system.recent(access.project_id, access.user["id"], type, limit))


@router.post(
    "/file_system/log_view/",
    operation_id="file_system_log_view_create",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Logged."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LogViewCreate"}}},
        }
    },
)
def log_view(access: FileSystemWrite, ctx: Ctx, body: JsonBody) -> Response:
    if not isinstance(body, dict):
        raise validation("Invalid data. Expected a dictionary.")
    body = {k: v for k, v in body.items() if k != "personal_api_key"}
    try:
        parsed = LogViewCreate.model_validate(body)
    except ValidationError as exc:
        raise from_pydantic_error(exc.errors()[0]) from None
    viewed_at_us = ctx.clock() if parsed.viewed_at is None else from_datetime(parsed.viewed_at)
    ctx.file_system.log(access.project_id, access.user["id"], parsed.type, parsed.ref, viewed_at_us)
    return Response(status_code=204)
