"""Tests for leaderboard_api.serving.cache: single flight, errors, LRU bounds, pinning, swaps."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.payload import CompressionPolicy, Payload

WHEN = datetime(2024, 5, 17, tzinfo=UTC)
NO_COMPRESSION = CompressionPolicy(min_size=1 << 30)


class BuildFailedError(Exception):
    """A domain error raised by a build callable in these tests."""


def make_payload(text: str, *, size: int = 0) -> Payload:
    body = text.encode().ljust(size, b".")
    return Payload.build(
        body,
        media_type="text/plain",
        last_modified=WHEN,
        cache_control="no-cache",
        compression=NO_COMPRESSION,
    )


class Builder:
    """A build callable that counts its calls and can be held until released."""

    def __init__(self, text: str = "built", *, size: int = 0, hold: bool = False) -> None:
        self.text = text
        self.size = size
        self.calls = 0
        self.threads: list[int] = []
        self._lock = threading.Lock()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self) -> Payload:
        with self._lock:
            self.calls += 1
            self.threads.append(threading.get_ident())
        assert self.release.wait(10), "test never released the build"
        return make_payload(self.text, size=self.size)


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    msg = "condition never became true"
    raise AssertionError(msg)


async def test_hundred_concurrent_cold_requests_build_once() -> None:
    cache = PayloadCache()
    builder = Builder(hold=True)
    waiters = [asyncio.create_task(cache.get_or_build("k", builder)) for _ in range(100)]
    await wait_until(lambda: builder.calls == 1)
    assert cache.stats.inflight == 1
    builder.release.set()
    results = await asyncio.gather(*waiters)
    assert builder.calls == 1
    assert all(result is results[0] for result in results)
    stats = cache.stats
    assert (stats.misses, stats.coalesced, stats.builds, stats.inflight) == (1, 99, 1, 0)
    assert cache.get_ready("k") is results[0]
    assert (await cache.get_or_build("k", builder)) is results[0]
    assert builder.calls == 1
    assert cache.stats.hits == 2


async def test_build_runs_off_the_event_loop_with_the_callers_context() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-42")
    seen: list[tuple[int, str]] = []

    def build() -> Payload:
        seen.append((threading.get_ident(), request_id.get()))
        return make_payload("x")

    await PayloadCache().get_or_build("k", build)
    assert seen == [(seen[0][0], "req-42")]
    assert seen[0][0] != threading.get_ident()


async def test_builds_use_the_given_executor() -> None:
    names: list[str] = []

    def build() -> Payload:
        names.append(threading.current_thread().name)
        return make_payload("x")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="payload-build") as pool:
        await PayloadCache(executor=pool).get_or_build("k", build)
    assert names[0].startswith("payload-build")


async def test_distinct_keys_build_concurrently() -> None:
    cache = PayloadCache()
    first, second = Builder("a", hold=True), Builder("b", hold=True)
    tasks = [
        asyncio.create_task(cache.get_or_build("a", first)),
        asyncio.create_task(cache.get_or_build("b", second)),
    ]
    await wait_until(lambda: first.calls == 1 and second.calls == 1)
    first.release.set()
    second.release.set()
    a, b = await asyncio.gather(*tasks)
    assert (a.identity, b.identity) == (b"a", b"b")


async def test_an_error_reaches_every_waiter_and_is_not_cached() -> None:
    cache = PayloadCache()
    release = threading.Event()
    calls = 0

    def failing() -> Payload:
        nonlocal calls
        calls += 1
        release.wait(10)
        msg = "no such benchmark"
        raise BuildFailedError(msg)

    waiters = [asyncio.create_task(cache.get_or_build("k", failing)) for _ in range(10)]
    await wait_until(lambda: calls == 1)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(result, BuildFailedError) for result in results)
    assert cache.get_ready("k") is None
    assert cache.stats.build_errors == 1
    assert cache.stats.inflight == 0

    payload = await cache.get_or_build("k", Builder("recovered"))
    assert payload.identity == b"recovered"
    assert cache.get_ready("k") is payload


async def test_a_cancelled_waiter_does_not_cancel_the_build() -> None:
    cache = PayloadCache()
    builder = Builder(hold=True)
    leaver = asyncio.create_task(cache.get_or_build("k", builder))
    stayer = asyncio.create_task(cache.get_or_build("k", builder))
    await wait_until(lambda: builder.calls == 1)
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    builder.release.set()
    assert (await stayer).identity == b"built"
    assert cache.get_ready("k") is not None


async def test_lru_is_bounded_in_entries_under_thousands_of_keys() -> None:
    cache = PayloadCache(max_entries=100)
    for i in range(3000):
        cache.put(("snap", "/v1/models", f"q={i}"), make_payload(str(i)))
        assert cache.stats.lru_entries <= 100
    stats = cache.stats
    assert stats.lru_entries == 100
    assert stats.evictions == 2900
    assert cache.get_ready(("snap", "/v1/models", "q=2999")) is not None
    assert cache.get_ready(("snap", "/v1/models", "q=2899")) is None


async def test_lru_is_bounded_in_bytes_and_tracks_them_exactly() -> None:
    cache = PayloadCache(max_entries=10_000, max_bytes=50_000)
    kept: dict[Hashable, Payload] = {}
    for i in range(2000):
        payload = make_payload(str(i), size=100 + (i * 37) % 900)
        cache.put(i, payload)
        kept[i] = payload
        assert cache.stats.lru_bytes <= 50_000
    stats = cache.stats
    live = [key for key in kept if key in cache]
    assert stats.lru_bytes == sum(kept[key].nbytes for key in live)
    assert stats.lru_entries == len(live)
    assert stats.lru_bytes > 50_000 - 1000  # it fills up before evicting


async def test_get_ready_refreshes_recency() -> None:
    cache = PayloadCache(max_entries=3)
    for key in "abc":
        cache.put(key, make_payload(key))
    assert cache.get_ready("a") is not None
    cache.put("d", make_payload("d"))
    assert "a" in cache
    assert "b" not in cache


async def test_built_entries_go_through_the_same_bounds() -> None:
    cache = PayloadCache(max_entries=5)
    for i in range(50):
        await cache.get_or_build(i, Builder(str(i)))
    assert cache.stats.lru_entries == 5
    assert sorted(key for key in range(50) if key in cache) == [45, 46, 47, 48, 49]


async def test_pinned_entries_are_never_evicted() -> None:
    cache = PayloadCache(max_entries=10, max_bytes=20_000)
    pinned = {}
    for i in range(50):
        pinned[("snap", f"/v1/benchmarks/{i}")] = await cache.get_or_build(
            ("snap", f"/v1/benchmarks/{i}"), Builder(str(i), size=2000), pin=True
        )
    for i in range(3000):
        cache.put(("snap", "/v1/models", i), make_payload(str(i), size=1000))
    stats = cache.stats
    assert stats.pinned_entries == 50
    assert stats.pinned_bytes == sum(payload.nbytes for payload in pinned.values())
    assert stats.lru_entries <= 10
    for key, payload in pinned.items():
        assert cache.get_ready(key) is payload


async def test_pinning_a_key_moves_it_out_of_the_lru() -> None:
    cache = PayloadCache()
    cache.put("k", make_payload("old"))
    cache.put("k", make_payload("new"), pin=True)
    stats = cache.stats
    assert (stats.pinned_entries, stats.lru_entries, stats.lru_bytes) == (1, 0, 0)
    cache.put("k", make_payload("ignored"))
    ready = cache.get_ready("k")
    assert ready is not None
    assert ready.identity == b"new"


async def test_oversize_payload_is_returned_but_not_kept() -> None:
    events: list[tuple[str, str]] = []
    cache = PayloadCache(
        max_bytes=1000, on_event=lambda layer, result: events.append((layer, result))
    )
    cache.put("small", make_payload("s"))
    payload = await cache.get_or_build("big", Builder(size=5000))
    assert len(payload.identity) == 5000
    assert "big" not in cache
    assert "small" in cache
    assert ("lru", "oversize") in events


async def test_retain_and_clear_after_a_dataset_swap() -> None:
    cache = PayloadCache()
    cache.put(("old", "/a"), make_payload("a"), pin=True)
    cache.put(("old", "/b?x=1"), make_payload("b"))
    cache.put(("new", "/a"), make_payload("a2"), pin=True)
    assert cache.retain(lambda key: isinstance(key, tuple) and key[0] == "new") == 2
    assert len(cache) == 1
    assert cache.stats.lru_bytes == 0
    cache.clear()
    assert len(cache) == 0
    assert (cache.stats.pinned_bytes, cache.stats.lru_bytes) == (0, 0)


async def test_a_build_finishing_after_a_swap_is_delivered_but_not_stored() -> None:
    cache = PayloadCache()
    stale, fresh = Builder("stale", hold=True), Builder("fresh", hold=True)
    stale_task = asyncio.create_task(cache.get_or_build(("old", "/a"), stale))
    fresh_task = asyncio.create_task(cache.get_or_build(("new", "/a"), fresh))
    await wait_until(lambda: stale.calls == 1 and fresh.calls == 1)
    cache.retain(lambda key: isinstance(key, tuple) and key[0] == "new")
    stale.release.set()
    fresh.release.set()
    assert (await stale_task).identity == b"stale"
    assert (await fresh_task).identity == b"fresh"
    assert ("old", "/a") not in cache
    assert ("new", "/a") in cache


async def test_hooks_report_events_and_build_durations() -> None:
    events: list[tuple[str, str]] = []
    durations: list[tuple[str, float]] = []
    cache = PayloadCache(
        max_entries=1,
        on_event=lambda layer, result: events.append((layer, result)),
        on_build=lambda layer, seconds: durations.append((layer, seconds)),
    )

    def slow() -> Payload:
        time.sleep(0.02)
        return make_payload("slow")

    await cache.get_or_build("p", slow, pin=True)
    await cache.get_or_build("p", slow, pin=True)
    await asyncio.gather(cache.get_or_build("a", Builder()), cache.get_or_build("a", Builder()))
    await cache.get_or_build("b", Builder())

    def broken() -> Payload:
        raise BuildFailedError

    with pytest.raises(BuildFailedError):
        await cache.get_or_build("c", broken)
    assert events == [
        ("pinned", "miss"),
        ("pinned", "hit"),
        ("lru", "miss"),
        ("lru", "coalesced"),
        ("lru", "miss"),
        ("lru", "evicted"),
        ("lru", "miss"),
        ("lru", "error"),
    ]
    assert [layer for layer, _ in durations] == ["pinned", "lru", "lru"]
    assert durations[0][1] >= 0.02


def test_bounds_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_entries=-1"):
        PayloadCache(max_entries=-1)


def test_a_payload_pinned_under_aliases_is_counted_once() -> None:
    from datetime import UTC, datetime

    from leaderboard_api.serving.cache import PayloadCache
    from leaderboard_api.serving.payload import Payload

    cache = PayloadCache()
    payload = Payload.build(
        b"x" * 4096,
        media_type="application/json",
        last_modified=datetime(2024, 1, 1, tzinfo=UTC),
        cache_control="public",
    )
    for key in ("route", "/alias", "/other-alias"):
        cache.put(key, payload, pin=True)
    assert cache.stats.pinned_entries == 3
    assert cache.stats.pinned_bytes == payload.nbytes
    cache.retain(lambda key: key == "/alias")
    assert cache.stats.pinned_bytes == payload.nbytes
    cache.clear()
    assert cache.stats.pinned_bytes == 0
