"""Every error the api returns: one `ApiError` and the handlers that render the envelope.

Envelope (reference §0.3): `{"type", "code", "detail", "attr"}`, plus `"extra"` when given. Only
the first problem is reported. Routers and services raise `ApiError`; FastAPI's request
validation errors, Starlette's HTTP errors and anything unexpected are mapped here, so no other
module builds an error dict and no request ever gets a bare 500 page.

Exception tree:
    Exception
     └── ApiError(status, type, code, detail, attr)

`kafka_errors()` maps the publisher's failures (`api.publisher.PublishError` and its subclasses)
to their responses: 503 `kafka_unavailable`, 503 `not_applied_yet`, 503 `outcome_unknown`,
409 `conflict`.

Never: leak a traceback or internal text in a response body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.publisher import NotApplied, OutcomeUnknown, PublishError, WriteConflict

__all__ = [
    "ApiError",
    "authentication_failed",
    "install_handlers",
    "kafka_errors",
    "kafka_unavailable",
    "not_authenticated",
    "not_found",
    "permission_denied",
    "validation",
]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error response; `status` is the HTTP status, the rest is the envelope."""

    def __init__(
        self,
        status: int,
        type: str,
        code: str,
        detail: str,
        attr: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type
        self.code = code
        self.detail = detail
        self.attr = attr
        self.extra = extra
        self.headers = headers

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}
        if self.extra is not None:
            out["extra"] = self.extra
        return out

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def validation(detail: str, attr: str | None = None, code: str = "invalid_input") -> ApiError:
    return ApiError(400, "validation_error", code, detail, attr)


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, "invalid_request", "not_found", detail)


def not_authenticated() -> ApiError:
    return ApiError(
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
        headers={"WWW-Authenticate": 'Bearer realm="api"'},
    )


def authentication_failed(detail: str) -> ApiError:
    return ApiError(
        401, "authentication_error", "authentication_failed", detail, headers={"WWW-Authenticate": 'Bearer realm="api"'}
    )


def permission_denied(detail: str) -> ApiError:
    return ApiError(403, "authentication_error", "permission_denied", detail)


def kafka_unavailable() -> ApiError:
    """Kafka did not acknowledge a write: nothing was stored, the client may retry."""
    return ApiError(
        503,
        "server_error",
        "kafka_unavailable",
        "The change could not be saved because Kafka did not acknowledge it. Nothing was changed; try again.",
    )


def not_applied_yet() -> ApiError:
    """The change is in Kafka, but this process did not apply it within the bounded wait."""
    return ApiError(
        503,
        "server_error",
        "not_applied_yet",
        "The change was saved to Kafka, but this server has not caught up with it yet. "
        "Read it again shortly instead of repeating the change.",
    )


def outcome_unknown() -> ApiError:
    """A commit failed and Kafka could not be asked whether it had taken it."""
    return ApiError(
        503,
        "server_error",
        "outcome_unknown",
        "Kafka did not say whether the change was saved. Read it again before repeating the change.",
    )


def write_conflict() -> ApiError:
    return ApiError(
        409,
        "invalid_request",
        "conflict",
        "This cohort was being changed by another request at the same time. Nothing was changed; try again.",
    )


@contextmanager
def kafka_errors() -> Iterator[None]:
    """Render a failed publish as its response (see the module docstring)."""
    try:
        yield
    except WriteConflict as exc:
        raise write_conflict() from exc
    except NotApplied as exc:
        raise not_applied_yet() from exc
    except OutcomeUnknown as exc:
        raise outcome_unknown() from exc
    except PublishError as exc:
        raise kafka_unavailable() from exc


# Request validation ---------------------------------------------------------------------------

_TYPE_NAMES = {dict: "dict", list: "list", str: "str", int: "int", float: "float", bool: "bool", type(None): "NoneType"}


def from_pydantic_error(error: dict[str, Any], *, strip: int = 0) -> ApiError:
    """The first pydantic error in DRF's words (reference §0.3), `attr` = loc joined with `__`."""
    loc = [str(part) for part in error.get("loc", ())[strip:]]
    attr = "__".join(loc) or None
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return validation("This field is required.", attr, "required")
    if kind == "extra_forbidden":
        return validation(f"Unknown field '{loc[-1] if loc else ''}'.", attr)
    if value is None and kind.endswith("_type"):
        return validation("This field may not be null.", attr, "null")
    if kind in ("string_type", "string_sub_type"):
        return validation("Not a valid string.", attr)
    if kind == "string_too_long":
        return validation(f"Ensure this field has no more than {ctx.get('max_length')} characters.", attr, "max_length")
    if kind in ("bool_type", "bool_parsing"):
        return validation("Must be a valid boolean.", attr)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return validation("A valid integer is required.", attr)
    if kind in ("list_type",):
        name = _TYPE_NAMES.get(type(value), type(value).__name__)
        return validation(f'Expected a list of items but got type "{name}".', attr, "not_a_list")
    if kind in ("dict_type", "model_attributes_type", "model_type"):
        name = _TYPE_NAMES.get(type(value), type(value).__name__)
        return validation(f"Invalid data. Expected a dictionary, but got {name}.", attr)
    if kind.startswith("datetime") or kind.startswith("timestamp"):
        return validation(
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            attr,
        )
    if kind == "json_invalid":
        return ApiError(400, "invalid_request", "parse_error", f"JSON parse error - {error.get('msg', 'invalid JSON')}")
    return validation(str(error.get("msg", "Invalid input.")), attr)


async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if not errors:
        return validation("Invalid input.").response()
    first = errors[0]
    loc = first.get("loc", ())
    if loc and loc[0] == "path":
        # A non-numeric id cannot name anything: DRF answers 404 (reference §0.1).
        return not_found("Project not found." if "project_id" in loc else "Not found.").response()
    return from_pydantic_error(first, strip=1 if loc and loc[0] in ("body", "query", "header") else 0).response()


_HTTP_CODES = {
    400: ("invalid_request", "parse_error", "Malformed request."),
    401: ("authentication_error", "not_authenticated", "Authentication credentials were not provided."),
    403: ("authentication_error", "permission_denied", "You do not have permission to perform this action."),
    404: ("invalid_request", "not_found", "Not found."),
    406: ("invalid_request", "not_acceptable", "Could not satisfy the request Accept header."),
    413: ("invalid_request", "request_too_large", "Request body is too large."),
    415: ("invalid_request", "unsupported_media_type", "Unsupported media type in request."),
}


async def _http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 405:
        err = ApiError(405, "invalid_request", "method_not_allowed", f'Method "{request.method}" not allowed.')
        return err.response()
    type_, code, default = _HTTP_CODES.get(exc.status_code, ("server_error", "error", "Request failed."))
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code not in (404, 405) else default
    return ApiError(exc.status_code, type_, code, detail).response()


async def _api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return ApiError(500, "server_error", "error", "A server error occurred.").response()


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
