"""Static membership actions: add persons, remove a person, duplicate as static (reference §1.9,
§1.10, §1.12; design §8)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import CohortWriteAccess, Ctx, JsonBody
from api.routers.cohorts import CohortId
from api.schemas.cohort import CohortPublic, SuccessBody

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project_id}", tags=["cohorts"])

_PERSON_IDS_BODY = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"person_ids": {"type": "array", "items": {"type": "string"}}},
                }
            }
        }
    }
}
_PERSON_ID_BODY = {
    "requestBody": {
        "content": {"application/json": {"schema": {"type": "object", "properties": {"person_id": {"type": "string"}}}}}
    }
}


@router.patch(
    "/cohorts/{cohort_id}/add_persons_to_static_cohort/",
    operation_id="cohorts_add_persons_to_static_cohort_partial_update",
    responses={200: {"model": SuccessBody}},
    openapi_extra=_PERSON_IDS_BODY,
)
def add_persons(access: CohortWriteAccess, ctx: Ctx, cohort_id: CohortId, body: JsonBody) -> Response:
    ctx.static_members.add_persons(access.project_id, cohort_id, access.user, body)
    return JSONResponse({"success": True})


@router.patch(
    "/cohorts/{cohort_id}/remove_person_from_static_cohort/",
    operation_id="cohorts_remove_person_from_static_cohort_partial_update",
    responses={200: {"model": SuccessBody}},
    openapi_extra=_PERSON_ID_BODY,
)
def remove_person(access: CohortWriteAccess, ctx: Ctx, cohort_id: CohortId, body: JsonBody) -> Response:
    ctx.static_members.remove_person(access.project_id, cohort_id, access.user, body)
    return JSONResponse({"success": True})


@router.get(
    "/cohorts/{cohort_id}/duplicate_as_static_cohort/",
    operation_id="cohorts_duplicate_as_static_cohort_retrieve",
    responses={200: {"model": CohortPublic}},
)
def duplicate(access: CohortWriteAccess, ctx: Ctx, cohort_id: CohortId) -> Response:
    return JSONResponse(ctx.cohorts.duplicate_as_static(access.project_id, cohort_id, access.user))
