"""Tests for leaderboard_api.auth: identities, the require() dependency and ReadAuth.

API keys come from a dict-backed :class:`KeyVerifier` (the interface the operational
store implements; the store itself is tested with it).  Hugging Face tokens are verified
by the real ``huggingface_hub.HfApi.whoami`` against :class:`FakeHub`, a local HTTP
server on 127.0.0.1 that stands in for the Hugging Face Hub.  Caches run on an injected
clock: nothing here sleeps to see an entry expire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from leaderboard_api.auth import (
    AUTH_RESPONSES,
    Authenticator,
    AuthUnavailable,
    BasicUser,
    HubSettings,
    Identity,
    KeyVerifier,
    MissingScope,
    NotAuthenticated,
    ReadAuth,
    hash_password,
    install_auth,
    require,
)
from leaderboard_api.auth.passwords import parse_hash, verify_password
from leaderboard_api.auth.readauth import private_cache_control, with_vary
from leaderboard_api.auth.ttl import TTLCache
from leaderboard_api.problems import PROBLEM_TYPE, install_problem_handlers
from leaderboard_api.serving.fastpath import FastPath, PayloadResponse
from leaderboard_api.serving.payload import Payload

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READER = Identity(name="reader", kind="key", scopes=frozenset({"read"}))
SUBMITTER = Identity(name="submitter", kind="key", scopes=frozenset({"submit", "vote"}))
KEYS = {"lb_reader_key_0001": READER, "lb_submit_key_0002": SUBMITTER}
WHEN = datetime(2024, 5, 17, 9, 30, 12, tzinfo=UTC)
CACHE_CONTROL = "public, max-age=60, stale-while-revalidate=600"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class DictKeys:
    """The KeyVerifier interface over a dict; counts lookups."""

    keys: dict[str, Identity]
    calls: list[str] = field(default_factory=list)

    def verify(self, raw: str) -> Identity | None:
        self.calls.append(raw)
        return self.keys.get(raw)


# -- a stand-in for the Hugging Face Hub ------------------------------------------------


def whoami_body(name: str, *, kind: str = "user") -> dict[str, Any]:
    """The shape of the Hub's ``GET /api/whoami-v2`` answer for a user access token."""
    return {
        "type": kind,
        "id": "65f0c0ffee0000000000beef",
        "name": name,
        "fullname": name.title(),
        "email": f"{name}@example.org",
        "emailVerified": True,
        "canPay": False,
        "isPro": False,
        "periodEnd": None,
        "avatarUrl": f"https://example.org/avatars/{name}.png",
        "orgs": [{"type": "org", "name": "acme", "fullname": "Acme", "roleInOrg": "write"}],
        "auth": {
            "type": "access_token",
            "accessToken": {
                "displayName": "laptop",
                "role": "read",
                "createdAt": "2024-01-01T00:00:00.000Z",
            },
        },
    }


class FakeHub:
    """A stand-in for the Hugging Face Hub on 127.0.0.1: only ``GET /api/whoami-v2``.

    It answers as the Hub does (the path and fields huggingface_hub's ``whoami`` reads):
    200 with the whoami-v2 JSON for a known ``Authorization: Bearer`` token, 401 with
    ``{"error": "Invalid credentials in Authorization header"}`` (and the same text in
    ``X-Error-Message``) for any other; ``fail_with`` answers that status instead, and
    ``delay`` holds each answer that many seconds.
    """

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.seen: list[str] = []
        self.fail_with: int | None = None
        self.delay = 0.0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.headers.get("authorization", "").removeprefix("Bearer ")
                hub.seen.append(token)
                if hub.delay:
                    time.sleep(hub.delay)
                if self.path != "/api/whoami-v2":
                    self._answer(404, {"error": "Not Found"})
                elif hub.fail_with is not None:
                    self._answer(hub.fail_with, {"error": "Internal Error"})
                elif token in hub.tokens:
                    self._answer(200, hub.tokens[token])
                else:
                    message = "Invalid credentials in Authorization header"
                    self._answer(401, {"error": message}, {"X-Error-Message": message})

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.block_on_close = False
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        server.tokens["hf_alice_token_123"] = whoami_body("alice")
        server.tokens["hf_org_token_456"] = whoami_body("acme", kind="org")
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def make_auth(
    *,
    keys: DictKeys | None = None,
    clock: Clock | None = None,
    hub: FakeHub | None = None,
    endpoint: str | None = None,
    basic: dict[str, BasicUser] | None = None,
    timeout: float = 5.0,
) -> Authenticator:
    hub_settings = None
    if hub is not None or endpoint is not None:
        hub_settings = HubSettings(
            enabled=True,
            endpoint=endpoint or (hub.endpoint if hub else ""),
            cache_seconds=300,
            timeout_seconds=timeout,
        )
    return Authenticator(
        keys if keys is not None else DictKeys(dict(KEYS)),
        admin_token=ADMIN_TOKEN,
        basic_users=basic,
        hub=hub_settings,
        cache_seconds=30,
        clock=clock or Clock(),
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def basic_header(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {encoded}"}


# -- the TTL cache ------------------------------------------------------------------------


async def test_ttl_cache_expires_on_the_injected_clock() -> None:
    clock = Clock()
    cache: TTLCache[str, int | None] = TTLCache(ttl=10, max_entries=10, clock=clock)
    calls: list[str] = []

    async def fill() -> int | None:
        calls.append("x")
        return None  # a refusal is a result too

    assert await cache.get_or_fill("k", fill) is None
    clock.now += 9.9
    assert await cache.get_or_fill("k", fill) is None
    assert calls == ["x"]
    clock.now += 0.1
    await cache.get_or_fill("k", fill)
    assert calls == ["x", "x"]


async def test_ttl_cache_is_bounded_least_recently_used_first() -> None:
    cache: TTLCache[int, int] = TTLCache(ttl=60, max_entries=3, clock=Clock())
    for key in range(3):
        cache.store(key, key)
    cache.lookup(0)  # 0 is now the most recent
    cache.store(3, 3)
    assert len(cache) == 3
    assert cache.lookup(1) != 1  # the least recently used went
    assert [cache.lookup(key) for key in (0, 2, 3)] == [0, 2, 3]


async def test_ttl_cache_shares_one_fill_and_does_not_cache_failures() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=60, clock=Clock())
    started = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return "done"

    waiters = [asyncio.create_task(cache.get_or_fill("k", slow)) for _ in range(5)]
    await started.wait()
    release.set()
    assert await asyncio.gather(*waiters) == ["done"] * 5
    assert calls == 1

    async def broken() -> str:
        msg = "store down"
        raise AuthUnavailable(msg)

    for _ in range(2):
        with pytest.raises(AuthUnavailable):
            await cache.get_or_fill("bad", broken)
    assert len(cache) == 1  # only "k"


async def test_ttl_cache_forget_during_a_fill_keeps_the_stale_result_out() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=60, clock=Clock())
    release = asyncio.Event()

    async def fill() -> str:
        await release.wait()
        return "verified before the revocation"

    task = asyncio.create_task(cache.get_or_fill("k", fill))
    await asyncio.sleep(0)
    cache.forget("k")  # e.g. the key was revoked meanwhile
    release.set()
    assert await task == "verified before the revocation"
    assert len(cache) == 0


# -- passwords ---------------------------------------------------------------------------


def test_password_hashes_verify_and_malformed_ones_are_refused() -> None:
    stored = hash_password("s3cret", iterations=1000, salt="pepper")
    assert stored.startswith("pbkdf2_sha256$1000$pepper$")
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret!", stored)
    assert verify_password("plain", "plain")
    assert not verify_password("plain", "plainer")
    for bad in ("pbkdf2_sha256$x$salt$abc", "pbkdf2_sha256$1000$salt", "pbkdf2_sha256$0$s$AAAA"):
        with pytest.raises(ValueError, match="password hash") as info:
            parse_hash(bad)
        assert bad not in str(info.value)


# -- the authenticator -------------------------------------------------------------------


async def test_api_keys_as_bearer_or_x_api_key_and_the_outcome_is_cached() -> None:
    keys = DictKeys(dict(KEYS))
    clock = Clock()
    auth = make_auth(keys=keys, clock=clock)
    assert await auth.authenticate(bearer("lb_reader_key_0001")) == READER
    assert await auth.authenticate({"X-API-Key": "lb_submit_key_0002"}) == SUBMITTER
    raw = [(b"authorization", b"Bearer lb_reader_key_0001")]
    assert await auth.authenticate(raw) == READER
    assert keys.calls == ["lb_reader_key_0001", "lb_submit_key_0002"]
    assert await auth.authenticate(bearer("lb_unknown")) is None
    assert await auth.authenticate(bearer("lb_unknown")) is None
    assert keys.calls.count("lb_unknown") == 1  # refusals are cached too
    clock.now += 31
    assert await auth.authenticate(bearer("lb_reader_key_0001")) == READER
    assert keys.calls.count("lb_reader_key_0001") == 2
    auth.forget_all()
    await auth.authenticate(bearer("lb_reader_key_0001"))
    assert keys.calls.count("lb_reader_key_0001") == 3


async def test_x_api_key_is_tried_when_authorization_yields_nobody() -> None:
    auth = make_auth()
    headers = {"authorization": "Bearer wrong", "x-api-key": "lb_reader_key_0001"}
    assert await auth.authenticate(headers) == READER
    assert await auth.authenticate({}) is None
    assert await auth.authenticate({"authorization": "Token lb_reader_key_0001"}) is None


async def test_the_admin_token_is_the_admin_scope_and_short_ones_are_refused() -> None:
    auth = make_auth()
    identity = await auth.authenticate(bearer(ADMIN_TOKEN))
    assert identity == Identity(name="admin", kind="admin-token", scopes=frozenset({"admin"}))
    assert identity.allows("read")
    assert identity.allows("submit")
    assert await auth.authenticate(bearer(ADMIN_TOKEN[:-1])) is None
    assert await auth.authenticate({"x-api-key": ADMIN_TOKEN}) is None  # keys only there
    for bad in ("short-token", " admin-token-0123456789abcdef"):
        with pytest.raises(ValueError, match="admin_token") as info:
            Authenticator(admin_token=bad)
        assert bad.strip() not in str(info.value)


async def test_basic_users_plain_and_hashed() -> None:
    users = {
        "bench": BasicUser(password="plain-secret", scopes=frozenset({"submit"})),
        "ci": BasicUser(
            password=hash_password("hashed-secret", iterations=2000), scopes=frozenset({"ingest"})
        ),
    }
    auth = make_auth(basic=users)
    assert await auth.authenticate(basic_header("bench", "plain-secret")) == Identity(
        "bench", "basic", frozenset({"submit"})
    )
    assert await auth.authenticate(basic_header("ci", "hashed-secret")) == Identity(
        "ci", "basic", frozenset({"ingest"})
    )
    assert await auth.authenticate(basic_header("ci", "wrong")) is None
    assert await auth.authenticate(basic_header("nobody", "hashed-secret")) is None
    assert await auth.authenticate({"authorization": "Basic not base64!"}) is None
    nocolon = base64.b64encode(b"bench").decode()
    assert await auth.authenticate({"authorization": f"Basic {nocolon}"}) is None
    assert auth.offers_basic
    assert 'Basic realm="leaderboard-api"' in auth.challenge()


def test_basic_users_and_hub_scopes_are_checked_at_start() -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        Authenticator(basic_users={"u": BasicUser("p", frozenset({"write"}))})
    with pytest.raises(ValueError, match="':'"):
        Authenticator(basic_users={"a:b": BasicUser("p", frozenset({"read"}))})
    with pytest.raises(ValueError, match="password hash"):
        Authenticator(basic_users={"u": BasicUser("pbkdf2_sha256$1$", frozenset())})
    with pytest.raises(ValueError, match="hf_auth_scopes"):
        HubSettings(enabled=True, scopes=frozenset({"everything"}))


async def test_authorize_raises_401_and_403_errors() -> None:
    auth = make_auth()
    with pytest.raises(NotAuthenticated) as missing:
        await auth.authorize({}, "read")
    assert not missing.value.invalid
    with pytest.raises(NotAuthenticated) as refused:
        await auth.authorize(bearer("nope"), "read")
    assert refused.value.invalid
    with pytest.raises(MissingScope) as scope:
        await auth.authorize(bearer("lb_reader_key_0001"), "submit")
    assert scope.value.scope == "submit"
    assert await auth.authorize(bearer("lb_submit_key_0002"), "vote") == SUBMITTER


# -- Hugging Face tokens against the stand-in Hub ------------------------------------------


async def test_hub_tokens_are_verified_by_whoami_and_cached(hub: FakeHub) -> None:
    clock = Clock()
    auth = make_auth(hub=hub, clock=clock)
    expected = Identity(name="alice", kind="hf", scopes=frozenset({"submit", "vote"}))
    assert await auth.authenticate(bearer("hf_alice_token_123")) == expected
    assert await auth.authenticate(bearer("hf_alice_token_123")) == expected
    assert hub.seen == ["hf_alice_token_123"]
    clock.now += 60  # past the credential cache, inside the Hub cache (300 s)
    assert await auth.authenticate(bearer("hf_alice_token_123")) == expected
    assert len(hub.seen) == 1
    clock.now += 300
    assert await auth.authenticate(bearer("hf_alice_token_123")) == expected
    assert len(hub.seen) == 2


async def test_refused_and_org_tokens_are_nobody_and_cached(hub: FakeHub) -> None:
    auth = make_auth(hub=hub)
    assert auth.hub is not None
    assert await auth.authenticate(bearer("hf_wrong_token")) is None
    assert await auth.hub.user("hf_wrong_token") is None
    assert await auth.authenticate(bearer("hf_org_token_456")) is None
    assert hub.seen == ["hf_wrong_token", "hf_org_token_456"]


async def test_tokens_that_are_not_hub_tokens_never_leave(hub: FakeHub) -> None:
    auth = make_auth(hub=hub)
    assert await auth.authenticate(bearer("lb_revoked_key")) is None
    assert await auth.authenticate(bearer("hf_")) is None
    assert await auth.authenticate(bearer("hf_has\x7fcontrol")) is None
    assert hub.seen == []


async def test_hub_failures_are_unavailable_and_not_cached(hub: FakeHub) -> None:
    auth = make_auth(hub=hub)
    hub.fail_with = 500
    for _ in range(2):
        with pytest.raises(AuthUnavailable, match="answered 500"):
            await auth.authenticate(bearer("hf_alice_token_123"))
    assert len(hub.seen) == 2
    hub.fail_with = 429
    with pytest.raises(AuthUnavailable, match="answered 429"):
        await auth.authenticate(bearer("hf_alice_token_123"))
    hub.fail_with = None
    assert (await auth.authenticate(bearer("hf_alice_token_123"))) is not None


async def test_an_unreachable_or_slow_hub_is_unavailable(hub: FakeHub) -> None:
    down = make_auth(endpoint=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(AuthUnavailable, match="could not verify"):
        await down.authenticate(bearer("hf_alice_token_123"))
    hub.delay = 1.0
    slow = make_auth(hub=hub, timeout=0.2)
    with pytest.raises(AuthUnavailable, match="did not answer"):
        await slow.authenticate(bearer("hf_alice_token_123"))


async def test_api_keys_and_the_admin_token_do_not_need_the_hub() -> None:
    auth = make_auth(endpoint=f"http://127.0.0.1:{closed_port()}")
    assert await auth.authenticate(bearer("lb_reader_key_0001")) == READER
    assert (await auth.authenticate(bearer(ADMIN_TOKEN))) is not None


# -- require() in a FastAPI app ---------------------------------------------------------

Submitter = Annotated[Identity, Depends(require("submit"))]
Admin = Annotated[Identity, Depends(require("admin"))]
Reader = Annotated[Identity, Depends(require("read"))]


def write_app(auth: Authenticator) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, auth)

    @app.post("/v1/submissions", responses=AUTH_RESPONSES)
    async def submit(identity: Submitter) -> dict[str, str]:
        return {"name": identity.name, "kind": identity.kind}

    @app.post("/admin/reload", responses=AUTH_RESPONSES)
    async def reload(identity: Admin) -> dict[str, str]:
        return {"name": identity.name}

    return app


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(app: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


async def test_require_answers_401_403_and_the_identity(client_for: Any) -> None:
    client = client_for(write_app(make_auth()))
    missing = await client.post("/v1/submissions")
    body = assert_problem(missing, 401)
    assert body["instance"] == "/v1/submissions"
    assert missing.headers["www-authenticate"] == 'Bearer realm="leaderboard-api"'
    assert "X-API-Key" in body["detail"]

    refused = await client.post("/v1/submissions", headers=bearer("lb_nope"))
    assert_problem(refused, 401)
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="leaderboard-api", error="invalid_token"'
    )

    reader = await client.post("/v1/submissions", headers=bearer("lb_reader_key_0001"))
    body = assert_problem(reader, 403)
    assert body["scope"] == "submit"
    assert 'error="insufficient_scope", scope="submit"' in reader.headers["www-authenticate"]

    ok = await client.post("/v1/submissions", headers={"x-api-key": "lb_submit_key_0002"})
    assert ok.status_code == 200
    assert ok.json() == {"name": "submitter", "kind": "key"}
    admin = await client.post("/v1/submissions", headers=bearer(ADMIN_TOKEN))
    assert admin.json() == {"name": "admin", "kind": "admin-token"}
    assert (await client.post("/admin/reload", headers=bearer(ADMIN_TOKEN))).status_code == 200
    assert_problem(await client.post("/admin/reload", headers=bearer("lb_submit_key_0002")), 403)


async def test_require_challenges_basic_when_basic_users_exist(client_for: Any) -> None:
    users = {"bench": BasicUser(password="bench-password", scopes=frozenset({"submit"}))}
    client = client_for(write_app(make_auth(basic=users)))
    missing = await client.post("/v1/submissions")
    assert missing.headers["www-authenticate"] == (
        'Bearer realm="leaderboard-api", Basic realm="leaderboard-api", charset="UTF-8"'
    )
    wrong = await client.post("/v1/submissions", headers=basic_header("bench", "nope"))
    assert "error=" not in wrong.headers["www-authenticate"]  # RFC 6750 errors are Bearer's
    ok = await client.post("/v1/submissions", auth=("bench", "bench-password"))
    assert ok.json() == {"name": "bench", "kind": "basic"}


async def test_require_answers_503_when_the_hub_is_down(client_for: Any) -> None:
    client = client_for(write_app(make_auth(endpoint=f"http://127.0.0.1:{closed_port()}")))
    down = await client.post("/v1/submissions", headers=bearer("hf_alice_token_123"))
    assert_problem(down, 503)
    assert down.headers["retry-after"] == "10"


async def test_hub_users_get_the_configured_scopes(hub: FakeHub, client_for: Any) -> None:
    client = client_for(write_app(make_auth(hub=hub)))
    ok = await client.post("/v1/submissions", headers=bearer("hf_alice_token_123"))
    assert ok.json() == {"name": "alice", "kind": "hf"}
    assert_problem(await client.post("/admin/reload", headers=bearer("hf_alice_token_123")), 403)


def test_require_documents_the_schemes_and_refuses_unknown_scopes() -> None:
    document = write_app(make_auth()).openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key, the admin token, or a Hugging Face token.",
    }
    assert schemes["apiKey"]["in"] == "header"
    assert schemes["apiKey"]["name"] == "X-API-Key"
    assert schemes["basic"]["scheme"] == "basic"
    operation = document["paths"]["/v1/submissions"]["post"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}, {"basic": []}]
    assert PROBLEM_TYPE in operation["responses"]["401"]["content"]
    with pytest.raises(ValueError, match="unknown scope"):
        require("write")


async def test_require_without_install_auth_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/x")
    async def route(identity: Reader) -> str:
        return identity.name

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(RuntimeError, match="install_auth"):
            await client.get("/x")


# -- ReadAuth in front of the fast path --------------------------------------------------


def big_payload(name: str) -> Payload:
    rows = [{"model": f"org/model-{i}", "benchmark": name, "score": 80 - i / 9} for i in range(300)]
    return Payload.build(
        orjson.dumps({"rows": rows}),
        media_type="application/json",
        last_modified=WHEN,
        cache_control=CACHE_CONTROL,
    )


@dataclass
class ReadSide:
    """A fast-path-fronted app like the service's: warm payloads in a dict, cold builds
    stored into it by the framework route (as the payload cache does)."""

    app: ReadAuth
    payloads: dict[tuple[str, bytes], Payload]
    builds: list[str]
    keys: DictKeys


def read_side(*, enabled: bool = True) -> ReadSide:
    payloads: dict[tuple[str, bytes], Payload] = {("/v1/benchmarks", b""): big_payload("all")}
    builds: list[str] = []
    framework = FastAPI()
    install_problem_handlers(framework)

    @framework.get("/v1/benchmarks/{name}/scores")
    async def scores(name: str, request: Request) -> Response:
        builds.append(name)
        payload = big_payload(name)
        payloads[(request.url.path, request.scope["query_string"])] = payload
        return PayloadResponse(payload)

    @framework.get("/health")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    fast = FastPath(framework, lookup=lambda path, query: payloads.get((path, query)))
    keys = DictKeys(dict(KEYS))
    app = ReadAuth(fast, authenticator=make_auth(keys=keys))
    return ReadSide(app=app, payloads=payloads, builds=builds, keys=keys)


def vary_tokens(response: httpx.Response) -> set[str]:
    return {token.strip().lower() for token in response.headers["vary"].split(",")}


async def test_read_auth_refuses_reads_before_the_fast_path(client_for: Any) -> None:
    side = read_side()
    client = client_for(side.app)
    missing = await client.get("/v1/benchmarks")
    body = assert_problem(missing, 401)
    assert "rows" not in body
    assert "etag" not in missing.headers
    assert {"authorization", "x-api-key"} <= vary_tokens(missing)
    assert missing.headers["www-authenticate"] == 'Bearer realm="leaderboard-api"'
    head = await client.head("/v1/benchmarks")
    assert head.status_code == 401
    assert head.content == b""
    submitter = await client.get("/v1/benchmarks", headers=bearer("lb_submit_key_0002"))
    assert_problem(submitter, 403)
    assert_problem(await client.get("/v1", headers=bearer("nope")), 401)
    assert_problem(await client.get("/api/leaderboard"), 401)


async def test_read_auth_makes_answers_private_without_touching_the_payload(
    client_for: Any,
) -> None:
    side = read_side()
    client = client_for(side.app)
    headers = {**bearer("lb_reader_key_0001"), "accept-encoding": "br"}
    ok = await client.get("/v1/benchmarks", headers=headers)
    assert ok.status_code == 200
    assert ok.json()["rows"][0]["benchmark"] == "all"
    assert ok.headers["cache-control"] == "private, max-age=60, stale-while-revalidate=600"
    assert vary_tokens(ok) == {"accept-encoding", "authorization", "x-api-key"}
    assert len(ok.headers.get_list("vary")) == 1
    etag = ok.headers["etag"]
    again = await client.get("/v1/benchmarks", headers={**headers, "if-none-match": etag})
    assert again.status_code == 304
    assert again.headers["cache-control"].startswith("private")
    assert {"authorization", "x-api-key"} <= vary_tokens(again)
    payload = side.payloads[("/v1/benchmarks", b"")]
    for variant in payload.variants.values():
        assert (b"cache-control", CACHE_CONTROL.encode()) in variant.headers
    admin = await client.get("/v1/benchmarks", headers=bearer(ADMIN_TOKEN))
    assert admin.status_code == 200
    assert side.keys.calls.count("lb_reader_key_0001") == 1  # cached per credential


async def test_read_auth_leaks_nothing_built_for_another_caller(client_for: Any) -> None:
    side = read_side()
    client = client_for(side.app)
    path = "/v1/benchmarks/MTEB(eng, v2)/scores"
    reader = bearer("lb_reader_key_0001")
    first = await client.get(path, headers=reader)
    assert first.status_code == 200
    assert side.builds == ["MTEB(eng, v2)"]
    assert first.headers["cache-control"].startswith("private")
    etag = first.headers["etag"]
    assert (path, b"") in side.payloads  # now in the fast path's table
    for headers in ({}, {"if-none-match": etag}, bearer("lb_forged"), {"x-api-key": ""}):
        refused = await client.get(path, headers=headers)
        assert refused.status_code == 401, headers
        assert b"MTEB" not in refused.content.replace(b"MTEB(eng, v2)", b"")
        assert "etag" not in refused.headers
    served = await client.get(path, headers=reader)
    assert served.status_code == 200
    assert served.headers["etag"] == etag
    assert side.builds == ["MTEB(eng, v2)"]  # the second read came from the fast path


async def test_read_auth_keeps_other_paths_and_methods_public(client_for: Any) -> None:
    side = read_side()
    client = client_for(side.app)
    health = await client.get("/health")
    assert health.status_code == 200
    assert "vary" not in health.headers
    assert "private" not in health.headers.get("cache-control", "")
    assert (await client.get("/v1x")).status_code == 404  # not under /v1/
    post = await client.post("/v1/benchmarks")
    assert post.status_code == 404  # passed through: writes are the routes' own business
    assert side.app.protects("/v1/models/BAAI/bge-m3")
    assert not side.app.protects("/docs")
    with pytest.raises(ValueError, match="prefixes"):
        ReadAuth(side.app, authenticator=make_auth(), prefixes=("v1",))


async def test_read_auth_answers_503_while_the_hub_is_down(client_for: Any) -> None:
    keys = DictKeys(dict(KEYS))
    fast = FastPath(FastAPI(), lookup=lambda path, query: big_payload("x"))
    auth = make_auth(keys=keys, endpoint=f"http://127.0.0.1:{closed_port()}")
    client = client_for(ReadAuth(fast, authenticator=auth))
    down = await client.get("/v1/benchmarks", headers=bearer("hf_alice_token_123"))
    assert_problem(down, 503)
    assert (await client.get("/v1/benchmarks", headers=bearer("lb_reader_key_0001"))).is_success


def test_private_cache_control_and_vary_merging() -> None:
    assert private_cache_control(b"public, max-age=60") == b"private, max-age=60"
    assert private_cache_control(b"max-age=60, s-maxage=600, Public") == b"private, max-age=60"
    assert private_cache_control(b"no-store") == b"no-store"
    assert private_cache_control(b"private, max-age=5") == b"private, max-age=5"
    assert private_cache_control(b"") == b"private"
    merged = with_vary([(b"vary", b"accept-encoding, Authorization")])
    assert merged == [(b"vary", b"accept-encoding, Authorization, X-API-Key")]
    assert with_vary([(b"vary", b"*")]) == [(b"vary", b"*")]
    assert with_vary([]) == [(b"vary", b"Authorization, X-API-Key")]


def test_dict_keys_is_a_key_verifier() -> None:
    assert isinstance(DictKeys({}), KeyVerifier)
