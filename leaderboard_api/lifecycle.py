"""The service's state across its life: loading, warmup, readiness, and swapping snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.loader import load_snapshot
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource, resolve
from leaderboard_api.scoring.errors import ScoringError
from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.payload import Payload
from leaderboard_api.settings import Settings

log = logging.getLogger(__name__)


class NotReady(Exception):
    """No snapshot is loaded yet (the HTTP layer answers 503 with Retry-After)."""


@dataclass(slots=True)
class Loaded:
    """A snapshot and the per-snapshot memo of scoring results built from it."""

    snapshot: Snapshot
    views: Any  # leaderboard_api.views.Views; typed loosely to keep this module leaf-level


@dataclass(slots=True)
class AppState:
    """Everything one app instance owns; created by ``create_app``, never at import."""

    settings: Settings
    cache: PayloadCache
    loaded: Loaded | None = None
    ready: bool = False
    load_seconds: float | None = None
    warmup_seconds: float | None = None
    warmed: int = 0
    #: True once every unparameterized route of the current snapshot is built.
    warm_done: bool = False
    last_error: str | None = None
    #: The error of the last failed reload check, without its time: the same failure
    #: again is logged at INFO, so a dataset that stays broken logs one ERROR, not one
    #: per watch interval.
    last_failure: str | None = None
    last_check: datetime | None = None
    source: ResolvedSource | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    hooks: list[Callable[[Loaded], None]] = field(default_factory=list)
    #: Called when the first load fails (the server then exits non-zero).
    on_fatal: list[Callable[[Exception], None]] = field(default_factory=list)
    #: Payloads of the web page and other static files, by path (not tied to a snapshot).
    static: dict[str, Payload] = field(default_factory=dict)
    #: ``observability.Metrics`` when metrics are on (typed loosely: a leaf module).
    metrics: Any = None
    #: ``observability.TracingHandle`` when tracing is on.
    tracing: Any = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Icon fetches in flight, by benchmark name (single flight for /v1/icon).
    icon_fetches: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    @property
    def snapshot(self) -> Snapshot:
        if self.loaded is None:
            raise NotReady
        return self.loaded.snapshot

    def lookup(self, path: str, query: bytes) -> Payload | None:
        """The fast path's lookup: a built payload for this raw path and query, if any."""
        # Static files ignore the query string (cache busters, tracking parameters).
        page = self.static.get(path)
        if page is not None:
            return page
        loaded = self.loaded
        if loaded is None:
            return None
        return self.cache.get_ready((loaded.snapshot.id, path, query))

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        """A tracing span around a block, or nothing when tracing is off."""
        if self.tracing is None:
            return contextlib.nullcontext()
        span: contextlib.AbstractContextManager[Any] = self.tracing.span(name, **attributes)
        return span

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def resolve_source(settings: Settings) -> ResolvedSource:
    return resolve(settings.data, hf_cache_dir=settings.hf_cache_dir)


def load(settings: Settings, source: ResolvedSource | None = None) -> Snapshot:
    """Blocking: resolve and load one snapshot (from the disk cache when possible)."""
    source = source if source is not None else resolve_source(settings)
    return load_snapshot(source, cache_dir=settings.cache_dir)


def install(state: AppState, snapshot: Snapshot, views: Any) -> None:
    """Swap in a new snapshot in one assignment, then drop payloads of older ones."""
    state.loaded = Loaded(snapshot=snapshot, views=views)
    keep_id = snapshot.id

    def keep(key: Hashable) -> bool:
        return isinstance(key, tuple) and bool(key) and key[0] == keep_id

    state.cache.retain(keep)
    for hook in state.hooks:
        hook(state.loaded)


async def warm(
    state: AppState,
    items: Iterable[tuple[Hashable, Callable[[], Payload], tuple[Hashable, ...]]],
    *,
    concurrency: int,
) -> int:
    """Build payloads with bounded concurrency, pinned; each may also be pinned under aliases."""
    semaphore = asyncio.Semaphore(concurrency)
    count = 0

    async def one(
        key: Hashable, build: Callable[[], Payload], aliases: tuple[Hashable, ...]
    ) -> None:
        nonlocal count
        async with semaphore:
            try:
                payload = await state.cache.get_or_build(key, build, pin=True)
            except (ScoringError, DatasetError) as exc:
                log.warning("warmup skipped %s: %s", key, exc)
                return
            except Exception:
                # A bug in one route must not keep the rest from warming, but it must be
                # loud: the traceback is logged and the route is built again on request.
                log.exception("warmup failed for %s", key)
                return
            for alias in aliases:
                state.cache.put(alias, payload, pin=True)
            count += 1

    await asyncio.gather(*(one(k, b, a) for k, b, a in items))
    return count
