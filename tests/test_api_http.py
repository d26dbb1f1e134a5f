"""HTTP semantics of /v1: validators, conditional requests, encodings, caching headers, CORS."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from email.utils import format_datetime, parsedate_to_datetime

import brotli
import httpx
import pytest

from leaderboard_api.app import create_app
from leaderboard_api.dataset.sources import resolve
from tests.api_support import client_for, settings

ENG = "TEB(eng, v1)"
SCORES = f"/v1/benchmarks/{ENG}/scores"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(cors_origins=["https://board.example"]) as c:
        yield c


def raw_headers(**headers: str) -> dict[str, str]:
    """Request headers; without Accept-Encoding httpx would ask for gzip by itself."""
    base = {"accept-encoding": "identity"}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return base


async def test_etag_and_304_forms(client: httpx.AsyncClient) -> None:
    first = await client.get(SCORES, headers=raw_headers())
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    for header in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        again = await client.get(SCORES, headers=raw_headers(if_none_match=header))
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"]
        assert again.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=600"
        assert "vary" in again.headers
    miss = await client.get(SCORES, headers=raw_headers(if_none_match='"other"'))
    assert miss.status_code == 200


async def test_if_none_match_takes_precedence_over_if_modified_since(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get(SCORES, headers=raw_headers())
    last_modified = first.headers["last-modified"]
    both = await client.get(
        SCORES, headers=raw_headers(if_none_match='"other"', if_modified_since=last_modified)
    )
    assert both.status_code == 200
    only_ims = await client.get(SCORES, headers=raw_headers(if_modified_since=last_modified))
    assert only_ims.status_code == 304


async def test_last_modified_is_the_dataset_time_not_process_start(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(SCORES, headers=raw_headers())
    expected = resolve(None).updated_at
    assert response.headers["last-modified"] == format_datetime(expected, usegmt=True)
    assert parsedate_to_datetime(response.headers["last-modified"]) == expected


async def test_encoding_negotiation(client: httpx.AsyncClient) -> None:
    identity = await client.get(SCORES, headers=raw_headers())
    body = identity.content
    assert int(identity.headers["content-length"]) == len(body)
    assert "content-encoding" not in identity.headers
    vary = {token.strip().lower() for token in identity.headers["vary"].split(",")}
    assert "accept-encoding" in vary

    async def raw(accept: str) -> tuple[httpx.Headers, bytes]:
        async with client.stream("GET", SCORES, headers={"accept-encoding": accept}) as response:
            data = b"".join([chunk async for chunk in response.aiter_raw()])
            return response.headers, data

    headers, data = await raw("gzip")
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == len(data)
    assert gzip.decompress(data) == body
    headers, data = await raw("br;q=1, gzip;q=0.5")
    assert headers["content-encoding"] == "br"
    assert brotli.decompress(data) == body
    headers, data = await raw("gzip;q=0, br;q=0")
    assert "content-encoding" not in headers
    assert data == body
    headers, data = await raw("gzip;q=0, *;q=0.1")
    assert headers.get("content-encoding") != "gzip"
    # Each coding has its own validator.
    gz_headers, _ = await raw("gzip")
    assert gz_headers["etag"] != identity.headers["etag"]


async def test_cache_control_on_data_and_infra(client: httpx.AsyncClient) -> None:
    data = await client.get("/v1/benchmarks")
    assert data.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=600"
    for path in ("/health", "/ready", "/metrics"):
        infra = await client.get(path)
        assert infra.status_code == 200, path
        assert infra.headers["cache-control"] == "no-store", path


async def test_cache_control_from_settings() -> None:
    async with client_for(cache_control="public, max-age=5") as c:
        response = await c.get("/v1/benchmarks")
    assert response.headers["cache-control"] == "public, max-age=5"


async def test_cors(client: httpx.AsyncClient) -> None:
    allowed = await client.get(SCORES, headers={"origin": "https://board.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://board.example"
    assert "etag" in allowed.headers["access-control-expose-headers"].lower()
    denied = await client.get(SCORES, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    preflight = await client.options(
        SCORES,
        headers={"origin": "https://board.example", "access-control-request-method": "GET"},
    )
    assert preflight.status_code == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]


async def test_ready_is_503_until_loaded_then_200() -> None:
    app = create_app(settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as cold:
        before = await cold.get("/ready")
        assert before.status_code == 503
        assert before.headers["retry-after"]
        assert before.headers["cache-control"] == "no-store"
        not_ready = await cold.get("/v1/benchmarks")
        assert not_ready.status_code == 503
        assert not_ready.headers["content-type"] == "application/problem+json"
        health = await cold.get("/health")
        assert health.status_code == 200
    async with client_for() as warm:
        after = await warm.get("/ready")
        assert after.status_code == 200
        body = after.json()
        assert body["snapshot"] == resolve(None).snapshot_id
        assert body["loadedAt"]
