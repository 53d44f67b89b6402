"""`cohorts/activity/` and `cohorts/:id/activity/` (reference §1.6, §1.7, §6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import ActivityRead, Ctx
from api.pagination import activity_page, page_number
from api.schemas.activity import ActivityPage

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project_id}", tags=["cohorts"])

PageParam = Annotated[int | None, Query(ge=1, description="1-based page (default 1).")]
LimitParam = Annotated[int | None, Query(ge=1, description="Page size (default 10).")]


def _page(ctx, request: Request, team_id: int, item_id: int | None, page: int | None, limit: int | None) -> Response:
    page_, limit_ = page_number(None if page is None else str(page), None if limit is None else str(limit))
    rows, total = ctx.activity.page(team_id, item_id, page_, limit_)
    return JSONResponse(activity_page(str(request.url), rows, total, page_, limit_))


@router.get(
    "/cohorts/activity/", operation_id="cohorts_all_activity_retrieve", responses={200: {"model": ActivityPage}}
)
def all_activity(
    access: ActivityRead, ctx: Ctx, request: Request, page: PageParam = None, limit: LimitParam = None
) -> Response:
    return _page(ctx, request, access.project_id, None, page, limit)


@router.get(
    "/cohorts/{cohort_id}/activity/",
    operation_id="cohorts_activity_retrieve",
    responses={
        200: {"model": ActivityPage},
        404: {"description": "No such cohort in the project (empty body).", "x-empty": True},
    },
)
def activity(
    access: ActivityRead,
    ctx: Ctx,
    request: Request,
    cohort_id: Annotated[int, Path()],
    page: PageParam = None,
    limit: LimitParam = None,
) -> Response:
    if ctx.reader.row(access.project_id, cohort_id) is None:
        return Response(status_code=404)
    return _page(ctx, request, access.project_id, cohort_id, page, limit)
