"""`cohorts/:id/calculation_history/` (reference §1.11, §7)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import CohortRead, Ctx, Page
from api.errors import not_found
from api.pagination import history_page
from api.routers.cohorts import CohortId
from api.schemas.history import CalculationHistoryPage
from api.views.reports import render_history_row

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project_id}", tags=["cohorts"])


@router.get(
    "/cohorts/{cohort_id}/calculation_history/",
    operation_id="cohorts_calculation_history_retrieve",
    responses={200: {"model": CalculationHistoryPage}},
)
def calculation_history(access: CohortRead, ctx: Ctx, cohort_id: CohortId, page: Page) -> Response:
    row = ctx.reader.row(access.project_id, cohort_id)
    if row is None:
        raise not_found()
    calculations = ctx.reports.calculations(access.project_id, cohort_id)
    envelope = history_page(calculations, page)
    envelope["results"] = [
        render_history_row(calc, ctx.reader.version_filters(access.project_id, cohort_id, calc["version"]))
        for calc in envelope["results"]
    ]
    return JSONResponse(envelope)
