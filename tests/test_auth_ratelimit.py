"""Tests for leaderboard_api.auth.ratelimit on memory storage and on a real redis-server.

The Redis tests start ``redis-server`` on a free 127.0.0.1 port in a temporary folder
(no persistence) and are skipped, saying so, only when the binary is not installed
(``apt-get install -y redis-server``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from leaderboard_api.auth import (
    RATE_LIMIT_RESPONSES,
    Authenticator,
    ClientAddress,
    Decision,
    Identity,
    Policy,
    RateLimiter,
    default_policies,
    install_auth,
    rate_limit,
    rate_limit_decisions,
    rate_limit_headers,
    rate_limited_response,
    require,
)
from leaderboard_api.auth.ratelimit import DRAFT
from leaderboard_api.problems import PROBLEM_TYPE, install_problem_handlers

ALICE = Identity(name="alice", kind="key", scopes=frozenset({"submit", "vote"}))
BOB = Identity(name="bob", kind="key", scopes=frozenset({"submit", "vote"}))
KEYS = {"lb_alice": ALICE, "lb_bob": BOB}


class DictKeys:
    def verify(self, raw: str) -> Identity | None:
        return KEYS.get(raw)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a real redis-server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    folder: Path = tmp_path_factory.mktemp("redis")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start (exit code {process.poll()})")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def redis_limiter(redis_url: str) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(redis_url, key_prefix=f"test-{time.monotonic_ns()}")
    yield limiter
    await limiter.aclose()


# -- counting ---------------------------------------------------------------------------


async def exhaust(limiter: RateLimiter, policy: str, key: str, times: int) -> list[Decision]:
    return [await limiter.hit(policy, key) for _ in range(times)]


async def check_submissions(limiter: RateLimiter) -> None:
    decisions = await exhaust(limiter, "submissions", "key:alice", 11)
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    refused = decisions[-1]
    assert refused.limit == 10
    assert refused.remaining == 0
    assert refused.window_seconds == 86400
    assert 0 < refused.reset_seconds <= 86400
    other = await limiter.hit("submissions", "key:bob")
    assert other.allowed
    assert other.remaining == 9


async def test_defaults_on_memory_storage() -> None:
    limiter = RateLimiter()
    assert {name: (p.rate, p.per) for name, p in limiter.policies.items()} == {
        "submissions": ("10/day", "identity"),
        "votes": ("100/hour", "identity"),
        "cold-builds": ("30/minute", "address"),
    }
    await check_submissions(limiter)
    votes = await exhaust(limiter, "votes", "key:alice", 101)
    assert sum(d.allowed for d in votes) == 100
    assert votes[-1].window_seconds == 3600
    builds = await exhaust(limiter, "cold-builds", "203.0.113.7", 31)
    assert sum(d.allowed for d in builds) == 30
    assert builds[-1].window_seconds == 60
    await limiter.clear("cold-builds", "203.0.113.7")
    assert (await limiter.hit("cold-builds", "203.0.113.7")).remaining == 29


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter"])
async def test_other_strategies_count_the_same(strategy: Any) -> None:
    await check_submissions(RateLimiter(strategy=strategy))


async def test_rates_come_from_settings_and_empty_turns_a_policy_off() -> None:
    policies = default_policies(submissions="2 per hour", votes="", cold_builds="5/second")
    limiter = RateLimiter(policies=policies)
    assert [d.allowed for d in await exhaust(limiter, "submissions", "k", 3)] == [1, 1, 0]
    off = await exhaust(limiter, "votes", "k", 500)
    assert all(d.allowed and not d.enforced for d in off)
    assert rate_limit_headers(*off[:1]) == {}
    with pytest.raises(ValueError, match="'10/fortnight' is not a rate"):
        RateLimiter(policies=default_policies(submissions="10/fortnight"))
    with pytest.raises(ValueError, match="policy name"):
        Policy("Votes", "1/day", "identity")
    with pytest.raises(ValueError, match="repeat"):
        RateLimiter(policies=[Policy("a", "1/day", "identity")] * 2)
    with pytest.raises(ValueError, match="strategy"):
        RateLimiter(strategy="token-bucket")  # type: ignore[arg-type]


async def test_redis_counts_like_memory(redis_limiter: RateLimiter) -> None:
    assert await redis_limiter.healthy()
    await check_submissions(redis_limiter)


async def test_redis_counts_are_shared_by_replicas(redis_url: str) -> None:
    prefix = f"shared-{time.monotonic_ns()}"
    one = RateLimiter(redis_url, key_prefix=prefix)
    two = RateLimiter(redis_url, key_prefix=prefix)
    try:
        for _ in range(5):
            assert (await one.hit("submissions", "key:alice")).allowed
            assert (await two.hit("submissions", "key:alice")).allowed
        assert not (await one.hit("submissions", "key:alice")).allowed
        assert not (await two.hit("submissions", "key:alice")).allowed
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_failing_storage_lets_requests_through_unlimited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimiter(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    try:
        decision = await limiter.hit("submissions", "key:alice")
        assert decision.allowed
        assert not decision.enforced
        assert not await limiter.healthy()
    finally:
        await limiter.aclose()
    assert "not enforced" in caplog.text
    assert "hunter2" not in caplog.text


# -- the headers and the 429 -----------------------------------------------------------


def test_headers_follow_the_draft_syntax() -> None:
    assert DRAFT == "draft-ietf-httpapi-ratelimit-headers-10"
    decision = Decision("submissions", False, 10, 0, 3600, 86400)
    votes = Decision("votes", True, 100, 42, 1800, 3600)
    assert rate_limit_headers(decision, votes) == {
        "ratelimit-policy": '"submissions";q=10;w=86400, "votes";q=100;w=3600',
        "ratelimit": '"submissions";r=0;t=3600, "votes";r=42;t=1800',
    }


def test_the_429_problem() -> None:
    decision = Decision("submissions", False, 10, 0, 3600, 86400)
    response = rate_limited_response(decision, instance="/v1/submissions")
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["retry-after"] == "3600"
    assert response.headers["ratelimit-policy"] == '"submissions";q=10;w=86400'
    assert response.headers["ratelimit"] == '"submissions";r=0;t=3600'
    body = httpx.Response(200, content=bytes(response.body)).json()
    assert body == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "rate limit 'submissions' exceeded: 10 per day; retry in 3600 s",
        "instance": "/v1/submissions",
        "violated-policies": ["submissions"],
    }
    soon = rate_limited_response(Decision("cold-builds", False, 30, 0, 0, 60))
    assert soon.headers["retry-after"] == "1"  # never "retry now"


# -- through FastAPI --------------------------------------------------------------------

Submitter = Annotated[Identity, Depends(require("submit", limit="submissions"))]
ColdBuild = Annotated[Decision | None, Depends(rate_limit("cold-builds"))]
VotesByAddress = Annotated[Decision | None, Depends(rate_limit("votes"))]


def limited_app(limiter: RateLimiter, *, trusted: tuple[str, ...] = ()) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(
        app,
        Authenticator(DictKeys()),
        limiter=limiter,
        client_address=ClientAddress(trusted),
    )

    @app.post("/v1/submissions", responses=RATE_LIMIT_RESPONSES)
    async def submit(identity: Submitter) -> dict[str, str]:
        return {"name": identity.name}

    @app.get("/v1/build")
    async def build(decision: ColdBuild, request: Request) -> Response:
        headers = rate_limit_headers(*rate_limit_decisions(request))
        return Response(b"{}", media_type="application/json", headers=headers)

    return app


def client(app: FastAPI, address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_submissions_are_limited_per_identity() -> None:
    policies = default_policies(submissions="3/day")
    async with client(limited_app(RateLimiter(policies=policies))) as http:
        alice = {"authorization": "Bearer lb_alice"}
        answers = [await http.post("/v1/submissions", headers=alice) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["ratelimit-policy"] == '"submissions";q=3;w=86400'
        assert answers[0].headers["ratelimit"].startswith('"submissions";r=2;t=')
        refused = answers[-1]
        assert refused.headers["content-type"] == PROBLEM_TYPE
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["ratelimit"].startswith('"submissions";r=0;t=')
        assert refused.json()["violated-policies"] == ["submissions"]
        bob = await http.post("/v1/submissions", headers={"x-api-key": "lb_bob"})
        assert bob.status_code == 200
        nobody = await http.post("/v1/submissions")
        assert nobody.status_code == 401  # authentication comes before counting


async def test_cold_builds_are_limited_per_address() -> None:
    limiter = RateLimiter(policies=default_policies(cold_builds="2/minute"))
    app = limited_app(limiter)
    async with client(app) as first, client(app, "198.51.100.9") as second:
        answers = [await first.get("/v1/build") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[1].headers["ratelimit"].startswith('"cold-builds";r=0;t=')
        assert (await second.get("/v1/build")).status_code == 200


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy() -> None:
    limiter = RateLimiter(policies=default_policies(cold_builds="1/minute"))
    app = limited_app(limiter, trusted=("10.0.0.0/8",))
    async with client(app, "10.0.0.2") as proxy:
        for address in ("192.0.2.1", "192.0.2.2"):
            forwarded = {"x-forwarded-for": f"1.1.1.1, {address}"}
            assert (await proxy.get("/v1/build", headers=forwarded)).status_code == 200
        again = {"x-forwarded-for": "9.9.9.9, 192.0.2.1"}  # the spoofed left entry is ignored
        assert (await proxy.get("/v1/build", headers=again)).status_code == 429


def scope(peer: str | None, forwarded: str | None = None) -> dict[str, Any]:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return {"client": None if peer is None else (peer, 1234), "headers": headers}


def test_client_address_rules() -> None:
    direct = ClientAddress()
    assert direct(scope("203.0.113.7", "1.2.3.4")) == "203.0.113.7"  # XFF not trusted
    assert direct(scope(None)) == "unknown"
    assert direct(scope("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64"
    assert direct(scope("::ffff:192.0.2.1")) == "192.0.2.1"
    proxied = ClientAddress(["127.0.0.1", "10.0.0.0/8"])
    assert proxied(scope("127.0.0.1", "192.0.2.1")) == "192.0.2.1"
    assert proxied(scope("127.0.0.1", "6.6.6.6, 192.0.2.1, 10.1.2.3")) == "192.0.2.1"
    assert proxied(scope("127.0.0.1", "[2001:db8::1]:443")) == "2001:db8::/64"
    assert proxied(scope("127.0.0.1", "192.0.2.1:5555")) == "192.0.2.1"
    assert proxied(scope("127.0.0.1", "10.0.0.5, 10.0.0.6")) == "10.0.0.5"
    assert proxied(scope("127.0.0.1")) == "127.0.0.1"
    assert proxied(scope("203.0.113.7", "192.0.2.1")) == "203.0.113.7"  # not our proxy
    everyone = ClientAddress(["*"])
    assert everyone(scope("203.0.113.7", "192.0.2.1, 10.0.0.1")) == "192.0.2.1"
    with pytest.raises(ValueError, match="trusted_proxies"):
        ClientAddress(["not-an-address"])


async def test_a_per_identity_policy_needs_an_identity() -> None:
    app = FastAPI()
    install_auth(app, Authenticator(DictKeys()), limiter=RateLimiter())

    @app.get("/x")
    async def route(decision: VotesByAddress) -> str:
        return "never"

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        with pytest.raises(RuntimeError, match="per identity"):
            await http.get("/x")
