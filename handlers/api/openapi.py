"""The admin API's OpenAPI 3.1 document, built from the route declarations (:data:`handlers.api.routes.ROUTES`,
handed in) and the component schemas (:mod:`handlers.api.schemas`); served at ``GET /api/v1/openapi.json``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from handlers.api.content import SCHEMAS as CONTENT_SCHEMAS
from handlers.api.http import PREFIX, Route
from handlers.api.schemas import SCHEMAS

_PATTERN = re.compile(r"\{(\w+):[^}]*\}")
_COMMON = {
    400: "Invalid request (problem details with errors[])",
    401: "No live API key",
    403: "The key's scope is too low",
    429: "Rate limit: wait Retry-After seconds",
}
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    304: "Not modified (If-None-Match)",
    404: "Not found",
    409: "Conflict",
    503: "Unavailable",
}


def openapi_path(route: Route) -> str:
    return PREFIX + _PATTERN.sub(r"{\1}", route.path)


def _media(status: int, schema: str) -> dict[str, Any]:
    kind = "application/problem+json" if schema == "Problem" else "application/json"
    return {kind: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in route.responses.items():
        responses[str(status)] = {"description": _DESCRIPTIONS.get(status, "")}
        if schema is not None:
            responses[str(status)]["content"] = _media(status, schema)
    if route.handler.__name__ == "openapi_document":
        responses["200"]["content"] = {"application/json": {"schema": {"type": "object"}}}
    if route.scope is not None:
        for status, text in _COMMON.items():
            responses.setdefault(str(status), {"description": text, "content": _media(status, "Problem")})
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer" if name == "id" else "string"}}
        for name in re.findall(r"\{(\w+)", route.path)
    ]
    params += [
        {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
        for n, d in route.query.items()
    ]
    if route.etag:
        params.append({"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}})
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.handler.__name__}",
        "responses": responses,
    }
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": _media(0, route.body)}
    if route.scope is None:
        op["security"] = []
    else:
        op["description"] = f"Scope: {route.scope}."
    return op


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "siyu-bot admin API",
            "version": "1",
            "description": "Customers, channels, events, orders and health of a siyu-bot (docs/api.md). "
            "Keys: `siyu-bot api-keys create NAME --scope read|write|admin`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **CONTENT_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key"}},
        },
    }
