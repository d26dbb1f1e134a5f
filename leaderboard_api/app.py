"""create_app(settings) -> FastAPI: wiring only; all state is created here and in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard_api import __version__
from leaderboard_api.auth import (
    Authenticator,
    BasicUser,
    ClientAddress,
    HubSettings,
    RateLimiter,
    ReadAuth,
    default_policies,
    install_auth,
)
from leaderboard_api.auth.scopes import Identity
from leaderboard_api.dataset.contract import CONTRACT_VERSION
from leaderboard_api.lifecycle import reload_now, startup, watch
from leaderboard_api.observability.logs import AccessLogMiddleware
from leaderboard_api.observability.metrics import Metrics, MetricsMiddleware
from leaderboard_api.observability.routes import RouteTemplates
from leaderboard_api.observability.tracing import TracingMiddleware, setup_tracing
from leaderboard_api.payloads import TEMPLATES
from leaderboard_api.problems import install_problem_handlers
from leaderboard_api.routes import admin, icon, infra, openapi_docs, openllm, queue, v1
from leaderboard_api.routes import results as results_routes
from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.fallback import StoreFallback
from leaderboard_api.serving.fastpath import FastPath, OriginHeaders
from leaderboard_api.serving.scheduler import BuildScheduler
from leaderboard_api.serving.store import PayloadStore
from leaderboard_api.settings import Settings
from leaderboard_api.state import AppState

log = logging.getLogger(__name__)


class LeaderboardApp(FastAPI):
    """A FastAPI app whose HTTP requests first meet the fast path (and metrics)."""

    outer: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outer = self.outer
        if outer is not None and scope["type"] == "http":
            await outer(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def cors_origin_headers(origins: list[str]) -> OriginHeaders:
    """The fast path's CORS headers for a request's Origin (``Vary`` is VaryOrigin's job)."""
    allowed = set(origins)
    any_origin = "*" in allowed
    exposed = (b"access-control-expose-headers", b"ETag, Last-Modified, Content-Length")

    def headers(origin: bytes) -> list[tuple[bytes, bytes]]:
        if any_origin:
            return [(b"access-control-allow-origin", b"*"), exposed]
        if origin.decode("latin-1") in allowed:
            return [(b"access-control-allow-origin", origin), exposed]
        return []

    return headers


class VaryOrigin:
    """Add ``Origin`` to ``Vary`` on every response when only some origins are allowed.

    A response then differs by Origin (``Access-Control-Allow-Origin`` or not), also when
    the request had no Origin or a refused one: without ``Vary: Origin`` on those, a
    shared cache could hand a response lacking the CORS header to an allowed origin, or
    one carrying it to another.  With ``*`` every origin gets the same bytes: no Vary.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_varied(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_vary_origin(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_varied)


def with_vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` in their one ``Vary`` field (merged, never duplicated)."""
    out = list(headers)
    for index, (name, value) in enumerate(out):
        if name.lower() == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"origin" not in tokens and b"*" not in tokens:
                out[index] = (name, value + b", Origin")
            return out
    out.append((b"vary", b"Origin"))
    return out


class RequestCount:
    """Counts HTTP requests: the build scheduler's load signal when metrics are off."""

    __slots__ = ("app", "count")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self.app(scope, receive, send)


class StoreKeys:
    """API keys of the operational store as the authenticator's ``KeyVerifier``."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    def verify(self, raw: str) -> Identity | None:
        ops = self._state.ops
        if ops is None:
            return None
        found = ops.keys.verify(raw)
        if found is None:
            return None
        return Identity(name=found.name, kind="key", scopes=frozenset(found.scopes))


def authenticator_for(settings: Settings, state: AppState) -> Authenticator:
    token = settings.admin_token
    return Authenticator(
        StoreKeys(state),
        admin_token=token.get_secret_value() if token is not None else None,
        basic_users={
            name: BasicUser(user.password.get_secret_value(), frozenset(user.scopes))
            for name, user in settings.basic_users.items()
        },
        hub=HubSettings(
            enabled=settings.hf_auth,
            endpoint=settings.hf_auth_endpoint,
            cache_seconds=settings.hf_auth_cache_seconds,
            scopes=frozenset(settings.hf_auth_scopes),
            timeout_seconds=settings.hf_auth_timeout_seconds,
        ),
        cache_seconds=settings.auth_cache_seconds,
    )


def create_app(settings: Settings | None = None) -> LeaderboardApp:
    """A new app with its own state, cache and routes; nothing is loaded until the lifespan."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics() if settings.metrics else None
    counter: RequestCount | None = None

    def pressure() -> int:
        if metrics is not None:
            return metrics.requests_total()
        return counter.count if counter is not None else 0

    scheduler = BuildScheduler(
        max_running=settings.build_concurrency,
        max_waiting=settings.build_queue,
        max_wait=settings.build_max_wait_seconds,
        busy_rate=settings.build_busy_rate,
        busy_share=settings.build_busy_share,
        pressure=pressure,
    )
    cache = PayloadCache(
        max_entries=settings.lru_max_entries,
        max_bytes=settings.lru_max_bytes,
        on_event=metrics.cache_event if metrics is not None else None,
        scheduler=scheduler,
    )
    store = None
    if settings.cache_dir is not None and settings.payload_store_bytes > 0:
        store = PayloadStore(
            settings.cache_dir / "payloads",
            max_bytes=settings.payload_store_bytes,
            namespace=f"c{CONTRACT_VERSION}",
        )
    state = AppState(settings=settings, cache=cache, store=store)
    state.metrics = metrics
    state.tracing = setup_tracing()

    state.reload = lambda: reload_now(state)
    if metrics is not None:
        metrics.watch_cache(lambda: cache.stats)
        state.count_hit = partial(metrics.cache_event, "pinned", "hit")
        state.hooks.append(
            lambda loaded: metrics.set_snapshot(loaded.snapshot.id, loaded.snapshot.stats.rows)
        )

    authenticator = authenticator_for(settings, state)
    limiter = RateLimiter(
        settings.rate_limit_storage.get_secret_value(),
        strategy=settings.rate_limit_strategy,
        policies=default_policies(
            submissions=settings.rate_limit_submissions,
            votes=settings.rate_limit_votes,
            cold_builds=settings.rate_limit_cold_builds,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.state_url()
        if url is not None:
            from leaderboard_api.operational.repository import StateStore

            state.ops = await asyncio.to_thread(StateStore.open, url)
        state.static.update(infra.builtin_payloads())
        state.static.update(infra.static_payloads(infra.static_dir()))
        state.spawn(startup(state))
        every = settings.effective_watch_seconds()
        if every:
            state.spawn(watch(state, every=every))
        try:
            yield
        finally:
            scheduler.close()
            for task in list(state.tasks):
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            await limiter.aclose()
            if state.ops is not None:
                state.ops.close()
            if state.tracing is not None:
                state.tracing.shutdown()

    app = LeaderboardApp(
        title="leaderboard-api",
        version=__version__,
        description="Leaderboards from long-format benchmark results, served as precomputed bytes.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.lb = state
    install_problem_handlers(app)
    install_auth(
        app, authenticator, limiter=limiter, client_address=ClientAddress(settings.trusted_proxies)
    )
    generate = app.openapi

    def documented() -> dict[str, Any]:
        # Built once on first request (FastAPI's own generator caches the raw document).
        if app.openapi_schema is None:
            app.openapi_schema = openapi_docs.document(generate())
        return app.openapi_schema

    app.openapi = documented  # type: ignore[method-assign]
    app.include_router(infra.router)
    app.include_router(admin.router)
    app.include_router(icon.router)
    # Before v1: its /v1/models/{name:path} would take /v1/models/{name}/votes.
    app.include_router(queue.router)
    app.include_router(results_routes.router)
    app.include_router(openllm.router)
    app.include_router(v1.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["ETag", "Last-Modified", "Content-Length"],
            max_age=600,
        )
    origin_headers = cors_origin_headers(settings.cors_origins) if settings.cors_origins else None
    inner: ASGIApp = app.framework
    if store is not None:
        inner = StoreFallback(
            inner, find=state.stored_key, load=state.load_stored, origin_headers=origin_headers
        )
    outer: ASGIApp = FastPath(inner, lookup=state.lookup, origin_headers=origin_headers)
    if settings.read_auth:
        # Before the fast path: a payload answers nobody who may not read it.
        outer = ReadAuth(outer, authenticator=authenticator)
    if settings.cors_origins and "*" not in settings.cors_origins:
        outer = VaryOrigin(outer)
    # Outermost first: metrics see everything (fast path included), then tracing, then
    # the request context / access log, then the fast path, then the framework.
    if settings.access_log:
        # Request ids, X-Request-ID and one line per request (fast path included); off by
        # default because it costs the hot path about a tenth of its throughput.
        outer = AccessLogMiddleware(
            outer,
            snapshot_id=lambda: state.loaded.snapshot.id if state.loaded else None,
            exclude=("/health", "/ready", "/metrics"),
        )
    static_paths = [path for path, _ in infra.static_files(infra.static_dir())]
    static_paths += infra.BUILTIN_PATHS
    templates = RouteTemplates(
        [
            *ROOT_TEMPLATES,
            *TEMPLATES,
            *queue.TEMPLATES,
            *results_routes.TEMPLATES,
            *openllm.TEMPLATES,
            *static_paths,
        ]
    )
    if state.tracing is not None:
        outer = TracingMiddleware(outer, handle=state.tracing, templates=templates)
    if state.metrics is not None:
        outer = MetricsMiddleware(outer, metrics=state.metrics, templates=templates)
    if metrics is None:
        counter = RequestCount(outer)
        outer = counter
    app.outer = outer
    return app


#: Routes outside /v1, as metric and span labels.
ROOT_TEMPLATES = (
    "/health",
    "/ready",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/openapi.json",
    "/admin/reload",
)
