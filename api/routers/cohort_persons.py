"""`cohorts/:id/persons/` as JSON or CSV (reference §1.8).

The route is `async` so that a short page (`CohortPersons.is_short`: read from the order index,
a bounded number of rows) costs no hop through the thread pool; every other page (filters,
search, static cohorts, CSV exports, deep offsets) reads every member and runs in a thread, so
the event loop is never held long."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import Ctx, PersonsRead
from api.errors import not_found
from api.pagination import LimitOffset, persons_page
from api.responses import FastJSONResponse
from api.routers.cohorts import CohortId
from api.schemas.persons import CohortPersonsPage
from api.services.cohort_persons import CSV_EXPORT_LIMIT, parse_properties, persons_csv

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project_id}", tags=["cohorts"])


@router.get(
    "/cohorts/{cohort_id}/persons/",
    operation_id="cohorts_persons_retrieve",
    responses={
        200: {
            "model": CohortPersonsPage,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def persons(
    access: PersonsRead,
    ctx: Ctx,
    request: Request,
    cohort_id: CohortId,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    offset: Annotated[int | None, Query(ge=0)] = None,
    properties: Annotated[str | None, Query(description="JSON list of property filters.")] = None,
    search: Annotated[str | None, Query()] = None,
) -> Response:
    row = ctx.reader.row(access.project_id, cohort_id)
    if row is None:
        raise not_found()
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    default_limit = CSV_EXPORT_LIMIT if as_csv else 100
    page = LimitOffset(limit or default_limit, offset or 0)
    filters = parse_properties(properties)

    def answer() -> Response:
        results = ctx.cohort_persons.page(row, filters=filters, search=search, limit=page.limit, offset=page.offset)
        if as_csv:
            return Response(persons_csv(results), media_type="text/csv; charset=utf-8")
        return FastJSONResponse(persons_page(str(request.url), results, page))

    if as_csv or not ctx.cohort_persons.is_short(row, filters=filters, search=search, end=page.offset + page.limit):
        return await run_in_threadpool(answer)
    return answer()
