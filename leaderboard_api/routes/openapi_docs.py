"""The OpenAPI document as the server answers: problem+json errors, tight query parameters.

FastAPI documents a 422 ``HTTPValidationError`` in ``application/json`` and nothing else;
the routes answer RFC 9457 problem+json for 404 (unknown names), 422 (bad or unknown
parameters, also ones the data refuses such as an unknown language) and 503 (still
loading), and take booleans as a fixed set of words. :func:`document` rewrites the
generated document once so that clients and schemathesis see what the server does.
"""

from __future__ import annotations

import copy
from typing import Any

from leaderboard_api.payloads import ROUTES

PROBLEM = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": ["string", "null"]},
        "instance": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "parameter": {"type": ["string", "null"]},
                    "in": {"type": "string"},
                    "message": {"type": ["string", "null"]},
                },
            },
        },
    },
}
#: The words ``true``/``false`` parameters accept (any case is also taken).
BOOLEAN_WORDS = ["true", "false", "1", "0", "yes", "no", "on", "off"]
BOOLEAN_PARAMS = frozenset(
    {"include_hidden", "open_weights", "instruction_tuned", "exclusive_modality"}
)
#: Free-text query values (an empty one is the same as leaving the parameter out).
TEXT = {"type": "string"}
#: Media types of the 200 answers of routes that do not answer JSON.
MEDIA_200: dict[str, dict[str, Any]] = {
    "/v1/icon/{name}": {
        "image/png": {},
        "image/jpeg": {},
        "image/gif": {},
        "image/webp": {},
        "image/x-icon": {},
        "image/avif": {},
        "image/svg+xml": {},
    },
    "/metrics": {"text/plain": {}, "application/openmetrics-text": {}},
    "/v1/benchmarks/{name}/scores.csv": {"text/csv": {"schema": {"type": "string"}}},
    "/health": {"application/json": {"schema": {"type": "object"}}},
}


#: The routes served as payloads built per parameter set (the cold-build limit applies),
#: as the OpenAPI document spells their paths.
_BUILT = frozenset(
    path.replace("{name:path}", "{name}") for spec in ROUTES.values() for path in spec.paths
)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _tighten(param: dict[str, Any]) -> None:
    """One query parameter: no ``null`` alternative, booleans as words, bounded strings."""
    schema = param.get("schema", {})
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        kept = [s for s in any_of if s.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            schema = {**rest, **kept[0]}
    name = param.get("name")
    if name in BOOLEAN_PARAMS:
        schema = {"type": "string", "enum": BOOLEAN_WORDS, "title": schema.get("title", name)}
    elif schema.get("type") == "string":
        schema = {**schema, **TEXT}
    elif schema.get("type") == "array" and schema.get("items", {}).get("type") == "string":
        schema = {**schema, "items": dict(TEXT)}
    param["schema"] = schema


def document(generated: dict[str, Any]) -> dict[str, Any]:
    """``generated`` (FastAPI's document) with the responses and parameters the routes have."""
    doc = copy.deepcopy(generated)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for param in operation.get("parameters", []):
                if param.get("in") == "query":
                    _tighten(param)
                elif param.get("in") == "path":
                    param["schema"] = {**param.get("schema", {}), "minLength": 1}
            if path in MEDIA_200 and "200" in responses:
                responses["200"]["content"] = MEDIA_200[path]
            if operation.get("parameters") or path.startswith("/v1/"):
                responses["422"] = _problem(
                    "A parameter is malformed, unknown to the route, or names something the "
                    "data does not hold (a language no task is in, a metric the task lacks)."
                )
            else:
                responses.pop("422", None)
            if "{name}" in path or path == "/metrics":
                responses["404"] = _problem("No such benchmark, task or model (or feature off).")
            if path.startswith("/v1/"):
                responses["503"] = {
                    **_problem("The dataset is still loading; retry after Retry-After seconds."),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                }
            queried = any(p.get("in") == "query" for p in operation.get("parameters", []))
            if path in _BUILT and method in ("get", "head") and queried and "429" not in responses:
                responses["429"] = {
                    **_problem(
                        "Too many cold parameterized builds from this address (a parameter "
                        "combination not built yet); retry after Retry-After seconds."
                    ),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                }
            if path.startswith("/v1/icon/"):
                responses["403"] = _problem("The icon's host is not in the allow-list.")
                responses["502"] = _problem("The icon source failed or sent no image.")
                responses["504"] = _problem("The icon source did not answer in time.")
            if path == "/ready":
                responses["503"] = {"description": "Not ready yet (same body, status loading)."}
            if method == "post" and path == "/admin/reload":
                operation["security"] = [{"bearer": []}]
                doc["components"].setdefault("securitySchemes", {})["bearer"] = {
                    "type": "http",
                    "scheme": "bearer",
                }
                for status, text in (
                    ("401", "No bearer token."),
                    ("403", "The bearer token is not valid."),
                    ("404", "The admin API is disabled (no admin token set)."),
                    ("422", "The reload failed; the old snapshot keeps serving."),
                ):
                    responses[status] = _problem(text)
    return doc
