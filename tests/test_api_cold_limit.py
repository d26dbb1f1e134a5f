"""Cold parameterized builds on /v1 are rate limited per client address (issue 14)."""

from __future__ import annotations

import httpx

from leaderboard_api.app import create_app
from tests.api_support import client_for, settings, wait_ready

ENG = "TEB(eng, v1)"


def _filters(n: int) -> list[dict[str, str]]:
    # Distinct parameter sets, each a new cache key and so a cold build.
    return [{"min_params_b": f"0.{k}"} for k in range(n)]


async def _distinct_cold(client: httpx.AsyncClient, n: int) -> list[httpx.Response]:
    return [await client.get("/v1/models", params=params) for params in _filters(n)]


async def test_cold_builds_over_the_limit_get_429_and_cached_answers_are_free() -> None:
    async with client_for(rate_limit_cold_builds="2/minute") as client:
        first, second, third = await _distinct_cold(client, 3)
        assert (first.status_code, second.status_code) == (200, 200), first.text
        # A served payload is shared by every client (and CDNs): no per-client headers.
        assert "ratelimit" not in first.headers
        assert third.status_code == 429
        assert third.headers["content-type"] == "application/problem+json"
        assert int(third.headers["retry-after"]) >= 1
        assert third.headers["ratelimit-policy"].startswith('"cold-builds"')
        assert "cold-builds" in third.json()["detail"] or "cold" in third.json()["title"].lower()
        # The same parameters again are cached: served, not counted, still 200.
        again = await client.get("/v1/models", params=_filters(1)[0])
        assert again.status_code == 200
        assert again.content == first.content
        # Unparameterized routes are never counted.
        assert (await client.get(f"/v1/benchmarks/{ENG}/scores")).status_code == 200


async def test_other_addresses_have_their_own_quota() -> None:
    app = create_app(settings(rate_limit_cold_builds="1/minute"))
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                base_url="http://testserver",
            )
            for address in ("192.0.2.1", "192.0.2.2")
        ]
        one, two = clients
        try:
            assert (await one.get("/v1/models", params={"min_params_b": "1"})).status_code == 200
            over = await one.get("/v1/models", params={"min_params_b": "2"})
            assert over.status_code == 429
            # Another address still has its quota.
            other = await two.get("/v1/models", params={"min_params_b": "3"})
            assert other.status_code == 200
        finally:
            for client in clients:
                await client.aclose()


async def test_an_empty_rate_turns_the_limit_off() -> None:
    async with client_for(rate_limit_cold_builds="") as client:
        answers = await _distinct_cold(client, 5)
        assert [r.status_code for r in answers] == [200] * 5
