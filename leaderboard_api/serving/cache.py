"""Single-flight payload cache: a pinned layer for preloaded routes and a bounded LRU for the rest.

Keys are any hashable value; the app uses ``(snapshot id, route, normalized params)`` so a
dataset swap never serves old bytes, and :meth:`PayloadCache.retain` frees the old ones.

Layers
    *pinned* holds the finite set of unparameterized payloads preloaded at warmup
    (``pin=True``); it is unbounded and never evicts.  *lru* holds everything else and
    is bounded by entry count and by bytes (all codings of a payload count); the least
    recently used entries go first.  A payload larger than the whole byte bound is handed
    to its waiters but not kept.

Single flight
    The first request for a cold key starts one build task; every request for that key
    while it runs awaits the same task ("coalesced").  The build callable runs in a
    worker thread (the given executor, else the loop's default) with the caller's
    context variables, so tracing spans nest.  A waiter that is cancelled (client gone)
    does not cancel the build.  An exception reaches every waiter and nothing is stored:
    the next request tries again.

Concurrency model
    Use one cache from one event loop; only the build callables run elsewhere.  Nothing
    here locks: dict operations between awaits are atomic with respect to the loop.

Hooks
    ``on_event(layer, result)`` is called with layer ``"pinned"`` or ``"lru"`` and result
    ``"hit"``, ``"miss"``, ``"coalesced"``, ``"error"``, ``"evicted"`` or ``"oversize"``;
    ``on_build(layer, seconds)`` after each successful build.  Metrics attach there.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass

from leaderboard_api.serving.payload import Payload

__all__ = ["BuildHook", "CacheStats", "EventHook", "PayloadCache"]

#: ``on_event(layer, result)``.
EventHook = Callable[[str, str], None]
#: ``on_build(layer, seconds)``.
BuildHook = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was created, and current sizes per layer."""

    hits: int
    misses: int
    coalesced: int
    builds: int
    build_errors: int
    evictions: int
    pinned_entries: int
    pinned_bytes: int
    lru_entries: int
    lru_bytes: int
    inflight: int


def _keep_everything(key: Hashable) -> bool:
    return True


def _keep_nothing(key: Hashable) -> bool:
    return False


class PayloadCache:
    """Payloads by key, built at most once at a time per key, off the event loop.

    Parameters
    ----------
    max_entries, max_bytes
        Bounds of the LRU layer; the pinned layer is not bounded.
    executor
        Where build callables run; None means the event loop's default executor.
    on_event, on_build
        Optional observability hooks (see the module docstring).
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        max_bytes: int = 256 * 1024 * 1024,
        executor: Executor | None = None,
        on_event: EventHook | None = None,
        on_build: BuildHook | None = None,
    ) -> None:
        if max_entries < 0 or max_bytes < 0:
            msg = f"cache bounds must be >= 0, got max_entries={max_entries}, max_bytes={max_bytes}"
            raise ValueError(msg)
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._executor = executor
        self._on_event = on_event
        self._on_build = on_build
        self._pinned: dict[Hashable, Payload] = {}
        self._pinned_bytes = 0
        #: id(payload) -> how many pinned keys hold it (bytes are counted once).
        self._pinned_refs: dict[int, int] = {}
        self._lru: OrderedDict[Hashable, Payload] = OrderedDict()
        self._lru_bytes = 0
        self._inflight: dict[Hashable, asyncio.Task[Payload]] = {}
        # Builds that started before the last retain()/clear() store their result only if
        # the filter of that call keeps their key: a swap must not be undone by a slow build.
        self._generation = 0
        self._keep: Callable[[Hashable], bool] = _keep_everything
        self._hits = 0
        self._misses = 0
        self._coalesced = 0
        self._builds = 0
        self._build_errors = 0
        self._evictions = 0

    def get_ready(self, key: Hashable) -> Payload | None:
        """Return the payload for ``key`` if it is built, without waiting; counts hits only.

        This is the fast path's lookup.  A miss is not counted here because the request
        then goes to :meth:`get_or_build`, which counts it.
        """
        payload = self._pinned.get(key)
        if payload is not None:
            self._hits += 1
            if self._on_event is not None:
                self._on_event("pinned", "hit")
            return payload
        payload = self._lru.get(key)
        if payload is not None:
            self._lru.move_to_end(key)
            self._hits += 1
            if self._on_event is not None:
                self._on_event("lru", "hit")
        return payload

    async def get_or_build(
        self, key: Hashable, build: Callable[[], Payload], *, pin: bool = False
    ) -> Payload:
        """Return the payload for ``key``, building it with ``build`` if it is not cached.

        Parameters
        ----------
        key
            Any hashable value naming the payload.
        build
            A blocking callable returning the payload; it runs in a worker thread and at
            most once at a time per key.
        pin
            Keep the result in the pinned layer (never evicted) instead of the LRU.

        Raises
        ------
        Exception
            Whatever ``build`` raised, to every request waiting on that build.
        """
        payload = self.get_ready(key)
        if payload is not None:
            return payload
        layer = "pinned" if pin else "lru"
        task = self._inflight.get(key)
        if task is None:
            self._misses += 1
            self._emit(layer, "miss")
            task = asyncio.get_running_loop().create_task(self._build(key, build, pin=pin))
            self._inflight[key] = task
        else:
            self._coalesced += 1
            self._emit(layer, "coalesced")
        # shield: a cancelled waiter must not cancel a build others are waiting on.
        return await asyncio.shield(task)

    async def _build(self, key: Hashable, build: Callable[[], Payload], *, pin: bool) -> Payload:
        layer = "pinned" if pin else "lru"
        generation = self._generation
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            payload = await loop.run_in_executor(self._executor, context.run, build)
        except Exception:
            self._build_errors += 1
            self._emit(layer, "error")
            raise
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]
        self._builds += 1
        if self._on_build is not None:
            self._on_build(layer, time.perf_counter() - started)
        if generation == self._generation or self._keep(key):
            self.put(key, payload, pin=pin)
        return payload

    def put(self, key: Hashable, payload: Payload, *, pin: bool = False) -> None:
        """Store ``payload`` under ``key`` (replacing any entry), evicting LRU entries as needed."""
        if pin:
            self._discard_lru(key)
            if key in self._pinned:
                self._unpin(key)
            self._pinned[key] = payload
            # One payload pinned under several keys (a route and its raw-path aliases)
            # occupies memory once, so it is counted once.
            refs = self._pinned_refs.get(id(payload), 0)
            self._pinned_refs[id(payload)] = refs + 1
            if refs == 0:
                self._pinned_bytes += payload.nbytes
            return
        if key in self._pinned:
            return  # already held for good; a second copy would only cost memory
        self._discard_lru(key)
        size = payload.nbytes
        if size > self._max_bytes or self._max_entries == 0:
            self._emit("lru", "oversize")
            return
        self._lru[key] = payload
        self._lru_bytes += size
        while len(self._lru) > self._max_entries or self._lru_bytes > self._max_bytes:
            _, evicted = self._lru.popitem(last=False)
            self._lru_bytes -= evicted.nbytes
            self._evictions += 1
            self._emit("lru", "evicted")

    def _discard_lru(self, key: Hashable) -> None:
        previous = self._lru.pop(key, None)
        if previous is not None:
            self._lru_bytes -= previous.nbytes

    def retain(self, keep: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key ``keep`` rejects, in both layers; return how many.

        Builds already running store their result only if ``keep`` accepts its key.
        Typical use after a dataset swap: ``cache.retain(lambda key: key[0] == new_id)``.
        """
        dropped = 0
        for key in [key for key in self._pinned if not keep(key)]:
            self._unpin(key)
            dropped += 1
        for key in [key for key in self._lru if not keep(key)]:
            self._discard_lru(key)
            dropped += 1
        self._generation += 1
        self._keep = keep
        return dropped

    def _unpin(self, key: Hashable) -> None:
        payload = self._pinned.pop(key)
        refs = self._pinned_refs.pop(id(payload)) - 1
        if refs:
            self._pinned_refs[id(payload)] = refs
        else:
            self._pinned_bytes -= payload.nbytes

    def pinned_keys(self) -> list[Hashable]:
        """Keys of the pinned layer, in insertion order (for export and tests)."""
        return list(self._pinned)

    def clear(self) -> None:
        """Drop everything; builds already running deliver to their waiters but store nothing."""
        self.retain(_keep_nothing)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._pinned or key in self._lru

    def __len__(self) -> int:
        return len(self._pinned) + len(self._lru)

    @property
    def stats(self) -> CacheStats:
        """A consistent copy of the counters and sizes."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            coalesced=self._coalesced,
            builds=self._builds,
            build_errors=self._build_errors,
            evictions=self._evictions,
            pinned_entries=len(self._pinned),
            pinned_bytes=self._pinned_bytes,
            lru_entries=len(self._lru),
            lru_bytes=self._lru_bytes,
            inflight=len(self._inflight),
        )

    def _emit(self, layer: str, result: str) -> None:
        if self._on_event is not None:
            self._on_event(layer, result)
