"""RFC 9457 problem+json: the one error shape of every route, and the handlers that produce it."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from leaderboard_api.scoring.errors import BadParameter, ScoringError
from leaderboard_api.serving.scheduler import Overloaded
from leaderboard_api.state import NotReady

PROBLEM_TYPE = "application/problem+json"
#: Longest ``detail`` and ``instance`` echoed back: a 10,000-character name must not come
#: back twice as a 20 KB error body.
MAX_DETAIL = 400
MAX_INSTANCE = 200
#: Most per-parameter entries listed in ``errors``.
MAX_ERRORS = 10


def shorten(text: str | None, limit: int) -> str | None:
    """``text`` cut in the middle to at most about ``limit`` characters, saying how much went."""
    if text is None or len(text) <= limit:
        return text
    keep = max(limit - 40, 8)
    head, tail = text[: keep * 2 // 3], text[-(keep // 3) :]
    return f"{head}…({len(text) - len(head) - len(tail)} characters cut)…{tail}"


def problem(
    status: int,
    *,
    detail: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": shorten(detail, MAX_DETAIL),
        "instance": shorten(instance, MAX_INSTANCE),
    }
    if extra:
        body.update(extra)
    errors = body.get("errors")
    if isinstance(errors, list):
        body["errors"] = [_short_error(item) for item in errors[:MAX_ERRORS]]
    all_headers = {"cache-control": "no-store"}
    all_headers.update(headers or {})
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=all_headers
    )


def _short_error(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    return {
        key: shorten(value, MAX_DETAIL) if isinstance(value, str) else value
        for key, value in item.items()
    }


def _status_for(exc: ScoringError) -> int:
    return 404 if isinstance(exc, LookupError) else 422


def install_problem_handlers(app: FastAPI) -> None:
    """Map framework and domain errors to problem+json; nothing else answers errors."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route matches {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem(
            exc.status_code,
            detail=detail,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "parameter": ".".join(str(p) for p in err.get("loc", ())[1:]) or None,
                "in": str(err.get("loc", ("query",))[0]),
                "message": err.get("msg"),
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"parameter": None, "message": "invalid request"}
        detail = f"parameter {first['parameter']!r}: {first['message']}"
        return problem(422, detail=detail, instance=request.url.path, extra={"errors": errors})

    async def scoring_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ScoringError)
        extra = None
        if isinstance(exc, BadParameter):
            extra = {"errors": [{"parameter": exc.name, "in": "query", "message": str(exc)}]}
        return problem(_status_for(exc), detail=str(exc), instance=request.url.path, extra=extra)

    async def not_ready(request: Request, exc: Exception) -> Response:
        return problem(
            503,
            detail="the dataset is still loading",
            instance=request.url.path,
            headers={"retry-after": "2"},
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ScoringError, scoring_error)
    app.add_exception_handler(NotReady, not_ready)

    async def overloaded(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Overloaded)
        return problem(
            503,
            detail="too many new filter combinations are being computed; retry later",
            instance=request.url.path,
            headers={"retry-after": str(exc.retry_after)},
        )

    app.add_exception_handler(Overloaded, overloaded)
