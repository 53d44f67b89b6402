"""The api application: `create_app` wires routers, handlers and middleware; `run_api` serves it.

Nothing connects at import or in `create_app`: the lifespan opens the stores, the Kafka
producers and the view consumer (`api.context.open_context`) and closes them on shutdown.
Each app has its own Prometheus registry (`app.state.metrics`, served at `/metrics`).

Request path, outermost first:
1. `_PathMiddleware`: a missing trailing slash is added (PostHog matches `/?`), the legacy
   `/api/cohort/...` base maps to `/api/projects/@current/cohorts/...` and
   `/api/environments/:id/` to `/api/projects/:id/` (reference §0.1).
2. `RequestMetricsMiddleware`: latency by route template and status (after the path rewrite,
   so it sees the scope the router labels with its route).
3. `_BodyLimitMiddleware`: bodies over the limit answer 413 with the error envelope.
4. The routers; errors render through `api.errors`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.context import Clock, open_context
from api.errors import install_handlers
from api.metrics import ApiMetrics, RequestMetricsMiddleware
from api.openapi import install_openapi
from api.publisher import MemoryPublisher
from api.routers import (
    calculation_history,
    cohort_activity,
    cohort_persons,
    cohorts,
    file_system,
    health,
    metrics,
    static_members,
)
from cohorts.settings import Settings

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "run_api"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Multipart bodies carry CSV uploads, which may be larger than a JSON body.
DEFAULT_MAX_UPLOAD_BYTES = 50 << 20

_LEGACY = re.compile(r"^/api/cohort(/|$)")
_ENVIRONMENTS = re.compile(r"^/api/environments/([^/]+)(/|$)")


class _PathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/"):
                path = _LEGACY.sub("/api/projects/@current/cohorts/", path, count=1)
                path = _ENVIRONMENTS.sub(r"/api/projects/\1/", path, count=1)
                if not path.endswith("/"):
                    path += "/"
                path = re.sub(r"/{2,}", "/", path)
                if path != scope["path"]:
                    scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


class _BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").lower()
        limit = self.max_upload_bytes if content_type.startswith(b"multipart/") else self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, "Request body is too large.")
            return message

        await self.app(scope, limited, send)


async def _too_large(send: Send) -> None:
    body = b'{"type":"invalid_request","code":"request_too_large","detail":"Request body is too large.","attr":null}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    publisher: MemoryPublisher | None = None,
    consume: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> FastAPI:
    """The api for `settings`. `publisher` and `consume=False` are for unit tests only: an
    in-memory publisher that folds writes straight into the views, and no consumer thread
    (the other views are then fed by the test)."""
    api_metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = open_context(settings, clock=clock, publisher=publisher, consume=consume, metrics=api_metrics)
        app.state.ctx = ctx
        try:
            yield
        finally:
            app.state.ctx = None
            ctx.close()

    app = FastAPI(
        title="Cohorts API",
        version="0.1.0",
        description="PostHog-compatible cohorts, computed continuously from Kafka streams.",
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_url="/api/schema/",
        docs_url="/api/schema/swagger-ui/",
        redoc_url="/api/schema/redoc/",
    )
    app.state.ctx = None
    app.state.metrics = api_metrics
    install_handlers(app)
    # Activity's fixed path must win over `/cohorts/{cohort_id}/`, so it is included first.
    routers = (
        health,
        metrics,
        cohort_activity,
        cohorts,
        static_members,
        cohort_persons,
        calculation_history,
        file_system,
    )
    for module in routers:
        app.include_router(module.router)
    install_openapi(app)
    app.add_middleware(_BodyLimitMiddleware, max_body_bytes=max_body_bytes, max_upload_bytes=max_upload_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=api_metrics)
    app.add_middleware(_PathMiddleware)
    return app


def run_api(settings: Settings) -> None:
    """Serve the api in the foreground on `settings.api_host:api_port` (the CLI calls this)."""
    import uvicorn

    from infra.logs import logging_config

    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        log_config=logging_config(settings.log_format),
        proxy_headers=True,
    )
