"""create_app(settings) -> FastAPI: wiring only; all state is created here and in the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from leaderboard_api import __version__
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.lifecycle import AppState, install, load, warm
from leaderboard_api.problems import install_problem_handlers
from leaderboard_api.routes import icon, infra, v1
from leaderboard_api.routes.warmup import warm_plan
from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.fastpath import FastPath
from leaderboard_api.settings import Settings
from leaderboard_api.views import Views

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


def cors_origin_headers(origins: list[str]) -> object:
    allowed = set(origins)
    any_origin = "*" in allowed
    exposed = (b"access-control-expose-headers", b"ETag, Last-Modified, Content-Length")

    def headers(origin: bytes) -> list[tuple[bytes, bytes]]:
        if any_origin:
            return [(b"access-control-allow-origin", b"*"), exposed]
        if origin.decode("latin-1") in allowed:
            return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), exposed]
        return []

    return headers


async def startup(state: AppState) -> None:
    """Load the dataset, build per-snapshot views, preload routes; flip readiness."""
    settings = state.settings
    started = time.perf_counter()
    try:
        snapshot = await asyncio.to_thread(load, settings)
        views = await asyncio.to_thread(Views, snapshot)
    except DatasetError as exc:
        state.last_error = str(exc)
        log.error("dataset rejected: %s", exc)
        for callback in state.on_fatal:
            callback(exc)
        return
    state.load_seconds = time.perf_counter() - started
    # The catalogs are long-lived objects: keep the cyclic GC from walking them again
    # and again (it made the first builds after a load several times slower).
    gc.collect()
    gc.freeze()
    install(state, snapshot, views)
    log.info(
        "loaded snapshot %s from %s: %d rows in %.2fs",
        snapshot.id,
        snapshot.source,
        snapshot.stats.rows,
        state.load_seconds,
    )
    if not settings.warmup:
        state.ready = True
        state.warm_done = True
        return
    first, rest = warm_plan(state, views)
    state.warmed = await warm(state, first, concurrency=settings.warmup_concurrency)
    state.warmup_seconds = time.perf_counter() - started
    state.ready = True
    log.info("ready: %d payloads warm in %.2fs", state.warmed, state.warmup_seconds)
    state.warmed += await warm(state, rest, concurrency=settings.warmup_concurrency)
    state.warm_done = True
    log.info(
        "warmup finished: %d payloads in %.2fs", state.warmed, time.perf_counter() - started
    )


def create_app(settings: Settings | None = None) -> LeaderboardApp:
    """A new app with its own state, cache and routes; nothing is loaded until the lifespan."""
    settings = settings if settings is not None else Settings()
    cache = PayloadCache(max_entries=settings.lru_max_entries, max_bytes=settings.lru_max_bytes)
    state = AppState(settings=settings, cache=cache)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        when = datetime.now(UTC)
        state.static.update(infra.builtin_payloads(when=datetime(2024, 1, 1, tzinfo=UTC)))
        state.static.update(infra.static_payloads(infra.static_dir()))
        log.debug("static payloads prepared at %s", when.isoformat())
        state.spawn(startup(state))
        try:
            yield
        finally:
            for task in list(state.tasks):
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)

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
    app.include_router(infra.router)
    app.include_router(icon.router)
    app.include_router(v1.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD"],
            expose_headers=["ETag", "Last-Modified", "Content-Length"],
            max_age=600,
        )
    origin_headers = cors_origin_headers(settings.cors_origins) if settings.cors_origins else None
    app.outer = FastPath(
        app.framework,
        lookup=state.lookup,
        origin_headers=origin_headers,  # type: ignore[arg-type]
    )
    return app
