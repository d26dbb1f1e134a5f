"""Prometheus metrics: route templates, the request middleware on a real server, cardinality."""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from leaderboard_api.observability.metrics import (
    Metrics,
    MetricsMiddleware,
    MultiprocessModeError,
    check_multiprocess_env,
    render_metrics,
)
from leaderboard_api.observability.routes import UNMATCHED, RouteTemplates
from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.fastpath import FastPath
from leaderboard_api.serving.payload import Payload
from tests.api_support import serve_in_thread as _serve

Scope = MutableMapping[str, Any]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

TEMPLATES = [
    "/metrics",
    "/v1/benchmarks",
    "/v1/benchmarks/{name}",
    "/v1/benchmarks/{name}/scores",
    "/v1/models/{name:path}",
    "/v1/models/{name:path}/scores",
    "/v1/fast",
    "/boom",
    "/slow",
]
# uvicorn closes the connection after an app error; do not reuse it for the next request.
CLOSE = {"connection": "close"}


# ---------------------------------------------------------------- route templates


def test_templates_match_params_and_paths() -> None:
    routes = RouteTemplates(TEMPLATES)
    assert routes.match("/v1/benchmarks/MTEB(eng, v2)/scores") == "/v1/benchmarks/{name}/scores"
    assert routes.match("/v1/benchmarks/MTEB(eng, v2)") == "/v1/benchmarks/{name}"
    assert routes.match("/v1/benchmarks") == "/v1/benchmarks"
    assert routes.match("/v1/models/BAAI/bge-m3/scores") == "/v1/models/{name:path}/scores"
    assert routes.match("/v1/models/BAAI/bge-m3") == "/v1/models/{name:path}"
    assert routes.match("/v1/benchmarks/a/b/scores") == UNMATCHED  # {name} is one segment
    assert routes.match("/v1/benchmarks/") == UNMATCHED
    assert routes.match("/nope") == UNMATCHED
    assert routes.match("/v1/models/") == UNMATCHED


def test_templates_most_specific_wins() -> None:
    routes = RouteTemplates(
        ["/v1/{rest:path}", "/v1/benchmarks/{name}", "/v1/benchmarks/summary", "/v1/{a}/{b}"]
    )
    assert routes.match("/v1/benchmarks/summary") == "/v1/benchmarks/summary"
    assert routes.match("/v1/benchmarks/other") == "/v1/benchmarks/{name}"
    assert routes.match("/v1/tasks/x") == "/v1/{a}/{b}"  # fewer path params than {rest:path}
    assert routes.match("/v1/tasks/x/y") == "/v1/{rest:path}"


def test_templates_convertors_and_errors() -> None:
    routes = RouteTemplates(["/items/{id:int}", "/items/{slug}"])
    assert routes.match("/items/42") in {"/items/{id:int}", "/items/{slug}"}
    assert routes.match("/items/abc") == "/items/{slug}"
    with pytest.raises(ValueError, match="unknown convertor 'bogus'"):
        RouteTemplates(["/x/{a:bogus}"])
    assert RouteTemplates([]).match("/anything") == UNMATCHED


def test_templates_cache_is_bounded() -> None:
    routes = RouteTemplates(TEMPLATES, cache_size=64)
    for index in range(1_000):
        assert routes.match(f"/v1/benchmarks/b{index}/scores") == "/v1/benchmarks/{name}/scores"
    assert routes.cached == 64
    assert routes.match("/v1/benchmarks/b999/scores") == "/v1/benchmarks/{name}/scores"


def test_templates_from_starlette_routes() -> None:
    inner = [Route("/scores", _ok), Route("/{name}", _ok)]
    app = Starlette(
        routes=[
            Route("/v1/models/{name:path}/scores", _ok),
            Mount("/v1/benchmarks", routes=inner),
            Mount("/static", app=StaticFiles(directory=".", check_dir=False)),
        ]
    )
    routes = RouteTemplates.from_routes(app.routes)
    assert set(routes.templates) == {
        "/v1/models/{name:path}/scores",
        "/v1/benchmarks/scores",
        "/v1/benchmarks/{name}",
        "/static/{path:path}",
    }
    assert routes.match("/static/css/site.css") == "/static/{path:path}"


# ---------------------------------------------------------------- the app under test


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def _make_app(metrics: Metrics, *, exclude: tuple[str, ...] = ()) -> MetricsMiddleware:
    async def scores(request: Request) -> Response:
        return JSONResponse({"name": request.path_params["name"], "scores": [1, 2, 3]})

    async def boom(request: Request) -> Response:
        msg = "deliberate failure"
        raise RuntimeError(msg)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.05)
        return PlainTextResponse("slow")

    async def metrics_route(request: Request) -> Response:
        body, content_type = render_metrics(metrics, accept=request.headers.get("accept"))
        return Response(body, media_type=content_type, headers={"cache-control": "no-store"})

    framework = Starlette(
        routes=[
            Route("/v1/benchmarks/{name}/scores", scores),
            Route("/v1/models/{name:path}/scores", scores),
            Route("/boom", boom),
            Route("/slow", slow),
            Route("/metrics", metrics_route),
        ]
    )
    body = b"prebuilt bytes"

    async def fast_path(scope: Scope, receive: Any, send: Any) -> None:
        # The shape of the real fast path: answers before the framework routes.
        if scope["type"] == "http" and scope["path"] == "/v1/fast":
            etag_hit = (b"if-none-match", b'"v1"') in scope["headers"]
            status = 304 if etag_hit else 200
            headers = [(b"etag", b'"v1"'), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            sent = b"" if etag_hit or scope["method"] == "HEAD" else body
            await send({"type": "http.response.body", "body": sent})
            return
        await framework(scope, receive, send)

    return MetricsMiddleware(
        fast_path, metrics=metrics, templates=RouteTemplates(TEMPLATES), exclude=exclude
    )


def _samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# ---------------------------------------------------------------- tests on a real server


def test_every_request_is_counted_on_a_real_server() -> None:
    metrics = Metrics()
    with _serve(_make_app(metrics)) as base, httpx.Client(base_url=base) as client:
        for _ in range(3):
            assert client.get("/v1/fast").status_code == 200
        assert client.head("/v1/fast").status_code == 200
        assert client.get("/v1/fast", headers={"if-none-match": '"v1"'}).status_code == 304
        assert client.get("/v1/benchmarks/MTEB(eng, v2)/scores").status_code == 200
        assert client.get("/v1/benchmarks/MTEB%28eng%2C%20v2%29/scores").status_code == 200
        assert client.get("/v1/models/BAAI/bge-m3/scores").status_code == 200
        assert client.get("/does/not/exist").status_code == 404
        assert client.post("/v1/benchmarks/x/scores").status_code == 405
        assert client.request("PROPFIND", "/v1/fast").status_code == 200
        assert client.get("/boom", headers=CLOSE).status_code == 500
        assert client.get("/slow").status_code == 200
        scrape = client.get("/metrics")
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(scrape.text)

    def requests(method: str, route: str, status: str) -> float:
        return _get(samples, "http_requests_total", method=method, route=route, status=status)

    assert requests("GET", "/v1/fast", "200") == 3
    assert requests("HEAD", "/v1/fast", "200") == 1
    assert requests("GET", "/v1/fast", "304") == 1
    assert requests("OTHER", "/v1/fast", "200") == 1
    assert requests("GET", "/v1/benchmarks/{name}/scores", "200") == 2
    assert requests("GET", "/v1/models/{name:path}/scores", "200") == 1
    assert requests("GET", UNMATCHED, "404") == 1
    assert requests("POST", "/v1/benchmarks/{name}/scores", "405") == 1
    assert requests("GET", "/boom", "500") == 1
    assert requests("GET", "/slow", "200") == 1
    # The scrape itself is being answered while the registry is collected.
    assert _get(samples, "http_requests_in_flight") == 1
    routes = {dict(labels)["route"] for (name, labels) in samples if name == "http_requests_total"}
    assert routes <= {*TEMPLATES, UNMATCHED}

    fast = {"method": "GET", "route": "/v1/fast"}
    assert _get(samples, "http_request_duration_seconds_count", **fast) == 4  # 3 x 200, 1 x 304
    assert _get(samples, "http_request_duration_seconds_bucket", le="+Inf", **fast) == 4
    assert _get(samples, "http_request_duration_seconds_bucket", le="10.0", **fast) == 4
    slow = {"method": "GET", "route": "/slow"}
    assert _get(samples, "http_request_duration_seconds_sum", **slow) >= 0.04  # slept 50 ms
    assert _get(samples, "http_request_duration_seconds_bucket", le="0.025", **slow) == 0
    # Bodies actually sent: 4 GETs/PROPFIND x 14 bytes; HEAD and 304 send none.
    assert _get(samples, "http_response_size_bytes_count", route="/v1/fast") == 6
    assert _get(samples, "http_response_size_bytes_sum", route="/v1/fast") == 4 * 14


def test_openmetrics_and_exclude() -> None:
    metrics = Metrics(process_metrics=False)
    app = _make_app(metrics, exclude=("/metrics",))
    with _serve(app) as base, httpx.Client(base_url=base) as client:
        client.get("/v1/fast")
        client.get("/metrics")
        scrape = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert scrape.headers["content-type"].startswith("application/openmetrics-text")
    assert scrape.text.rstrip().endswith("# EOF")
    assert "process_cpu_seconds_total" not in scrape.text
    samples = _samples(render_metrics(metrics)[0].decode())
    assert _get(samples, "http_requests_total", method="GET", route="/v1/fast", status="200") == 1
    assert not any(dict(labels).get("route") == "/metrics" for (_, labels) in samples)


# ---------------------------------------------------------------- cardinality


async def test_cardinality_stays_bounded_under_random_paths() -> None:
    metrics = Metrics(process_metrics=False)
    app = _make_app(metrics)
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "-_(), "

    def word() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for index in range(1_000):
            if index % 2:
                path = f"/v1/benchmarks/{word()}/scores"
            else:
                path = "/" + "/".join(word() for _ in range(rng.randint(1, 4)))
            response = await client.get(path)
            assert response.status_code in {200, 404}
    samples = _samples(render_metrics(metrics)[0].decode())
    series = [dict(labels) for (name, labels) in samples if name == "http_requests_total"]
    assert {(s["route"], s["status"]) for s in series} <= {
        ("/v1/benchmarks/{name}/scores", "200"),
        (UNMATCHED, "404"),
        ("/v1/models/{name:path}/scores", "200"),  # a random path can look like a model
    }
    assert sum(_get(samples, "http_requests_total", **s) for s in series) == 1_000
    histogram_series = [name for (name, _) in samples if name.startswith("http_request_dur")]
    assert len(histogram_series) <= 3 * (17 + 2)


# ---------------------------------------------------------------- cache and data metrics


async def test_cache_and_dataset_metrics() -> None:
    metrics = Metrics(process_metrics=False)
    cache = PayloadCache(
        max_entries=2, on_event=metrics.cache_event, on_build=metrics.observe_build
    )
    metrics.watch_cache(lambda: cache.stats)

    def build() -> Payload:
        return Payload.build(
            b'{"rows": []}' * 50,
            media_type="application/json",
            last_modified=datetime(2024, 5, 1, tzinfo=UTC),
            cache_control="no-cache",
        )

    await cache.get_or_build(("s1", "/v1/benchmarks"), build, pin=True)
    assert cache.get_ready(("s1", "/v1/benchmarks")) is not None
    results = await asyncio.gather(
        *(cache.get_or_build(("s1", "q", i % 3), build) for i in range(9))
    )
    assert len(results) == 9
    metrics.set_snapshot("aaa111", rows=1234)
    metrics.set_snapshot("bbb222", rows=2000)
    metrics.set_warmup(1.5)
    metrics.reload("ok")
    metrics.reload("ok")
    metrics.reload("error")
    samples = _samples(render_metrics(metrics)[0].decode())
    cache_requests = "leaderboard_cache_requests_total"
    assert _get(samples, cache_requests, layer="pinned", result="miss") == 1
    assert _get(samples, cache_requests, layer="pinned", result="hit") == 1
    assert _get(samples, cache_requests, layer="lru", result="miss") == 3
    assert _get(samples, cache_requests, layer="lru", result="coalesced") == 6
    assert _get(samples, "leaderboard_cache_events_total", layer="lru", event="evicted") == 1
    assert _get(samples, "leaderboard_cache_entries", layer="pinned") == 1
    assert _get(samples, "leaderboard_cache_entries", layer="lru") == 2
    stats = cache.stats
    assert _get(samples, "leaderboard_cache_bytes", layer="lru") == stats.lru_bytes > 0
    assert _get(samples, "leaderboard_cache_builds_in_flight") == 0
    assert _get(samples, "leaderboard_payload_build_seconds_count", kind="pinned") == 1
    assert _get(samples, "leaderboard_payload_build_seconds_count", kind="lru") == 3
    info = [dict(labels) for (name, labels) in samples if name == "leaderboard_dataset_info"]
    assert info == [{"snapshot": "bbb222"}]
    assert _get(samples, "leaderboard_dataset_info", snapshot="bbb222") == 1
    assert _get(samples, "leaderboard_dataset_rows") == 2000
    assert _get(samples, "leaderboard_warmup_seconds") == 1.5
    assert _get(samples, "leaderboard_reloads_total", result="ok") == 2
    assert _get(samples, "leaderboard_reloads_total", result="error") == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(process_metrics=False), Metrics()
    first.reload("ok")
    second_text = render_metrics(second)[0].decode()
    assert "leaderboard_reloads_total{" not in second_text
    assert "process_cpu_seconds_total" in second_text or "python_info" in second_text


def test_multiprocess_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    check_multiprocess_env({})
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/prom")
    with pytest.raises(MultiprocessModeError, match="one uvicorn worker per replica"):
        check_multiprocess_env()
    with pytest.raises(MultiprocessModeError):
        Metrics()


def test_fast_path_answers_are_counted_without_wrapping_send() -> None:
    # MetricsMiddleware directly around a FastPath sends its answers itself.
    payload = Payload.build(
        b"x" * 2000,
        media_type="text/plain",
        last_modified=datetime(2024, 1, 1, tzinfo=UTC),
        cache_control="no-cache",
    )
    metrics = Metrics(process_metrics=False)

    async def framework(scope: Scope, receive: Any, send: Any) -> None:
        status, body, headers = 404, b"missing", []
        if scope["path"] == "/metrics":
            body, content_type = render_metrics(metrics)
            status, headers = 200, [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def lookup(path: str, query: bytes) -> Payload | None:
        if path == "/boom":
            msg = "deliberate lookup failure"
            raise RuntimeError(msg)
        return payload if path == "/v1/fast" and not query else None

    fast = FastPath(framework, lookup=lookup)
    app = MetricsMiddleware(fast, metrics=metrics, templates=RouteTemplates(TEMPLATES))
    identity = payload.variants["identity"]
    with _serve(app) as base, httpx.Client(base_url=base) as client:
        for _ in range(3):
            response = client.get("/v1/fast", headers={"accept-encoding": "identity"})
            assert response.content == identity.body
            assert response.headers["etag"] == identity.etag
        assert client.head("/v1/fast").status_code == 200
        assert client.get("/v1/fast", headers={"if-none-match": identity.etag}).status_code == 304
        gzipped = client.get("/v1/fast", headers={"accept-encoding": "gzip"})
        assert gzipped.headers["content-encoding"] == "gzip"
        assert client.get("/v1/fast?x=1").status_code == 404  # not prebuilt: the framework
        assert client.get("/boom", headers=CLOSE).status_code == 500
        samples = _samples(client.get("/metrics").text)

    def requests(method: str, route: str, status: str) -> float:
        return _get(samples, "http_requests_total", method=method, route=route, status=status)

    assert requests("GET", "/v1/fast", "200") == 4
    assert requests("HEAD", "/v1/fast", "200") == 1
    assert requests("GET", "/v1/fast", "304") == 1
    assert requests("GET", "/v1/fast", "404") == 1
    assert requests("GET", "/boom", "500") == 1
    fast_get = {"method": "GET", "route": "/v1/fast"}
    assert _get(samples, "http_request_duration_seconds_count", **fast_get) == 6
    assert _get(samples, "http_request_duration_seconds_bucket", le="+Inf", **fast_get) == 6
    sent = 3 * len(identity.body) + len(payload.variants["gzip"].body) + len(b"missing")
    assert _get(samples, "http_response_size_bytes_count", route="/v1/fast") == 7
    assert _get(samples, "http_response_size_bytes_sum", route="/v1/fast") == sent
    assert _get(samples, "http_requests_in_flight") == 1  # the scrape itself
    # Everything above, the scrape included (it has finished by now).
    assert metrics.requests_total() == 4 + 1 + 1 + 1 + 1 + 1
