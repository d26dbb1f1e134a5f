"""Tests for leaderboard_api.serving.fastpath, through httpx's ASGI transport and a real uvicorn."""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import brotli
import httpx
import orjson
import pytest
import uvicorn
import zstandard
from fastapi import FastAPI, HTTPException

from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.fastpath import FastPath, PayloadResponse, send_payload
from leaderboard_api.serving.payload import Payload
from tests.api_support import asgi_call

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

ROOT = Path(__file__).resolve().parents[1]
SCORES = "/v1/benchmarks/MTEB(eng, v2)/scores"
WHEN = datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)
VOLATILE = {"date", "server"}


def make_payload(rows: int = 400) -> Payload:
    body = orjson.dumps(
        {"rows": [{"model": f"org/model-{i}", "score": round(80 - i / 9, 4)} for i in range(rows)]}
    )
    return Payload.build(
        body,
        media_type="application/json",
        last_modified=WHEN,
        cache_control="public, max-age=60",
        extra_headers=(("x-snapshot", "abc123"),),
    )


PAYLOAD = make_payload()
SMALL = Payload.build(
    b'{"ok":true}', media_type="application/json", last_modified=WHEN, cache_control="no-cache"
)
TABLE = {(SCORES, b""): PAYLOAD, ("/v1/health", b""): SMALL}


def decode(encoding: str | None, raw: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "br":
        return bytes(brotli.decompress(raw))
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompress(raw)
    assert encoding is None
    return raw


@dataclass
class Fallback:
    """The "framework": answers 404 and records what reached it."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.seen.append((scope["type"], scope.get("path", "")))
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"8")]}
        )
        await send({"type": "http.response.body", "body": b"fallback"})


def cors(origin: bytes) -> list[tuple[bytes, bytes]]:
    if origin == b"https://allowed.example":
        return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]
    return []


def fast_app(fallback: ASGIApp | None = None) -> FastPath:
    return FastPath(
        fallback or Fallback(),
        lookup=lambda path, query: TABLE.get((path, query)),
        extra_headers=[(b"x-served-by", b"fastpath")],
        origin_headers=cors,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fast_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def fetch_raw(
    client: httpx.AsyncClient,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, bytes]:
    async with client.stream(method, url, headers=headers or {}) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, raw


# --- through httpx's ASGI transport -------------------------------------------------------


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip", "identity"])
async def test_each_coding_is_served_exactly(client: httpx.AsyncClient, encoding: str) -> None:
    response, raw = await fetch_raw(client, SCORES, headers={"accept-encoding": encoding})
    assert response.status_code == 200
    variant = PAYLOAD.variants[encoding]
    assert raw == variant.body
    assert int(response.headers["content-length"]) == len(raw)
    assert response.headers.get("content-encoding") == (
        None if encoding == "identity" else encoding
    )
    assert decode(response.headers.get("content-encoding"), raw) == PAYLOAD.identity
    assert response.headers["etag"] == variant.etag
    assert response.headers["vary"] == "accept-encoding"
    assert response.headers["x-served-by"] == "fastpath"
    assert response.headers["x-snapshot"] == "abc123"


async def test_browser_header_gets_brotli_and_httpx_decodes_it(client: httpx.AsyncClient) -> None:
    response = await client.get(SCORES, headers={"accept-encoding": "gzip, deflate, br, zstd"})
    assert response.headers["content-encoding"] == "br"
    assert response.content == PAYLOAD.identity


async def test_q_zero_excludes_a_coding(client: httpx.AsyncClient) -> None:
    response, _ = await fetch_raw(
        client, SCORES, headers={"accept-encoding": "br;q=0, zstd;q=0, *"}
    )
    assert response.headers["content-encoding"] == "gzip"
    response, raw = await fetch_raw(client, SCORES, headers={"accept-encoding": "*;q=0"})
    assert "content-encoding" not in response.headers
    assert raw == PAYLOAD.identity


async def test_percent_encoded_path_reaches_the_same_payload(client: httpx.AsyncClient) -> None:
    for url in (
        "/v1/benchmarks/MTEB(eng,%20v2)/scores",
        "/v1/benchmarks/MTEB%28eng%2C%20v2%29/scores",
    ):
        response = await client.get(url, headers={"accept-encoding": "identity"})
        assert response.status_code == 200
        assert response.content == PAYLOAD.identity


async def test_other_requests_pass_through_to_the_app() -> None:
    fallback = Fallback()
    transport = httpx.ASGITransport(app=fast_app(fallback))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.post(SCORES)).status_code == 404
        assert (await c.options(SCORES)).status_code == 404
        assert (await c.get("/v1/unknown")).status_code == 404
        assert (await c.get(SCORES + "?page=2")).status_code == 404
        assert (await c.get(SCORES)).status_code == 200
    assert [path for _, path in fallback.seen] == [SCORES, SCORES, "/v1/unknown", SCORES]


async def test_lifespan_scope_goes_to_the_app() -> None:
    fallback = Fallback()
    app = fast_app(fallback)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError(message)

    await app({"type": "lifespan"}, receive, send)
    assert fallback.seen == [("lifespan", "")]


@pytest.mark.parametrize("form", ["exact", "weak", "list", "star"])
async def test_if_none_match_gives_304(client: httpx.AsyncClient, form: str) -> None:
    gz = PAYLOAD.variants["gzip"]
    header = {
        "exact": gz.etag,
        "weak": f"W/{gz.etag}",
        "list": f'"other", W/"x",{gz.etag}',
        "star": "*",
    }[form]
    response, raw = await fetch_raw(
        client, SCORES, headers={"if-none-match": header, "accept-encoding": "gzip"}
    )
    assert response.status_code == 304
    assert raw == b""
    assert response.headers["etag"] == gz.etag
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["vary"] == "accept-encoding"
    assert response.headers["last-modified"] == "Fri, 17 May 2024 09:30:12 GMT"
    assert "content-length" not in response.headers
    assert "content-encoding" not in response.headers


async def test_304_names_the_variant_the_client_holds(client: httpx.AsyncClient) -> None:
    held = PAYLOAD.variants["zstd"].etag
    response = await client.get(SCORES, headers={"if-none-match": held, "accept-encoding": "br"})
    assert response.status_code == 304
    assert response.headers["etag"] == held


async def test_stale_etag_gets_the_full_body(client: httpx.AsyncClient) -> None:
    response = await client.get(
        SCORES, headers={"if-none-match": '"deadbeef"', "accept-encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.content == PAYLOAD.identity


async def test_if_none_match_takes_precedence_over_if_modified_since(
    client: httpx.AsyncClient,
) -> None:
    future = "Sat, 01 Jan 2050 00:00:00 GMT"
    response = await client.get(
        SCORES, headers={"if-none-match": '"stale"', "if-modified-since": future}
    )
    assert response.status_code == 200
    response = await client.get(SCORES, headers={"if-modified-since": future})
    assert response.status_code == 304
    response = await client.get(
        SCORES, headers={"if-modified-since": "Thu, 16 May 2024 00:00:00 GMT"}
    )
    assert response.status_code == 200


async def test_head_sends_get_headers_without_a_body(client: httpx.AsyncClient) -> None:
    for encoding in ("br", "identity"):
        get, _ = await fetch_raw(client, SCORES, headers={"accept-encoding": encoding})
        head, raw = await fetch_raw(
            client, SCORES, method="HEAD", headers={"accept-encoding": encoding}
        )
        assert head.status_code == 200
        assert raw == b""
        assert head.headers.multi_items() == get.headers.multi_items()
    head = await client.head(SCORES, headers={"if-none-match": PAYLOAD.etag})
    assert head.status_code == 304


async def test_small_payload_is_identity_without_vary(client: httpx.AsyncClient) -> None:
    response, raw = await fetch_raw(client, "/v1/health", headers={"accept-encoding": "br, gzip"})
    assert raw == b'{"ok":true}'
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert response.headers["content-length"] == "11"


async def test_cors_headers_only_for_allowed_origins(client: httpx.AsyncClient) -> None:
    allowed = await client.get(SCORES, headers={"origin": "https://allowed.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://allowed.example"
    assert allowed.headers.get_list("vary") == ["accept-encoding", "origin"]
    other = await client.get(SCORES, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    plain = await client.get(SCORES)
    assert "access-control-allow-origin" not in plain.headers


async def test_middleware_mutating_headers_cannot_corrupt_the_payload() -> None:
    inner = fast_app()

    async def meddler(scope: Scope, receive: Any, send: Any) -> None:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-meddled", b"1"))
            await send(message)

        await inner(scope, receive, wrapped)

    transport = httpx.ASGITransport(app=meddler)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        for _ in range(3):
            response = await c.get(SCORES)
            assert response.headers.get_list("x-meddled") == ["1"]
    assert all(name != b"x-meddled" for name, _ in PAYLOAD.variants["identity"].headers)


# --- the cold path through FastAPI answers with the same bytes -----------------------------


@dataclass
class Service:
    app: FastPath
    cache: PayloadCache
    route_calls: list[str]


def make_service() -> Service:
    """A FastAPI app behind the fast path, building payloads through the cache on first use."""
    cache = PayloadCache()
    api = FastAPI()
    calls: list[str] = []
    sources = {SCORES: PAYLOAD}

    @api.api_route("/v1/benchmarks/{name}/scores", methods=["GET", "HEAD"], response_model=None)
    async def scores(name: str) -> PayloadResponse:
        path = f"/v1/benchmarks/{name}/scores"
        calls.append(path)
        if path not in sources:
            raise HTTPException(status_code=404)
        payload = await cache.get_or_build((path, b""), lambda: sources[path])
        return PayloadResponse(payload, extra_headers=[(b"x-served-by", b"fastpath")])

    def lookup(path: str, query: bytes) -> Payload | None:
        return cache.get_ready((path, query))

    app = FastPath(api, lookup=lookup, extra_headers=[(b"x-served-by", b"fastpath")])
    return Service(app=app, cache=cache, route_calls=calls)


def stable(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k not in VOLATILE]


async def test_cold_route_and_fast_path_send_identical_responses() -> None:
    service = make_service()
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        for encoding in ("br", "gzip", "identity"):
            headers = {"accept-encoding": encoding}
            service.cache.clear()
            cold, cold_raw = await fetch_raw(c, SCORES, headers=headers)
            calls = len(service.route_calls)
            warm, warm_raw = await fetch_raw(c, SCORES, headers=headers)
            assert len(service.route_calls) == calls  # the second one never reached FastAPI
            assert (cold.status_code, stable(cold), cold_raw) == (
                warm.status_code,
                stable(warm),
                warm_raw,
            )
        service.cache.clear()
        cold_304 = await c.get(SCORES, headers={"if-none-match": PAYLOAD.etag})
        warm_304 = await c.get(SCORES, headers={"if-none-match": PAYLOAD.etag})
        assert cold_304.status_code == warm_304.status_code == 304
        assert stable(cold_304) == stable(warm_304)
        service.cache.clear()
        head = await c.head(SCORES, headers={"accept-encoding": "identity"})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(PAYLOAD.identity))
        assert (await c.get("/v1/benchmarks/nope/scores")).status_code == 404


async def test_send_payload_answers_a_raw_asgi_call() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send_payload(scope, receive, send, PAYLOAD, extra_headers=[(b"x-extra", b"1")])

    headers = [(b"accept-encoding", b"zstd")]
    status, sent, body = await asgi_call(app, method="GET", path="/x", headers=headers)
    assert status == 200
    assert (b"content-encoding", b"zstd") in sent
    assert (b"x-extra", b"1") in sent
    assert body == PAYLOAD.variants["zstd"].body


# --- parity with the benchmark yardstick --------------------------------------------------


def load_bare_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bare_app", ROOT / "benchmarks" / "bare_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs: dataclasses look their module up in sys.modules.
    sys.modules["bare_app"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bare_app"]
    return module


async def call(
    app: ASGIApp, *, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[Any, ...]:
    return await asgi_call(app, method=method, path=path, headers=headers)


BENCHMARK_REQUESTS: list[list[tuple[bytes, bytes]]] = [
    [(b"if-none-match", PAYLOAD.etag.encode()), (b"accept-encoding", b"identity")],
    [(b"accept-encoding", b"gzip")],
    [(b"accept-encoding", b"identity")],
]


async def recorded_routes(bare: ModuleType) -> dict[str, Any]:
    """The fast path's answers to the benchmark's requests, recorded as bench_api does."""
    fast = FastPath(Fallback(), lookup=lambda path, query: TABLE.get((path, query)))
    not_modified, gzipped, identity = [
        bare.Answer(*(await call(fast, method="GET", path=SCORES, headers=headers)))
        for headers in BENCHMARK_REQUESTS
    ]
    route = bare.Route(
        identity=identity, gzip=gzipped, not_modified={PAYLOAD.etag.encode(): not_modified}
    )
    return {SCORES: route}


async def test_bare_yardstick_replays_the_fast_path_for_the_benchmark_requests() -> None:
    module = load_bare_app()
    bare = module.make_app(await recorded_routes(module))
    fast = FastPath(Fallback(), lookup=lambda path, query: TABLE.get((path, query)))
    for method in ("GET", "HEAD"):
        for headers in BENCHMARK_REQUESTS:
            expected = await call(fast, method=method, path=SCORES, headers=headers)
            assert await call(bare, method=method, path=SCORES, headers=headers) == expected
    assert (await call(bare, method="GET", path="/other", headers=[]))[0] == 404


async def test_bare_app_saves_and_loads_a_directory(tmp_path: Path) -> None:
    module = load_bare_app()
    routes = await recorded_routes(module)
    module.save(tmp_path, routes)
    assert module.load_dir(tmp_path) == routes


# --- a real uvicorn server on 127.0.0.1 ---------------------------------------------------


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    """Serve :func:`make_service` with uvicorn in a thread; yield the port."""
    config = uvicorn.Config(
        make_service().app,
        http=request.param,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    instance = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited"
        time.sleep(0.01)
    yield sock.getsockname()[1]
    instance.should_exit = True
    thread.join(10)
    sock.close()


def raw_request(
    conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_uvicorn_serves_every_coding_with_exact_lengths(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    wire_path = "/v1/benchmarks/MTEB(eng,%20v2)/scores"
    try:
        # The first request is cold (FastAPI route), the rest hit the fast path; all on one
        # keep-alive connection, so a wrong Content-Length would garble the next response.
        for encoding in ("identity", "br", "zstd", "gzip", "br"):
            status, headers, body = raw_request(
                conn, "GET", wire_path, {"accept-encoding": encoding}
            )
            assert status == 200
            assert int(headers["content-length"]) == len(body)
            assert decode(headers.get("content-encoding"), body) == PAYLOAD.identity
            assert headers["etag"] == PAYLOAD.variants[encoding].etag
        status, headers, body = raw_request(conn, "HEAD", wire_path, {"accept-encoding": "gzip"})
        assert (status, body) == (200, b"")
        assert headers["content-length"] == str(len(PAYLOAD.variants["gzip"].body))
        assert headers["content-encoding"] == "gzip"
        status, headers, body = raw_request(
            conn, "GET", wire_path, {"accept-encoding": "gzip;q=0, br;q=0, *"}
        )
        assert headers.get("content-encoding") == "zstd"
        status, headers, body = raw_request(
            conn, "GET", wire_path, {"accept-encoding": "gzip;q=0, br;q=0"}
        )
        assert "content-encoding" not in headers  # zstd was never offered by the client
        status, headers, body = raw_request(
            conn, "GET", wire_path, {"accept-encoding": "identity;q=0, *;q=0"}
        )
        assert "content-encoding" not in headers
        assert body == PAYLOAD.identity
    finally:
        conn.close()


def test_uvicorn_conditional_requests(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    gz = PAYLOAD.variants["gzip"]
    future = "Sat, 01 Jan 2050 00:00:00 GMT"
    try:
        raw_request(conn, "GET", SCORES.replace(" ", "%20"), {})
        for inm in (gz.etag, f"W/{gz.etag}", f'"a", {gz.etag}, "b"', "*"):
            status, headers, body = raw_request(
                conn,
                "GET",
                SCORES.replace(" ", "%20"),
                {"if-none-match": inm, "accept-encoding": "gzip"},
            )
            assert (status, body) == (304, b""), inm
            assert headers["etag"] == gz.etag
            assert "content-length" not in headers
        status, _, body = raw_request(
            conn,
            "GET",
            SCORES.replace(" ", "%20"),
            {"if-none-match": '"old"', "if-modified-since": future},
        )
        assert status == 200
        assert body == PAYLOAD.identity
        status, _, body = raw_request(
            conn, "GET", SCORES.replace(" ", "%20"), {"if-modified-since": future}
        )
        assert (status, body) == (304, b"")
        status, _, body = raw_request(
            conn, "HEAD", SCORES.replace(" ", "%20"), {"if-none-match": PAYLOAD.etag}
        )
        assert (status, body) == (304, b"")
        status, _, _ = raw_request(conn, "GET", "/v1/benchmarks/nope/scores", {})
        assert status == 404
    finally:
        conn.close()
