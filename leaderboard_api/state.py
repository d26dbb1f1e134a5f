"""What one app instance holds while it runs: the snapshot being served, its routes and views.

Routes import this module (and nothing above them): the state, the dependency that hands
it to a handler, and the lookups the fast path makes.  Loading, warming and swapping live
in ``lifecycle.py``, which sits above the routes and installs what it builds here.

Routing
    A :class:`Routing` is what the fast path reads for one snapshot: ``routes`` maps a
    raw ``(path, query)`` to a payload held in memory (lists, leaderboards and the other
    benchmark pages); ``keys`` maps a raw ``(path, query)`` to a content key whose payload
    sits in the cache's bounded LRU (parameterized and long-tail pages); ``manifest``
    maps the path of every unparameterized route to its content key, for the routes read
    from the on-disk store on demand.  A swap replaces the whole object in one assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource
from leaderboard_api.fingerprints import Fingerprints
from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.payload import Payload
from leaderboard_api.serving.store import PayloadStore
from leaderboard_api.settings import Settings

if TYPE_CHECKING:
    from leaderboard_api.observability.metrics import Metrics
    from leaderboard_api.observability.tracing import TracingHandle
    from leaderboard_api.operational.repository import StateStore
    from leaderboard_api.resources import Views

RawKey = tuple[str, bytes]


class NotReady(Exception):
    """No snapshot is loaded yet (the HTTP layer answers 503 with Retry-After)."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one load-and-warm did."""

    result: str  # "unchanged" | "swapped" | "error"
    snapshot: str | None
    previous: str | None
    seconds: float
    error: str | None = None
    #: Payloads of the new snapshot reused (same fingerprint), and built before the swap.
    reused: int = 0
    built: int = 0


class BoundedKeys(OrderedDict[RawKey, str]):
    """Raw request -> content key, the oldest dropped beyond ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = max(limit, 1)

    def remember(self, raw: RawKey, key: str) -> None:
        self[raw] = key
        self.move_to_end(raw)
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass(slots=True)
class Routing:
    """The fast path's tables for one snapshot (see the module docstring)."""

    routes: dict[RawKey, Payload] = field(default_factory=dict)
    keys: BoundedKeys = field(default_factory=lambda: BoundedKeys(4096))
    manifest: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Loaded:
    """A snapshot, the per-snapshot memo of scoring results built from it, and what every
    page of it reads (its fingerprints)."""

    snapshot: Snapshot
    views: Views
    fingerprints: Fingerprints
    #: The generation of the load that built it (background work of an older one stops).
    generation: int = 0


@dataclass(slots=True)
class AppState:
    """Everything one app instance owns; created by ``create_app``, never at import."""

    settings: Settings
    cache: PayloadCache
    #: Built payloads on disk by content key (None without a cache directory).
    store: PayloadStore | None = None
    #: Submissions, votes, API keys and the audit log (None: the write side is off).
    ops: StateStore | None = None
    loaded: Loaded | None = None
    routing: Routing = field(default_factory=Routing)
    ready: bool = False
    load_seconds: float | None = None
    warmup_seconds: float | None = None
    warmed: int = 0
    #: True once every unparameterized route of the current snapshot is servable.
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
    metrics: Metrics | None = None
    tracing: TracingHandle | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Set by the lifecycle: check the source now and swap when it changed.
    reload: Callable[[], Awaitable[ReloadOutcome]] | None = None
    #: Set once a snapshot is loaded (handlers of a preloaded app wait for it).
    loaded_event: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when /ready flips (every list and leaderboard servable).
    ready_event: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when every unparameterized route of the current snapshot is servable.
    warm_event: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when the first load failed for good.
    failed_event: asyncio.Event = field(default_factory=asyncio.Event)
    #: The background warmup of the current snapshot (cancelled by a newer load).
    background: asyncio.Task[Any] | None = None
    generation: int = 0
    #: Counts a fast-path answer from ``routing.routes`` as a pinned cache hit (metrics).
    count_hit: Callable[[], None] | None = None
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
        routing = self.routing
        raw = (path, query)
        payload = routing.routes.get(raw)
        if payload is not None:
            if self.count_hit is not None:
                self.count_hit()
            return payload
        key = routing.keys.get(raw)
        if key is None:
            return None
        return self.cache.get_ready(key)

    def stored_key(self, path: str, query: bytes) -> str | None:
        """The content key of an unparameterized route kept in the on-disk store."""
        if query or self.store is None:
            return None
        return self.routing.manifest.get(path)

    async def load_stored(self, key: str, path: str, query: bytes) -> Payload | None:
        """The stored payload under ``key``, read off the event loop into the LRU and
        aliased for the fast path; None when the store does not hold it (yet)."""
        payload = self.cache.get_ready(key)
        if payload is None and self.store is not None:
            payload = await asyncio.to_thread(self.store.get, key)
            if payload is not None:
                self.cache.put(key, payload)
        if payload is not None:
            self.routing.keys.remember((path, query), key)
        return payload

    def mark_ready(self) -> None:
        self.ready = True
        self.ready_event.set()

    def mark_warm(self, done: bool) -> None:
        self.warm_done = done
        if done:
            self.warm_event.set()
        else:
            self.warm_event.clear()

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
        """A tracing span around a block, or nothing when tracing is off."""
        if self.tracing is None:
            return contextlib.nullcontext()
        return self.tracing.span(name, **attributes)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def built_routes(self) -> Mapping[str, Payload]:
        """Every unparameterized route's payload by URL path, memory and store together
        (for the static export and tests)."""
        out: dict[str, Payload] = {}
        for (path, query), payload in self.routing.routes.items():
            if not query:
                out[path] = payload
        for path, key in self.routing.manifest.items():
            if path in out:
                continue
            found = self.cache.get_ready(key)
            if found is None and self.store is not None:
                found = self.store.get(key)
            if found is not None:
                out[path] = found
        return out


def get_state(request: Request) -> AppState:
    """The app's state (the dependency every handler takes)."""
    state: AppState = request.app.state.lb
    return state


async def get_loaded(request: Request) -> Loaded:
    """The snapshot being served; waits a little for the first load of a preloaded app,
    then NotReady (503 with Retry-After)."""
    state = get_state(request)
    loaded = state.loaded
    if loaded is not None:
        return loaded
    if state.routing.routes or state.routing.manifest:
        # Preloaded from the store: unparameterized routes already answer, the others
        # wait for the snapshot (seconds) rather than fail.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.loaded_event.wait(), timeout=10.0)
        if state.loaded is not None:
            return state.loaded
    raise NotReady


State = Annotated[AppState, Depends(get_state)]
Current = Annotated[Loaded, Depends(get_loaded)]
