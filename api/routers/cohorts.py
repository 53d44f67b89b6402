"""`/api/projects/:project_id/cohorts/` and `/cohorts/:id/`: list, create, retrieve, update, delete.

HTTP shape only (reference §1.1-§1.5); rules live in `api.services.cohorts`.

List and retrieve are `async`: they only read the views (a few RocksDB reads, never Kafka; the
retrieve's view is queued without blocking), and a sync route costs each request a hop through
the thread pool, which was a large part of a read's CPU. Writes stay sync: they wait on Kafka.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import CohortBody, CohortRead, CohortWriteAccess, Ctx, Page
from api.errors import not_found
from api.openapi import cohort_body_doc
from api.responses import FastJSONResponse
from api.schemas.cohort import CohortPage, CohortPublic
from api.services.cohort_list import ListQuery, list_page

__all__ = ["CohortId", "router"]

router = APIRouter(prefix="/api/projects/{project_id}", tags=["cohorts"])

CohortId = Annotated[int, Path(description="A cohort id.")]


@router.get("/cohorts/", operation_id="cohorts_list", responses={200: {"model": CohortPage}})
async def list_(
    access: CohortRead,
    ctx: Ctx,
    page: Page,
    request: Request,
    type: Annotated[str | None, Query(description="`static` or `dynamic`; other values are ignored.")] = None,
    created_by_id: Annotated[int | None, Query()] = None,
    search: Annotated[str | None, Query(description="Name search, at most 200 characters.")] = None,
    basic: Annotated[bool, Query()] = False,
    hide_behavioral_cohorts: Annotated[bool, Query()] = False,
) -> Response:
    query = ListQuery(type, created_by_id, search, basic, hide_behavioral_cohorts)

    def answer() -> Response:
        body = list_page(ctx.reader, ctx.list_pages, access.project_id, str(request.url), query, page)
        return Response(body, media_type="application/json")

    # A search compares every name (difflib): a thread, so the event loop is never held long.
    return await run_in_threadpool(answer) if search else answer()


@router.post(
    "/cohorts/",
    operation_id="cohorts_create",
    status_code=201,
    responses={201: {"model": CohortPublic}},
    openapi_extra=cohort_body_doc(),
)
def create(access: CohortWriteAccess, ctx: Ctx, body: CohortBody) -> Response:
    return JSONResponse(ctx.cohorts.create(access.project_id, access.user, body), status_code=201)


@router.get("/cohorts/{cohort_id}/", operation_id="cohorts_retrieve", responses={200: {"model": CohortPublic}})
async def retrieve(access: CohortRead, ctx: Ctx, cohort_id: CohortId) -> Response:
    row = ctx.reader.row(access.project_id, cohort_id)
    if row is None:
        raise not_found()
    rendered = ctx.reader.render(row)
    ctx.file_system.log_retrieve(access.project_id, access.user["id"], "cohort", str(cohort_id), ctx.clock())
    return FastJSONResponse(rendered)


@router.patch(
    "/cohorts/{cohort_id}/",
    operation_id="cohorts_partial_update",
    responses={200: {"model": CohortPublic}},
    openapi_extra=cohort_body_doc(),
)
def partial_update(access: CohortWriteAccess, ctx: Ctx, cohort_id: CohortId, body: CohortBody) -> Response:
    return JSONResponse(ctx.cohorts.update(access.project_id, cohort_id, access.user, body))


@router.put(
    "/cohorts/{cohort_id}/",
    operation_id="cohorts_update",
    responses={200: {"model": CohortPublic}},
    openapi_extra=cohort_body_doc(),
)
def update(access: CohortWriteAccess, ctx: Ctx, cohort_id: CohortId, body: CohortBody) -> Response:
    return JSONResponse(ctx.cohorts.update(access.project_id, cohort_id, access.user, body))


@router.delete(
    "/cohorts/{cohort_id}/",
    operation_id="cohorts_destroy",
    status_code=405,
    response_class=Response,
    responses={405: {"description": 'Always: soft delete with PATCH `{"deleted": true}`.', "x-empty": True}},
)
def destroy(access: CohortWriteAccess, cohort_id: CohortId) -> Response:
    """Hard deletion is forbidden (reference §1.5): 405 with an empty body, without a lookup."""
    return Response(status_code=405)
