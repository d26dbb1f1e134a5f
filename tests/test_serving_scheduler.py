"""Tests for leaderboard_api.serving.scheduler and its use by PayloadCache.

Builds run in real worker threads on a real event loop.  Pacing is checked by counting:
a fake clock that builds advance by their nominal duration, a fake sleep that records
what the scheduler asked for, and a request counter standing in for the server's load.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial

import orjson
import pytest

from leaderboard_api.serving.cache import PayloadCache
from leaderboard_api.serving.payload import CompressionPolicy, Payload
from leaderboard_api.serving.scheduler import (
    BuildCancelled,
    BuildScheduler,
    Overloaded,
    Ticket,
    overloaded_response,
)

WHEN = datetime(2024, 5, 17, tzinfo=UTC)


def make_payload(text: str) -> Payload:
    return Payload.build(
        text.encode(),
        media_type="text/plain",
        last_modified=WHEN,
        cache_control="no-cache",
        compression=CompressionPolicy(min_size=1 << 30),
    )


class Clock:
    """Monotonic seconds that only move when told to (from any thread)."""

    def __init__(self) -> None:
        self.now = 100.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Sleeper:
    """A sleep that records the delay, moves the fake clock by it and returns at once."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.clock.advance(delay)
        await asyncio.sleep(0)


class Work:
    """Build callables that record their order and concurrency and can be held."""

    def __init__(
        self, clock: Clock | None = None, *, cpu: Clock | None = None, hold: bool = False
    ) -> None:
        self.clock = clock
        self.cpu = cpu
        self.order: list[str] = []
        self.running = 0
        self.most_running = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        if not hold:
            self.release.set()

    def job(
        self, name: str, *, seconds: float = 0.0, cpu: float | None = None
    ) -> Callable[[], str]:
        def build() -> str:
            with self._lock:
                self.order.append(name)
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            try:
                assert self.release.wait(10), "test never released the builds"
                if self.clock is not None:
                    self.clock.advance(seconds)  # the build "takes" this long
                if self.cpu is not None:
                    self.cpu.advance(seconds if cpu is None else cpu)  # of CPU
                return name
            finally:
                with self._lock:
                    self.running -= 1

        return build


def snapshot_of(key: Hashable) -> object:
    return key[0] if isinstance(key, tuple) else None


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    msg = "condition never became true"
    raise AssertionError(msg)


def loaded_scheduler(
    clock: Clock,
    sleeper: Sleeper,
    *,
    rate: float = 1000.0,
    max_running: int = 2,
    busy_share: float = 0.2,
    on_demand_slack: float = 0.25,
    max_wait: float = 30.0,
    typical_build: float = 0.5,
    cpu: Clock | None = None,
) -> BuildScheduler:
    """A scheduler whose server receives ``rate`` requests per (fake) second.

    Builds are charged the CPU time ``cpu`` measures (standing for the process's threads
    other than the loop's: builds advance it); by default none.
    """
    start = clock()

    def pressure() -> int:
        return int((clock() - start) * rate)

    scheduler = BuildScheduler(
        pressure=pressure,
        clock=clock,
        sleep=sleeper,
        other_cpu=cpu if cpu is not None else Clock(),
        max_running=max_running,
        busy_share=busy_share,
        on_demand_slack=on_demand_slack,
        max_wait=max_wait,
        typical_build=typical_build,
        recheck=0.25,
        window=0.25,
    )
    clock.advance(1.0)  # one second of traffic before the first build
    return scheduler


# --- priorities and concurrency -------------------------------------------------------------


async def test_on_demand_builds_run_before_queued_background_builds() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1)
    first = scheduler.submit(work.job("warm-1"), background=True)
    await wait_until(lambda: work.order == ["warm-1"])
    later = [scheduler.submit(work.job(f"warm-{i}"), background=True) for i in (2, 3)]
    cold = [scheduler.submit(work.job(f"cold-{i}")) for i in (1, 2)]
    assert (scheduler.stats.waiting, scheduler.stats.waiting_background) == (2, 2)
    work.release.set()
    results = await asyncio.gather(first, *later, *cold)
    assert results == ["warm-1", "warm-2", "warm-3", "cold-1", "cold-2"]
    assert work.order == ["warm-1", "cold-1", "cold-2", "warm-2", "warm-3"]
    assert scheduler.stats.finished == 5


async def test_at_most_max_running_builds_run_at_once() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=2, max_waiting=100)
    tickets = [scheduler.submit(work.job(str(i))) for i in range(6)]
    await wait_until(lambda: work.running == 2)
    stats = scheduler.stats
    assert (stats.running, stats.waiting, stats.started) == (2, 4, 2)
    assert work.order == ["0", "1"]
    work.release.set()
    assert await asyncio.gather(*tickets) == [str(i) for i in range(6)]
    assert work.most_running == 2
    assert scheduler.stats.running == 0


async def test_builds_run_in_worker_threads_and_errors_reach_the_waiter() -> None:
    threads: list[int] = []

    def build() -> int:
        threads.append(threading.get_ident())
        raise LookupError("no such benchmark")

    scheduler = BuildScheduler()
    with pytest.raises(LookupError, match="no such benchmark"):
        await scheduler.run(build)
    assert threads[0] != threading.get_ident()
    assert await scheduler.run(lambda: 7) == 7


# --- the queue bound ----------------------------------------------------------------------


async def test_on_demand_builds_beyond_the_queue_bound_are_rejected() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1, max_waiting=2)
    running = scheduler.submit(work.job("running"))
    await wait_until(lambda: work.running == 1)
    waiting = [scheduler.submit(work.job(f"waiting-{i}")) for i in range(2)]
    with pytest.raises(Overloaded) as raised:
        scheduler.submit(work.job("one too many"))
    assert raised.value.retry_after >= 1
    # Background builds are bounded by their callers, not here.
    background = [scheduler.submit(work.job(f"bg-{i}"), background=True) for i in range(5)]
    assert scheduler.stats.rejected == 1
    work.release.set()
    await asyncio.gather(running, *waiting, *background)
    assert "one too many" not in work.order
    # Room again once the queue drained.
    assert await scheduler.run(work.job("later")) == "later"


async def test_retry_after_grows_with_the_queue_and_is_bounded() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1, max_waiting=50, max_retry_after=30)
    # No build has finished yet: the estimate assumes 0.5 s per build.
    tickets = [scheduler.submit(work.job("slow"))]
    await wait_until(lambda: work.running == 1)
    short = scheduler.retry_after()
    tickets += [scheduler.submit(work.job(str(i))) for i in range(49)]
    long = scheduler.retry_after()
    assert 1 <= short < long <= 30
    work.release.set()
    await asyncio.gather(*tickets)


async def test_a_cold_build_is_refused_when_its_wait_would_exceed_max_wait() -> None:
    work = Work(hold=True)
    idle = BuildScheduler(max_running=1, max_wait=10, typical_build=2.0)
    tickets = [idle.submit(work.job("running"))]
    await wait_until(lambda: work.running == 1)
    # Idle: each build ahead costs 2 s; a wait of up to 10 s is accepted.
    tickets += [idle.submit(work.job(str(i))) for i in range(5)]
    with pytest.raises(Overloaded) as raised:
        idle.submit(work.job("too late"))
    assert raised.value.retry_after == 12  # 6 builds ahead of it, 2 s each
    # Under load each build ahead also costs its pause: 2 s / 0.2 = 10 s.
    clock = Clock()
    loaded = loaded_scheduler(clock, Sleeper(clock), max_wait=10, typical_build=2.0)
    tickets += [loaded.submit(work.job("loaded-running"))]
    await wait_until(lambda: work.running == 2)
    tickets += [loaded.submit(work.job("loaded-waiting"))]  # nobody waits: never refused
    with pytest.raises(Overloaded) as raised:
        loaded.submit(work.job("loaded-too-late"))
    assert raised.value.retry_after == 20
    work.release.set()
    await asyncio.gather(*tickets)
    assert "too late" not in work.order
    assert "loaded-too-late" not in work.order


def test_the_overloaded_answer_is_a_503_problem_with_retry_after() -> None:
    response = overloaded_response(Overloaded(7), instance="/v1/benchmarks/X/scores")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    body = orjson.loads(bytes(response.body))
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert body["instance"] == "/v1/benchmarks/X/scores"


# --- pacing -------------------------------------------------------------------------------


async def test_idle_server_builds_back_to_back() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    work = Work(clock)
    scheduler = BuildScheduler(pressure=lambda: 0, clock=clock, sleep=sleeper, max_running=1)
    clock.advance(1.0)
    tickets = [scheduler.submit(work.job(str(i), seconds=0.5), background=True) for i in range(4)]
    await asyncio.gather(*tickets)
    assert sleeper.delays == []
    assert scheduler.stats.pauses == 0
    assert scheduler.stats.debt == 0.0


async def test_background_builds_under_load_take_at_most_their_share_of_the_time() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    cpu = Clock()
    work = Work(clock, cpu=cpu)
    scheduler = loaded_scheduler(clock, sleeper, busy_share=0.2, max_running=2, cpu=cpu)
    started_at = clock()
    tickets = [scheduler.submit(work.job(str(i), seconds=0.5), background=True) for i in range(4)]
    await asyncio.gather(*tickets)
    # Each 0.5 s build owes 0.5 - 0.2 * 0.5 = 0.4 s: 0.4 / 0.2 = 2 s without builds, asked
    # for in pieces of at most `recheck` so a change of load is noticed.
    assert sum(sleeper.delays) == pytest.approx(3 * 2.0)
    assert max(sleeper.delays) <= 0.25 + 1e-9
    assert work.most_running == 1  # one at a time under load, although max_running=2
    elapsed = clock() - started_at
    assert 4 * 0.5 / elapsed == pytest.approx(2.0 / 8.0)  # last build's rest not yet due
    stats = scheduler.stats
    assert stats.under_load
    assert stats.pauses == len(sleeper.delays)
    assert stats.paused_seconds == pytest.approx(6.0)


async def test_builds_are_charged_their_cpu_time_not_their_wall_time() -> None:
    clock, cpu = Clock(), Clock()
    sleeper = Sleeper(clock)
    work = Work(clock, cpu=cpu)
    scheduler = loaded_scheduler(clock, sleeper, busy_share=0.2, cpu=cpu)
    # Each build takes 1 s of wall time but only 0.4 s of CPU (it waited for the GIL or
    # for the core): it owes 0.4 s, of which its own 1 s paid back 0.2 s.
    tickets = [
        scheduler.submit(work.job(str(i), seconds=1.0, cpu=0.4), background=True) for i in range(3)
    ]
    await asyncio.gather(*tickets)
    assert sum(sleeper.delays) == pytest.approx(2 * (0.4 - 0.2) / 0.2)
    stats = scheduler.stats
    assert stats.build_seconds == pytest.approx(3.0)
    assert stats.build_cpu_seconds == pytest.approx(1.2)


async def test_a_build_slow_in_wall_time_earns_no_credit_for_the_next_ones() -> None:
    clock, cpu = Clock(), Clock()
    sleeper = Sleeper(clock)
    work = Work(clock, cpu=cpu)
    scheduler = loaded_scheduler(clock, sleeper, busy_share=0.2, cpu=cpu)
    # 10 s of wall time (the process was starved or stopped) for 0.5 s of CPU: its own
    # duration pays back at most one second's share (0.2 s), so 0.3 s are owed.
    first = scheduler.submit(work.job("slow", seconds=10.0, cpu=0.5), background=True)
    second = scheduler.submit(work.job("next", seconds=0.1, cpu=0.1), background=True)
    await asyncio.gather(first, second)
    assert sum(sleeper.delays) == pytest.approx(0.3 / 0.2)


async def test_under_load_the_first_cold_build_starts_at_once_the_next_ones_are_paced() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    cpu = Clock()
    work = Work(clock, cpu=cpu)
    scheduler = loaded_scheduler(clock, sleeper, busy_share=0.2, on_demand_slack=0.25, cpu=cpu)
    tickets = [scheduler.submit(work.job(f"cold-{i}", seconds=0.5)) for i in range(3)]
    await wait_until(lambda: "cold-0" in work.order)
    assert sleeper.delays == []  # the first one did not wait
    await asyncio.gather(*tickets)
    # After the first: debt 0.4 s, of which 0.25 s is allowed: (0.4 - 0.25) / 0.2 = 0.75 s.
    # After the second: debt 0.25 + 0.4, again 0.4 / 0.2 = 2 s.
    assert sum(sleeper.delays) == pytest.approx(0.75 + 2.0)


async def test_pacing_stops_when_the_load_stops() -> None:
    clock = Clock()
    sleeper = Sleeper(clock)
    cpu = Clock()
    work = Work(clock, cpu=cpu)
    start = clock()
    # 1000 requests per second until 0.5 s into the pause after the first build, then none.
    stop = start + 1.0 + 0.5 + 0.5

    def pressure() -> int:
        return int((min(clock(), stop) - start) * 1000)

    scheduler = BuildScheduler(
        pressure=pressure, clock=clock, sleep=sleeper, other_cpu=cpu, busy_share=0.2
    )
    clock.advance(1.0)
    first = scheduler.submit(work.job("a", seconds=0.5), background=True)
    second = scheduler.submit(work.job("b", seconds=0.5), background=True)
    await first
    await wait_until(lambda: len(sleeper.delays) >= 1)
    # The requests stop: the next measurement sees no traffic and the debt is forgiven.
    assert await second == "b"
    # Pauses of 0.25 s: two under load, one more that measures no traffic, then "b" runs
    # instead of waiting the whole 2 s.
    assert sum(sleeper.delays) == pytest.approx(0.75)
    assert scheduler.stats.debt == 0.0
    assert not scheduler.stats.under_load


async def test_a_cold_request_promotes_its_queued_background_build() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1)
    blocker = scheduler.submit(work.job("blocker"), background=True)
    await wait_until(lambda: work.running == 1)
    others = [scheduler.submit(work.job(f"bg-{i}"), background=True) for i in range(3)]
    wanted = scheduler.submit(work.job("wanted"), background=True)
    wanted.promote()
    assert not wanted.background
    assert scheduler.cancel_background() == 3  # a promoted build is no longer background
    work.release.set()
    assert await wanted == "wanted"
    await blocker
    for ticket in others:
        with pytest.raises(BuildCancelled):
            await ticket
    assert work.order == ["blocker", "wanted"]


# --- cancellation -------------------------------------------------------------------------


async def test_queued_background_builds_of_a_superseded_snapshot_are_cancelled() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1)
    running = scheduler.submit(work.job("old-running"), background=True, tag=("old", 0))
    await wait_until(lambda: work.running == 1)
    old: list[Ticket[str]] = [
        scheduler.submit(work.job(f"old-{i}"), background=True, tag=("old", i)) for i in (1, 2)
    ]
    new = scheduler.submit(work.job("new"), background=True, tag=("new", 1))
    cold = scheduler.submit(work.job("cold"), tag=("old", 9))  # on-demand: never cancelled
    assert scheduler.cancel_background(lambda tag: snapshot_of(tag) == "old") == 2
    assert scheduler.stats.cancelled == 2
    work.release.set()
    for ticket in old:
        with pytest.raises(BuildCancelled):
            await ticket
    assert await running == "old-running"  # a started build runs to its end
    assert await new == "new"
    assert await cold == "cold"
    assert work.order == ["old-running", "cold", "new"]


# --- through PayloadCache -----------------------------------------------------------------


async def test_cache_single_flight_through_the_scheduler() -> None:
    calls = 0
    release = threading.Event()

    def build() -> Payload:
        nonlocal calls
        calls += 1
        assert release.wait(10)
        return make_payload("once")

    scheduler = BuildScheduler()
    cache = PayloadCache(scheduler=scheduler)
    waiters = [asyncio.create_task(cache.get_or_build("k", build)) for _ in range(50)]
    await wait_until(lambda: calls == 1)
    release.set()
    results = await asyncio.gather(*waiters)
    assert all(result is results[0] for result in results)
    assert calls == 1
    assert scheduler.stats.started == 1
    assert (cache.stats.misses, cache.stats.coalesced, cache.stats.builds) == (1, 49, 1)
    assert cache.get_ready("k") is results[0]


async def test_cache_errors_reach_every_waiter_and_context_travels() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-7")
    seen: list[str] = []

    def failing() -> Payload:
        seen.append(request_id.get())
        raise LookupError("gone")

    cache = PayloadCache(scheduler=BuildScheduler())
    results = await asyncio.gather(
        *(cache.get_or_build("k", failing) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, LookupError) for result in results)
    assert seen == ["req-7"]
    assert cache.stats.build_errors == 1
    assert cache.get_ready("k") is None
    assert cache.stats.inflight == 0


async def test_cache_rejects_a_cold_key_beyond_the_queue_and_keeps_nothing_in_flight() -> None:
    events: list[tuple[str, str]] = []
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1, max_waiting=1)
    cache = PayloadCache(
        scheduler=scheduler, on_event=lambda layer, result: events.append((layer, result))
    )

    def payload_of(name: str) -> Callable[[], Payload]:
        job = work.job(name)
        return lambda: make_payload(job())

    first = asyncio.create_task(cache.get_or_build("a", payload_of("a")))
    await wait_until(lambda: work.running == 1)
    second = asyncio.create_task(cache.get_or_build("b", payload_of("b")))
    await wait_until(lambda: scheduler.stats.waiting == 1)
    with pytest.raises(Overloaded):
        await cache.get_or_build("c", payload_of("c"))
    assert cache.stats.rejected == 1
    assert cache.stats.inflight == 2
    assert ("lru", "rejected") in events
    # A key already in flight is joined, not rejected.
    joined = asyncio.create_task(cache.get_or_build("b", payload_of("b")))
    work.release.set()
    assert [p.identity for p in await asyncio.gather(first, second, joined)] == [b"a", b"b", b"b"]
    assert "c" not in cache


async def test_cache_background_builds_wait_and_a_request_promotes_them() -> None:
    work = Work(hold=True)
    cache = PayloadCache(scheduler=BuildScheduler(max_running=1))

    def payload_of(name: str) -> Callable[[], Payload]:
        job = work.job(name)
        return lambda: make_payload(job())

    warm = [
        asyncio.create_task(cache.get_or_build(f"w{i}", payload_of(f"w{i}"), background=True))
        for i in range(3)
    ]
    await wait_until(lambda: work.running == 1)
    cold = asyncio.create_task(cache.get_or_build("cold", payload_of("cold")))
    wanted = asyncio.create_task(cache.get_or_build("w2", payload_of("w2")))  # promotes w2
    await wait_until(lambda: cache.stats.coalesced == 1)
    work.release.set()
    await asyncio.gather(*warm, cold, wanted)
    assert work.order == ["w0", "cold", "w2", "w1"]


class Warmup:
    """Background builds through a cache, one task per (snapshot, route), like warmup."""

    def __init__(self, cache: PayloadCache, work: Work) -> None:
        self.cache = cache
        self.work = work

    def start(self, snapshot: str, i: int) -> asyncio.Task[Payload]:
        job = self.work.job(f"{snapshot}{i}")
        return asyncio.create_task(
            self.cache.get_or_build(
                (snapshot, f"/route/{i}"),
                lambda: make_payload(job()),
                pin=True,
                background=True,
            )
        )


async def test_cancelling_a_superseded_warmup_drops_its_queued_builds() -> None:
    work = Work(hold=True)
    events: list[tuple[str, str]] = []
    cache = PayloadCache(
        scheduler=BuildScheduler(max_running=1),
        on_event=lambda layer, result: events.append((layer, result)),
    )
    warmup = Warmup(cache, work)
    old = [warmup.start("old", i) for i in range(3)]
    await wait_until(lambda: work.running == 1 and cache.stats.inflight == 3)
    # A reload supersedes the old warmup: its task is cancelled, so are its waits.
    for task in old:
        task.cancel()
    await asyncio.gather(*old, return_exceptions=True)
    new = [warmup.start("new", i) for i in range(2)]
    work.release.set()
    results = await asyncio.gather(*new)
    assert [payload.identity for payload in results] == [b"new0", b"new1"]
    # The running old build ran to its end; the queued ones never ran.
    assert work.order == ["old0", "new0", "new1"]
    await wait_until(lambda: cache.stats.inflight == 0)
    assert cache.stats.cancelled == 2
    assert cache.stats.build_errors == 0
    assert events.count(("pinned", "cancelled")) == 2
    assert ("old", "/route/0") in cache


async def test_cancel_background_fails_the_waiters_of_queued_builds_only() -> None:
    work = Work(hold=True)
    cache = PayloadCache(scheduler=BuildScheduler(max_running=1))
    warmup = Warmup(cache, work)
    old = [warmup.start("old", i) for i in range(3)]
    await wait_until(lambda: work.running == 1 and cache.stats.inflight == 3)
    assert cache.cancel_background(lambda key: snapshot_of(key) == "old") == 2
    new = warmup.start("new", 0)
    work.release.set()
    results = await asyncio.gather(*old, new, return_exceptions=True)
    assert isinstance(results[0], Payload)  # it was running: it finished
    assert all(isinstance(result, BuildCancelled) for result in results[1:3])
    assert isinstance(results[3], Payload)
    assert work.order == ["old0", "new0"]
    assert cache.stats.cancelled == 2
    # Nothing is refused afterwards: the same key can be built again.
    assert (await warmup.start("old", 1)).identity == b"old1"


async def test_a_queued_on_demand_build_runs_on_when_its_client_leaves() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1)
    cache = PayloadCache(scheduler=scheduler)
    first, cold = work.job("blocker"), work.job("cold")
    blocker = asyncio.create_task(cache.get_or_build("blocker", lambda: make_payload(first())))
    await wait_until(lambda: work.running == 1)
    leaver = asyncio.create_task(cache.get_or_build("cold", lambda: make_payload(cold())))
    await wait_until(lambda: scheduler.stats.waiting == 1)
    leaver.cancel()  # the client went away while its build was queued
    with pytest.raises(asyncio.CancelledError):
        await leaver
    work.release.set()
    await blocker
    await wait_until(lambda: "cold" in cache)  # built anyway: the next client gets it
    assert work.order == ["blocker", "cold"]
    assert cache.stats.cancelled == 0


async def test_cache_retain_cancels_queued_background_builds_of_dropped_keys() -> None:
    work = Work(hold=True)
    cache = PayloadCache(scheduler=BuildScheduler(max_running=1))

    def payload_of(name: str) -> Callable[[], Payload]:
        job = work.job(name)
        return lambda: make_payload(job())

    blocker = asyncio.create_task(cache.get_or_build(("new", "x"), payload_of("x")))
    await wait_until(lambda: work.running == 1)
    stale = asyncio.create_task(cache.get_or_build(("old", "y"), payload_of("y"), background=True))
    fresh = asyncio.create_task(cache.get_or_build(("new", "z"), payload_of("z"), background=True))
    await wait_until(lambda: cache.stats.inflight == 3)
    cache.retain(lambda key: snapshot_of(key) == "new")
    work.release.set()
    with pytest.raises(BuildCancelled):
        await stale
    await asyncio.gather(blocker, fresh)
    assert work.order == ["x", "z"]
    assert ("new", "z") in cache
    assert cache.stats.inflight == 0


async def test_cache_a_scheduled_build_finishing_after_a_swap_is_delivered_not_stored() -> None:
    work = Work(hold=True)
    cache = PayloadCache(scheduler=BuildScheduler(max_running=2))
    stale_job, fresh_job = work.job("stale"), work.job("fresh")
    stale = asyncio.create_task(
        cache.get_or_build(("old", "/a"), lambda: make_payload(stale_job()))
    )
    fresh = asyncio.create_task(
        cache.get_or_build(("new", "/a"), lambda: make_payload(fresh_job()))
    )
    await wait_until(lambda: work.running == 2)
    cache.retain(lambda key: snapshot_of(key) == "new")
    work.release.set()
    assert (await stale).identity == b"stale"
    assert (await fresh).identity == b"fresh"
    assert ("old", "/a") not in cache
    assert ("new", "/a") in cache


async def test_cache_build_hook_reports_run_time_not_queue_time() -> None:
    clock = Clock()
    work = Work(clock, hold=True)
    durations: list[float] = []
    scheduler = BuildScheduler(max_running=1, clock=clock)
    cache = PayloadCache(
        scheduler=scheduler, on_build=lambda layer, seconds: durations.append(seconds)
    )

    def payload_of(name: str, seconds: float) -> Callable[[], Payload]:
        job = work.job(name, seconds=seconds)
        return lambda: make_payload(job())

    first = asyncio.create_task(cache.get_or_build("a", payload_of("a", 2.0)))
    await wait_until(lambda: work.running == 1)
    second = asyncio.create_task(cache.get_or_build("b", payload_of("b", 3.0)))
    await wait_until(lambda: scheduler.stats.waiting == 1)
    work.release.set()
    await asyncio.gather(first, second)
    assert durations == [pytest.approx(2.0), pytest.approx(3.0)]  # b waited 2 s, ran 3 s


async def test_a_scheduler_slot_is_freed_when_every_waiter_of_a_queued_build_leaves() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1, max_waiting=1)
    running = scheduler.submit(work.job("running"))
    await wait_until(lambda: work.running == 1)
    queued = scheduler.submit(work.job("abandoned"))
    queued.future.cancel()  # its only waiter went away
    replacement = scheduler.submit(work.job("replacement"))  # room again: no Overloaded
    work.release.set()
    assert list(await asyncio.gather(running, replacement)) == ["running", "replacement"]
    assert work.order == ["running", "replacement"]


async def test_close_cancels_what_is_queued_and_lets_running_builds_finish() -> None:
    work = Work(hold=True)
    scheduler = BuildScheduler(max_running=1)
    running = scheduler.submit(work.job("running"))
    await wait_until(lambda: work.running == 1)
    queued = [scheduler.submit(work.job("cold")), scheduler.submit(work.job("bg"), background=True)]
    assert scheduler.close() == 2
    work.release.set()
    assert await running == "running"
    for ticket in queued:
        with pytest.raises(BuildCancelled):
            await ticket
    assert work.order == ["running"]


async def test_a_failing_pressure_counter_does_not_stop_the_builds() -> None:
    calls = 0

    def pressure() -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("counter gone")
        return 0

    scheduler = BuildScheduler(pressure=pressure, window=0.001)
    await asyncio.sleep(0.01)
    results = [await scheduler.run(partial(int, str(i))) for i in range(3)]
    assert results == [0, 1, 2]
    assert calls > 1


async def test_a_shut_down_executor_fails_the_build_instead_of_hanging() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    scheduler = BuildScheduler(executor=pool)
    with pytest.raises(RuntimeError, match="shutdown"):
        await scheduler.run(lambda: 1)
    assert scheduler.stats.running == 0


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_running"):
        BuildScheduler(max_running=0)
    with pytest.raises(ValueError, match="max_waiting"):
        BuildScheduler(max_waiting=0)
    with pytest.raises(ValueError, match="busy_share"):
        BuildScheduler(busy_share=0)
    with pytest.raises(ValueError, match="max_wait"):
        BuildScheduler(max_wait=-1)
