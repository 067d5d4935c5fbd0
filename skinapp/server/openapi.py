"""The OpenAPI schema says what the API really answers: every error status, one error body.

FastAPI documents only the success answer and its own `HTTPValidationError` for 422, while
every error we send is `{"detail", "code"}` (`skinapp.server.errors`). `install(app)`
post-processes the generated schema once, from what each route depends on, instead of each
route listing its errors by hand:

| the route ...                           | may answer                          |
|-----------------------------------------|-------------------------------------|
| has parameters or a body                | 422                                 |
| needs a token (`current_token`)         | 401, 429 (auth rate limit), 503     |
| names a job (`{job_id}`)                | 403, 404                            |
| takes an upload (`upload_form`)         | 400, 413, 415, 422, 429, 507, 503   |
| takes an upload and waits for it (sync) | also 202 (not done in time), 409    |
| is the event stream                     | 429 (streams per token)             |

It also declares the bearer token as the security scheme of the routes that need it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from skinapp.server.deps import current_token
from skinapp.server.forms import upload_form

logger = logging.getLogger(__name__)

ERROR_SCHEMA = "ErrorBody"
SECURITY = "bearerAuth"
REASONS = {
    400: "Malformed request (a multipart body that cannot be parsed)",
    401: "No token, or an unknown or revoked one",
    403: "Someone else's job, or an admin-only action",
    404: "Unknown job (or checkpoint, or evaluation plot)",
    409: "The job was cancelled",
    413: "Upload too large (a file, the request, or too many files)",
    415: "Not an image, or a format outside the allow-list",
    422: "A bad field or parameter",
    429: "Over a rate or a quota (bytes in flight, open event streams)",
    503: "The job server (or a model) is unavailable",
    507: "The job server's storage is full",
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """The documented API routes, with their prefix (FastAPI >= 0.16x keeps included routers
    as such and gives each route's effective form through `iter_route_contexts`)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    for route in contexts(routes) if contexts else routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def error_statuses(route: Any) -> set[int]:
    """The error statuses `route` can answer, from what it depends on (see the table above)."""
    calls = set(_calls(route.dependant))
    statuses: set[int] = set()
    dependant = route.dependant
    if dependant.path_params or dependant.query_params or dependant.body_params:
        statuses.add(422)
    if dependant.body_params:  # a JSON body that does not parse
        statuses.add(400)
    if current_token in calls:
        statuses |= {401, 429, 503}
    if any(p.name == "job_id" for p in dependant.path_params):
        statuses |= {403, 404}
    if upload_form in calls:
        statuses |= {400, 413, 415, 422, 429, 503, 507}
        if route.status_code != 202:  # the sync twins wait for the job and re-raise its error
            statuses |= {409}
    if route.path.endswith("/events"):
        statuses.add(429)
    # What a route raises itself, past its dependencies, it names in `responses=`.
    statuses |= {int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400}
    return statuses


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": REASONS[status],
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }


def _error_body_schema() -> dict[str, Any]:
    return {
        "title": ERROR_SCHEMA,
        "type": "object",
        "required": ["detail", "code"],
        "properties": {
            "detail": {"type": "string", "description": "what went wrong, for a person"},
            "code": {"type": "string", "description": "a stable error code, for programs"},
        },
        "additionalProperties": False,
    }


def _document_route(operation: dict[str, Any], route: Any) -> None:
    statuses = error_statuses(route)
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses[str(status)] = _error_response(status)
    if current_token in set(_calls(route.dependant)):
        operation["security"] = [{SECURITY: []}]
    if 409 in statuses and "202" not in responses:
        responses["202"] = {"description": "Not done in time: the job's status"}


def document_errors(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Add the error answers and the security scheme to a generated schema (in place)."""
    paths = schema.get("paths", {})
    for route in api_routes(routes):
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _document_route(operation, route)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = _error_body_schema()
    for name in _VALIDATION_SCHEMAS:  # nothing answers in FastAPI's shape any more
        schemas.pop(name, None)
    components.setdefault("securitySchemes", {})[SECURITY] = {"type": "http", "scheme": "bearer"}
    return schema


def install(app: FastAPI) -> None:
    """Make `app.openapi()` build (once) the schema with our error answers in it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_errors(schema, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
