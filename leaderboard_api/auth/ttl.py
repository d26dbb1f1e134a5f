"""A small TTL cache with single-flight fills: verified credentials, whoami answers.

:class:`TTLCache` maps a key to a value (``None`` included: a verified *refusal* is a
result worth keeping too) until ``ttl`` seconds after it was stored.  It is bounded
(``max_entries``, least recently used dropped first) so a client sending random
credentials costs lookups, never memory.  Concurrent misses of one key share one fill
(:meth:`TTLCache.get_or_fill`); a fill that raises is not cached and every waiter gets
its exception.  The clock is injected so tests move time instead of sleeping.

Used from one event loop; fills are tasks of that loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()


class TTLCache(Generic[K, V]):
    """Key -> value for ``ttl`` seconds, at most ``max_entries`` of them, fills shared.

    Parameters
    ----------
    ttl
        Seconds a stored value is served; 0 stores nothing (every call fills).
    max_entries
        Most entries kept; past it the least recently used goes.
    clock
        Monotonic seconds (``time.monotonic`` by default; tests pass their own).
    """

    __slots__ = ("_clock", "_entries", "_generation", "_inflight", "max_entries", "ttl")

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            msg = f"ttl must be >= 0 seconds, got {ttl}"
            raise ValueError(msg)
        if max_entries < 1:
            msg = f"max_entries must be >= 1, got {max_entries}"
            raise ValueError(msg)
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._inflight: dict[K, asyncio.Task[V]] = {}
        # Bumped by forget/clear: a fill that started before must not store its result.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: K) -> V | _Missing:
        """The live value for ``key``, or the module's missing marker (expired ones go)."""
        entry = self._entries.get(key)
        if entry is None:
            return _MISSING
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return _MISSING
        self._entries.move_to_end(key)
        return value

    def store(self, key: K, value: V) -> None:
        """Keep ``value`` for ``ttl`` seconds from now."""
        if self.ttl <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get_or_fill(self, key: K, fill: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or the result of ``fill()`` (shared by concurrent callers).

        A waiter cancelled while the fill runs does not cancel the fill: the others, and
        the cache, still get its result.
        """
        found = self.lookup(key)
        if not isinstance(found, _Missing):
            return found
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, fill, self._generation))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _fill(self, key: K, fill: Callable[[], Awaitable[V]], generation: int) -> V:
        try:
            value = await fill()
        finally:
            self._inflight.pop(key, None)
        if generation == self._generation:
            self.store(key, value)
        return value

    def forget(self, key: K) -> None:
        """Drop ``key`` (and keep a fill already running for it from storing)."""
        self._entries.pop(key, None)
        self._generation += 1

    def clear(self) -> None:
        """Drop every entry (fills already running will not store)."""
        self._entries.clear()
        self._generation += 1


def _retrieve(task: asyncio.Task[V]) -> None:
    # Every waiter may have gone (cancelled): read the outcome so asyncio does not log
    # "exception was never retrieved" for a failure someone else already handled.
    if not task.cancelled():
        task.exception()
