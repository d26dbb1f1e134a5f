"""Tracing: spans reach a real OTLP/HTTP receiver, with routes, parents and env settings."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from leaderboard_api.observability.routes import RouteTemplates
from leaderboard_api.observability.tracing import (
    TracingHandle,
    setup_tracing,
    span,
    tracing_exporters,
)
from tests.api_support import serve_in_thread as _serve

Scope = MutableMapping[str, Any]
TEMPLATES = ["/v1/benchmarks/{name}/scores", "/v1/fast", "/boom", "/health", "/ready", "/metrics"]
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
# uvicorn closes the connection after an app error; do not reuse it for the next request.
CLOSE = {"connection": "close"}


@dataclass
class Received:
    """What the receiver got: request paths and decoded spans (with resource attributes)."""

    paths: list[str] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@contextmanager
def _otlp_receiver() -> Iterator[tuple[str, Received]]:
    """A tiny OTLP/HTTP (protobuf) trace receiver on 127.0.0.1, decoding what it is sent."""
    received = Received()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            with lock:
                received.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    received.resources.append(resource)
                    for scope_spans in resource_spans.scope_spans:
                        for item in scope_spans.spans:
                            received.spans.append(
                                {
                                    "name": item.name,
                                    "kind": item.kind,
                                    "trace_id": item.trace_id.hex(),
                                    "span_id": item.span_id.hex(),
                                    "parent_span_id": item.parent_span_id.hex(),
                                    "status": item.status.code,
                                    "attributes": {a.key: _value(a.value) for a in item.attributes},
                                }
                            )
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states its own OTEL_* settings."""
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def _make_app(handle: TracingHandle) -> Any:
    async def scores(request: Request) -> Response:
        with span(handle, "payload.build", benchmark=request.path_params["name"]):
            body = "scores"
        return PlainTextResponse(body)

    async def plain(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> Response:
        msg = "deliberate failure"
        raise RuntimeError(msg)

    framework = Starlette(
        routes=[
            Route("/v1/benchmarks/{name}/scores", scores),
            Route("/boom", boom),
            Route("/health", plain),
            Route("/ready", plain),
            Route("/metrics", plain),
        ]
    )

    async def fast_path(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/fast":
            headers = [(b"content-length", b"4")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"fast"})
            return
        await framework(scope, receive, send)

    return handle.middleware(fast_path, templates=RouteTemplates(TEMPLATES))


def test_server_spans_reach_the_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    with _otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        handle = setup_tracing()
        assert handle is not None
        with _serve(_make_app(handle)) as base, httpx.Client(base_url=base) as client:
            traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
            response = client.get(
                "/v1/benchmarks/MTEB(eng, v2)/scores", headers={"traceparent": traceparent}
            )
            assert response.status_code == 200
            assert client.get("/v1/fast").status_code == 200
            assert client.get("/nowhere").status_code == 404
            assert client.get("/boom", headers=CLOSE).status_code == 500
            # The caller decided not to sample: no server span and no child spans either.
            unsampled = f"00-{'1' * 32}-{'2' * 16}-00"
            response = client.get("/v1/benchmarks/x/scores", headers={"traceparent": unsampled})
            assert response.status_code == 200
            for probe in ("/health", "/ready", "/metrics"):
                assert client.get(probe).status_code == 200
        with span(handle, "warmup", routes=3):
            pass
        handle.shutdown()
        handle.shutdown()  # idempotent
    assert received.paths
    assert set(received.paths) == {"/v1/traces"}
    assert received.resources[0]["service.name"] == "leaderboard-api"
    assert received.resources[0]["deployment.environment"] == "test"
    by_name = {item["name"]: item for item in received.spans}
    assert set(by_name) == {
        "GET /v1/benchmarks/{name}/scores",
        "payload.build",
        "GET /v1/fast",
        "GET",
        "GET /boom",
        "warmup",
    }
    assert len(received.spans) == len(by_name)
    assert all(item["trace_id"] != "1" * 32 for item in received.spans)
    server = by_name["GET /v1/benchmarks/{name}/scores"]
    assert server["kind"] == 2  # SPAN_KIND_SERVER
    assert server["attributes"]["http.route"] == "/v1/benchmarks/{name}/scores"
    assert server["attributes"]["http.response.status_code"] == 200
    assert server["trace_id"] == CALLER_TRACE
    assert server["parent_span_id"] == CALLER_SPAN
    assert server["attributes"]["url.path"] == "/v1/benchmarks/MTEB(eng, v2)/scores"
    assert server["attributes"]["http.request.method"] == "GET"
    assert server["status"] == 0  # unset: success
    failed = by_name["GET /boom"]
    assert failed["status"] == 2  # STATUS_CODE_ERROR
    assert failed["attributes"]["http.response.status_code"] == 500
    manual = by_name["payload.build"]
    assert manual["trace_id"] == CALLER_TRACE
    assert manual["parent_span_id"] == server["span_id"]
    assert manual["attributes"] == {"benchmark": "MTEB(eng, v2)"}
    fast = by_name["GET /v1/fast"]
    assert fast["attributes"]["http.route"] == "/v1/fast"
    assert fast["trace_id"] != CALLER_TRACE
    assert fast["parent_span_id"] == ""
    assert "http.route" not in by_name["GET"]["attributes"]  # unmatched: no raw path as name
    assert by_name["warmup"]["attributes"] == {"routes": 3}


async def _drive(handle: TracingHandle, paths: list[str]) -> None:
    transport = httpx.ASGITransport(app=_make_app(handle))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in paths:
            assert (await client.get(path)).status_code == 200


async def test_traces_endpoint_is_used_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    with _otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{endpoint}/custom/traces")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "lb-test")
        handle = setup_tracing()
        assert handle is not None
        await _drive(handle, ["/v1/fast"])
        handle.shutdown()
    assert received.paths == ["/custom/traces"]
    assert received.resources[0]["service.name"] == "lb-test"
    assert [item["name"] for item in received.spans] == ["GET /v1/fast"]


async def test_sampler_from_env_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    with _otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint + "/")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
        handle = setup_tracing()
        assert handle is not None
        await _drive(handle, ["/v1/fast", "/v1/benchmarks/x/scores"])
        with span(handle, "dataset.load"):
            pass
        handle.shutdown()
    assert received.spans == []


def test_off_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing_exporters() == []
    assert setup_tracing() is None
    with span(None, "nothing", key="value") as current:
        assert current is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert tracing_exporters() == ["otlp"]
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert setup_tracing() is None
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert setup_tracing() is None
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,zipkin")
    assert tracing_exporters() == ["otlp"]
