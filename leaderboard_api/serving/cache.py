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

Scheduling
    With a :class:`~leaderboard_api.serving.scheduler.BuildScheduler` every build goes
    through it: ``get_or_build(..., background=True)`` (warmup, reload) queues behind
    builds a client waits for, and both are paced while the server is under load.  A
    client asking for a key whose background build is still queued promotes it.  A cold
    on-demand request beyond the scheduler's queue bounds raises
    :class:`~leaderboard_api.serving.scheduler.Overloaded` (nothing is queued, event
    ``"rejected"``).  A queued background build is dropped when its last waiter is
    cancelled (a superseded warmup task), and by :meth:`PayloadCache.retain` for the keys
    it drops or :meth:`PayloadCache.cancel_background`; remaining waiters get
    :class:`~leaderboard_api.serving.scheduler.BuildCancelled` (event ``"cancelled"``).
    An on-demand build keeps running when its clients leave, as without a scheduler.
    Without a scheduler, builds start at once and ``background`` changes nothing.

Concurrency model
    Use one cache from one event loop; only the build callables run elsewhere.  Nothing
    here locks: dict operations between awaits are atomic with respect to the loop.

Hooks
    ``on_event(layer, result)`` is called with layer ``"pinned"`` or ``"lru"`` and result
    ``"hit"``, ``"miss"``, ``"coalesced"``, ``"error"``, ``"evicted"``, ``"oversize"``,
    ``"rejected"`` or ``"cancelled"``; ``on_build(layer, seconds)`` after each successful
    build (the time it ran, not the time it waited).  Metrics attach there.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

from leaderboard_api.serving.payload import Payload
from leaderboard_api.serving.scheduler import BuildCancelled, BuildScheduler, Overloaded, Ticket

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
    rejected: int = 0
    cancelled: int = 0


@dataclass(slots=True)
class _Flight:
    """A build in flight: its task, its scheduler ticket (if any) and how many await it."""

    task: asyncio.Task[Payload]
    ticket: Ticket[Payload] | None
    waiters: int = 0


def _outcome_seen(task: asyncio.Task[Payload]) -> None:
    if not task.cancelled():
        task.exception()  # marks it retrieved: asyncio would log it as never retrieved


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
        Where build callables run without a scheduler; None means the event loop's
        default executor.
    scheduler
        Every build goes through it (priorities, bounded concurrency, pacing); None
        starts each build at once.
    on_event, on_build
        Optional observability hooks (see the module docstring).
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        max_bytes: int = 256 * 1024 * 1024,
        executor: Executor | None = None,
        scheduler: BuildScheduler | None = None,
        on_event: EventHook | None = None,
        on_build: BuildHook | None = None,
    ) -> None:
        if max_entries < 0 or max_bytes < 0:
            msg = f"cache bounds must be >= 0, got max_entries={max_entries}, max_bytes={max_bytes}"
            raise ValueError(msg)
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._executor = executor
        self._scheduler = scheduler
        self._on_event = on_event
        self._on_build = on_build
        self._pinned: dict[Hashable, Payload] = {}
        self._pinned_bytes = 0
        #: id(payload) -> how many pinned keys hold it (bytes are counted once).
        self._pinned_refs: dict[int, int] = {}
        self._lru: OrderedDict[Hashable, Payload] = OrderedDict()
        self._lru_bytes = 0
        self._inflight: dict[Hashable, _Flight] = {}
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
        self._rejected = 0
        self._cancelled = 0

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
        self,
        key: Hashable,
        build: Callable[[], Payload],
        *,
        pin: bool = False,
        background: bool = False,
        memo: bool = True,
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
        background
            No client waits for this build (warmup, reload): with a scheduler it queues
            behind on-demand builds and may be cancelled while queued.
        memo
            Keep the built payload in memory at all (False: the caller keeps it elsewhere,
            such as the on-disk store a warmup fills).

        Raises
        ------
        Overloaded
            A cold on-demand key while the scheduler's queue is full.
        BuildCancelled
            A background build cancelled before it started.
        Exception
            Whatever ``build`` raised, to every request waiting on that build.
        """
        payload = self.get_ready(key)
        if payload is not None:
            return payload
        layer = "pinned" if pin else "lru"
        flight = self._inflight.get(key)
        if flight is None:
            ticket = self._submit(key, build, layer=layer, background=background)
            self._misses += 1
            self._emit(layer, "miss")
            task = asyncio.get_running_loop().create_task(
                self._build(key, build, pin=pin, ticket=ticket, memo=memo)
            )
            flight = self._inflight[key] = _Flight(task, ticket)
        else:
            self._coalesced += 1
            self._emit(layer, "coalesced")
            if not background and flight.ticket is not None:
                flight.ticket.promote()  # a client waits now: it leaves the background lane
        flight.waiters += 1
        try:
            # shield: a cancelled waiter must not cancel a build others are waiting on.
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Nobody waits any more: a queued background build is dropped, and whatever
                # the build ends with has no one to reach (errors are counted all the same).
                if flight.ticket is not None and flight.ticket.background:
                    flight.ticket.cancel()
                flight.task.add_done_callback(_outcome_seen)

    def _submit(
        self, key: Hashable, build: Callable[[], Payload], *, layer: str, background: bool
    ) -> Ticket[Payload] | None:
        """Hand a new build to the scheduler (None without one)."""
        if self._scheduler is None:
            return None
        # The caller's context variables (tracing spans) travel with the build.
        run = partial(contextvars.copy_context().run, build)
        try:
            return self._scheduler.submit(run, background=background, tag=key)
        except Overloaded:
            self._rejected += 1
            self._emit(layer, "rejected")
            raise

    async def _build(
        self,
        key: Hashable,
        build: Callable[[], Payload],
        *,
        pin: bool,
        ticket: Ticket[Payload] | None,
        memo: bool = True,
    ) -> Payload:
        layer = "pinned" if pin else "lru"
        generation = self._generation
        started = time.perf_counter()
        try:
            if ticket is None:
                context = contextvars.copy_context()
                loop = asyncio.get_running_loop()
                payload = await loop.run_in_executor(self._executor, context.run, build)
                seconds = time.perf_counter() - started
            else:
                payload = await ticket
                seconds = ticket.seconds if ticket.seconds is not None else 0.0
        except BuildCancelled:
            self._cancelled += 1
            self._emit(layer, "cancelled")
            raise
        except Exception:
            self._build_errors += 1
            self._emit(layer, "error")
            raise
        finally:
            flight = self._inflight.get(key)
            if flight is not None and flight.task is asyncio.current_task():
                del self._inflight[key]
        self._builds += 1
        if self._on_build is not None:
            self._on_build(layer, seconds)
        if memo and (generation == self._generation or self._keep(key)):
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

        Builds already running store their result only if ``keep`` accepts its key;
        queued background builds of keys it rejects are cancelled.  Typical use after a
        dataset swap: ``cache.retain(lambda key: key[0] == new_id)``.
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
        self.cancel_background(lambda key: not keep(key))
        return dropped

    def cancel_background(self, drop: Callable[[Hashable], bool]) -> int:
        """Cancel the queued background builds of the keys ``drop`` accepts.

        For a reload that supersedes a warmup still under way, when its waiters are not
        cancelled themselves (cancelling the last waiter of a queued background build
        drops it anyway).  Their waiters get :class:`BuildCancelled`; builds already
        running finish.  Returns how many queued builds were cancelled.
        """
        return sum(
            1
            for key, flight in list(self._inflight.items())
            if flight.ticket is not None and drop(key) and flight.ticket.cancel()
        )

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

    def building(self, key: Hashable) -> bool:
        """Whether a build of ``key`` is in flight (a request for it would wait, not build)."""
        return key in self._inflight

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
            rejected=self._rejected,
            cancelled=self._cancelled,
        )

    def _emit(self, layer: str, result: str) -> None:
        if self._on_event is not None:
            self._on_event(layer, result)
