"""The OpenAPI schema as the API answers: every error status it sends, none it does not.

FastAPI documents 422 for every operation with parameters, but this API
answers invalid requests with 400 (:func:`functions.api.errors.install`) — all
but the JSON body of ``POST /api/fetch``, whose 422 Caterva2's clients read — and
it documents none of the errors the domain raises.  Here the schema is
rewritten once: 422 goes, and each operation gets the error answers of the
one status table (:data:`functions.engine.errors.RULES`) that can reach it,
each a JSON ``{"detail": "..."}``.  ``tests/test_schemathesis.py`` holds the
API to it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from functions.api.errors import STRICT_BODIES
from functions.engine.errors import RULES

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "what was wrong, for people"}},
    "required": ["detail"],
}

#: The 422 of strict bodies (functions.api.errors.STRICT_BODIES): FastAPI's list, without ``input``
BODY_ERRORS = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                },
                "required": ["type", "loc", "msg"],
            },
        }
    },
    "required": ["detail"],
}

#: What the HTTP layer itself answers, besides the domain errors of RULES
_HTTP = {
    400: "the request does not validate (a parameter is missing or malformed)",
    413: "the request body passed the payload limit",
    416: "a Range this answer cannot serve (malformed, past the frame, or an answer made per request)",
}

#: A fetch's answer to a Range of a stored frame (functions.engine.ranges)
_PARTIAL = {
    "description": "the byte ranges asked for of the stored frame: one (Content-Range), or several "
    "(multipart/byteranges)",
    "content": {"application/octet-stream": {}, "multipart/byteranges": {}},
}

#: Errors any operation may answer: bad input, access, missing data, storage down or corrupt
_EVERYWHERE = {400, 401, 403, 404, 413, 502, 503}


def _statuses(path: str, method: str) -> set[int]:
    """The error statuses an operation answers: the common ones, and those of its kind."""
    statuses = set(_EVERYWHERE)
    if method != "get" or path.startswith("/api/deluser"):
        statuses.add(409)  # a write that lost a race (expect_version, a concurrent commit)
    if path.startswith(("/api/fetch", "/api/download")):
        statuses.add(416)
    if path.startswith(("/auth/", "/api/adduser", "/api/deluser", "/api/listusers")):
        statuses.add(429)  # the login limiter, the user pool's throttling
    return statuses


def _description(status: int) -> str:
    names = [rule.error.__name__ for rule in RULES if rule.status == status]
    parts = ([_HTTP[status]] if status in _HTTP else []) + ([", ".join(names)] if names else [])
    return "; ".join(parts) or "error"


def _error_response(status: int, existing: dict | None) -> dict:
    out = dict(existing or {})
    out.setdefault("description", _description(status))
    out["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return out


def truthful(schema: dict) -> dict:
    """*schema* (FastAPI's) with 422 removed and the real error answers of each operation added."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(_statuses(path, method)):
                responses[str(status)] = _error_response(status, responses.get(str(status)))
            if method == "post" and path.startswith(STRICT_BODIES):
                responses["422"] = {
                    "description": "the JSON body does not parse, or has a field of another type or name",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BodyErrors"}}},
                }
            if path.startswith("/api/fetch"):
                responses["206"] = _PARTIAL
    components["BodyErrors"] = BODY_ERRORS
    return schema


def install(app: FastAPI) -> None:
    """Serve the truthful schema at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = truthful(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi
