"""`/_health` (the process answers) and `/_ready` (views are being fed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/_health", operation_id="health")
def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/_ready", operation_id="ready")
def ready(request: Request) -> JSONResponse:
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is None or not ctx.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready"})
