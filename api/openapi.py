"""The OpenAPI document served at `/api/schema/` (reference §10).

FastAPI generates it from the routes; this module adds what FastAPI cannot see: the cohort
write body (read by hand so that JSON and multipart share one endpoint), the error envelope on
every 4xx/5xx an operation can answer, and it removes FastAPI's 422 (the api answers 400).
Responses with an empty body (a DELETE's 405, an unknown cohort's activity 404) are marked
`"x-empty": True` by their route and documented without content.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.schemas.cohort import CohortWrite
from api.schemas.common import ErrorBody
from api.schemas.file_system import LogViewCreate

__all__ = ["cohort_body_doc", "install_openapi"]

_ERROR_STATUSES = {
    "400": "Invalid request.",
    "401": "Not authenticated.",
    "403": "Not allowed.",
    "404": "Not found.",
    "405": "Method not allowed.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "500": "Server error.",
    "503": "Kafka did not acknowledge the write.",
}


def cohort_body_doc() -> dict[str, Any]:
    multipart = {
        "type": "object",
        "properties": {
            "csv": {"type": "string", "format": "binary"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "is_static": {"type": "string"},
            "filters": {"type": "string", "description": "JSON"},
        },
    }
    return {
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CohortWrite"}},
                "multipart/form-data": {"schema": multipart},
            },
        }
    }


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (CohortWrite, LogViewCreate, ErrorBody):
            components[model.__name__] = model.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for path, path_item in schema.get("paths", {}).items():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if not path.startswith("/api/"):
                    continue
                for status, description in _ERROR_STATUSES.items():
                    if status not in responses:
                        responses[status] = {"description": description, "content": error_content}
                    elif responses[status].pop("x-empty", False):
                        responses[status].pop("content", None)
                    elif "content" not in responses[status]:
                        responses[status]["content"] = error_content
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
