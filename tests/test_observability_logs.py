"""Logging: JSON and text lines, idempotent setup, request ids through the access middleware."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from leaderboard_api.observability.logs import (
    AccessLogMiddleware,
    current_request,
    setup_logging,
)

Scope = MutableMapping[str, Any]
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the root and uvicorn loggers as they were."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn_saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate) in uvicorn_saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Decoded JSON lines, leaving out the HTTP client's own logging."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [line for line in lines if not line["logger"].startswith(("httpx", "httpcore"))]


def test_json_lines_carry_fields_extras_and_exceptions() -> None:
    stream = io.StringIO()
    setup_logging(fmt="json", level="info", stream=stream)
    log = logging.getLogger("leaderboard_api.test")
    log.debug("hidden at INFO")
    log.info("loaded %d rows", 42, extra={"snapshot_rows": 42, "source": "hf://x"})
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("failed")
    first, second = _lines(stream)
    assert set(first) == {"ts", "level", "logger", "msg", "snapshot_rows", "source"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["level"] == "INFO"
    assert first["logger"] == "leaderboard_api.test"
    assert first["msg"] == "loaded 42 rows"
    assert first["snapshot_rows"] == 42
    assert second["level"] == "ERROR"
    assert "ZeroDivisionError" in second["exc"]


def test_setup_is_idempotent_and_validates() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    setup_logging(fmt="json", level="INFO", stream=first)
    setup_logging(fmt="text", level="WARNING", stream=second)
    assert len(root.handlers) == before + 1
    assert root.level == logging.WARNING
    logging.getLogger("x").warning("only once")
    assert first.getvalue() == ""
    assert second.getvalue().count("only once") == 1
    assert " WARNING x: only once" in second.getvalue()
    assert logging.getLogger("uvicorn.error").propagate
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging(level="LOUD")
    with pytest.raises(ValueError, match="'text' or 'json'"):
        setup_logging(fmt="xml")  # type: ignore[arg-type]


def test_text_lines_are_readable_with_extras() -> None:
    stream = io.StringIO()
    setup_logging(fmt="text", level="INFO", stream=stream)
    logging.getLogger("leaderboard_api.lifecycle").info("warmup done", extra={"routes": 12})
    line = stream.getvalue().strip()
    assert re.fullmatch(r"\S+Z INFO    leaderboard_api\.lifecycle: warmup done routes=12", line), (
        line
    )


def test_trace_ids_appear_inside_spans() -> None:
    stream = io.StringIO()
    setup_logging(fmt="json", level="INFO", stream=stream)
    provider = TracerProvider(shutdown_on_exit=False)
    with provider.get_tracer("t").start_as_current_span("work") as work:
        logging.getLogger("t").info("inside")
    logging.getLogger("t").info("outside")
    inside, outside = _lines(stream)
    assert inside["trace_id"] == format(work.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(work.get_span_context().span_id, "016x")
    assert "trace_id" not in outside
    provider.shutdown()


def _make_app(*, log_requests: bool = True) -> AccessLogMiddleware:
    handler_log = logging.getLogger("leaderboard_api.routes")

    async def scores(request: Request) -> Response:
        context = current_request()
        handler_log.info("building scores")
        return PlainTextResponse(context.request_id if context else "none")

    framework = Starlette(routes=[Route("/v1/benchmarks/{name}/scores", scores)])

    async def fast_path(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/fast":
            headers = [(b"content-length", b"4")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"fast"})
            return
        await framework(scope, receive, send)

    return AccessLogMiddleware(
        fast_path,
        snapshot_id=lambda: "snap123",
        log_requests=log_requests,
        exclude=("/health",),
    )


async def test_request_id_propagates_to_header_and_every_line() -> None:
    stream = io.StringIO()
    setup_logging(fmt="json", level="INFO", stream=stream)
    transport = httpx.ASGITransport(app=_make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        given = await client.get(
            "/v1/benchmarks/MTEB(eng)/scores?lang=fr", headers={"x-request-id": "req-42.a"}
        )
        generated = await client.get("/v1/fast")
        insane = await client.get("/v1/fast", headers={"x-request-id": "bad id\twith spaces"})
        await client.get("/health")
    assert given.headers["x-request-id"] == "req-42.a"
    assert given.text == "req-42.a"  # the handler saw the same context
    assert HEX32.fullmatch(generated.headers["x-request-id"])
    assert HEX32.fullmatch(insane.headers["x-request-id"])
    assert generated.headers["x-request-id"] != insane.headers["x-request-id"]
    assert generated.text == "fast"

    lines = _lines(stream)
    assert [line["logger"] for line in lines] == [
        "leaderboard_api.routes",
        "leaderboard_api.access",
        "leaderboard_api.access",
        "leaderboard_api.access",
    ]  # /health is excluded from the access log
    handler_line, access_line, fast_line, _ = lines
    assert handler_line["request_id"] == access_line["request_id"] == "req-42.a"
    assert handler_line["snapshot"] == access_line["snapshot"] == "snap123"
    assert access_line["method"] == "GET"
    assert access_line["path"] == "/v1/benchmarks/MTEB(eng)/scores"
    assert access_line["query"] == "lang=fr"
    assert access_line["status"] == 200
    assert access_line["size"] == len("req-42.a")
    assert access_line["duration_ms"] >= 0
    assert access_line["msg"].startswith("GET /v1/benchmarks/MTEB(eng)/scores?lang=fr 200 8B ")
    assert fast_line["request_id"] == generated.headers["x-request-id"]
    assert fast_line["path"] == "/v1/fast"
    assert current_request() is None  # nothing leaks out of the request


async def test_access_lines_can_be_turned_off() -> None:
    stream = io.StringIO()
    setup_logging(fmt="json", level="INFO", stream=stream)
    transport = httpx.ASGITransport(app=_make_app(log_requests=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/v1/benchmarks/x/scores", headers={"x-request-id": "abc"})
    assert response.headers["x-request-id"] == "abc"
    assert [line["logger"] for line in _lines(stream)] == ["leaderboard_api.routes"]
