"""Which payload build runs next, how many run at once, and how fast they run under load.

Every build goes through one :class:`BuildScheduler`.  Builds are opaque blocking callables
(scoring, encoding, compression); they run in worker threads of one process, so while one
runs it competes with the event loop for the GIL and, on a server pinned to one core, for
the core itself.  The scheduler cannot slow a build down once it has started; it decides
*when* builds start.

Lanes
    *on-demand* builds have a client waiting (a cold request); *background* builds have
    none (warmup, reload).  Within a lane builds start in submission order; a background
    build starts only when no on-demand build is waiting.  A background build that a
    client starts waiting for is moved to the on-demand lane (:meth:`Ticket.promote`).

Bounded concurrency
    At most ``max_running`` builds run at once while the server is idle, one while it is
    under load.  At most ``max_waiting`` on-demand builds wait, and only while the wait of
    a new one is estimated at most ``max_wait`` seconds (builds ahead times the typical
    on-demand build, stretched by the pacing); beyond either bound a new one raises
    :class:`Overloaded` with that estimate as ``Retry-After`` (the HTTP layer answers
    503, see :func:`overloaded_response`), so a client is told to come back rather than
    left to time out.  An on-demand build is never refused when none waits.  The
    background lane is not bounded: its callers (warmup) bound themselves.

Pacing
    ``pressure()`` returns how many requests the server has received so far.  While that
    count grows faster than ``busy_rate`` per second the server is *under load*, and builds
    may use only ``busy_share`` of the CPU.  The scheduler keeps a *debt*: it grows by the
    CPU time of the process's threads other than the event loop's (the builds' worker
    threads and the thread pools of polars and compressors, measured from the loop as
    ``time.process_time() - time.thread_time()``) and shrinks by ``busy_share`` seconds
    per second of wall-clock time.  A background build starts only when the debt is
    paid, an on-demand build when it is at most ``on_demand_slack`` seconds (so the first
    cold request is not held up by background pacing, the ones after it are).  A build of
    0.4 s of CPU under load is thus followed by 3-4 s without builds at the default
    share 0.1, however the GIL splits the core while it runs.  When the server is idle
    the debt is forgiven and builds run back to back.

    CPU time is charged, not wall time, because a build competing with a busy loop (or
    with other processes) takes several times its CPU time in wall time; the process's
    CPU, not the build thread's, because polars computes in its own threads (a build's
    thread sees about 60 % of its CPU).  The default share is lower than the 20 % serving
    could spare because a build also makes the loop's requests dearer while and after it
    runs (GIL hand-offs, caches): in 12-second probes with eight cold clients on a busy
    shared machine a route kept 0.65-0.82 of its throughput at 0.2, 0.73-0.88 at 0.15
    and 0.95 at 0.1.
    ``busy_share`` is a share of one core's time: under a CPU quota of ``q`` cores, or on
    a core shared with other processes, builds take ``busy_share / q`` of what the
    service gets (set it lower there).

Why pacing rather than a process pool
    On a server pinned to one core the core, not the GIL, is what builds take from
    serving, and a build process on that core takes it as a build thread does.  Measured
    with ``benchmarks/bench_builds.py`` (scenario (d), a process spinning on the
    service's core): at the service's priority the kernel splits the core evenly and the
    service kept 0.38-0.49 of it; at nice 19 it kept 0.82-0.96 while the worker got
    3-17 %, a share set by the gaps the loop leaves rather than chosen, so cold builds
    would crawl under load all the same.  A pool also needs the snapshot in every worker
    (about 1 GB for the MTEB data, rebuilt on every reload) and ships megabytes of
    payload back through the loop per build.  Pacing the build threads bounds their
    share to a chosen figure with neither cost, and builds run at full speed when the
    server is idle.  With the defaults builds took 8-15 % of the core under load (51-66 %
    unpaced), and the built route kept 0.93-0.98 of its steady throughput during eight
    clients' cold filters (0.38-0.42 unpaced) and 0.86-1.04 during the background warmup
    (0.46-0.56 unpaced).  The GIL only decides how the core is split while a build runs,
    not the average.

Cancellation
    Background builds carry a ``tag`` (the cache passes the payload key); queued ones can be
    dropped with :meth:`BuildScheduler.cancel_background` (or :meth:`Ticket.cancel`), so a
    reload never waits behind the warmup of the snapshot it replaces.  Their waiters get
    :class:`BuildCancelled`.  A build that has started always runs to the end.

Use one scheduler from one event loop; only the build callables run elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from starlette.responses import Response

__all__ = [
    "BuildCancelled",
    "BuildScheduler",
    "Overloaded",
    "SchedulerStats",
    "Ticket",
    "overloaded_response",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Debt below this counts as paid (float sums of clock differences are not exact).
_EPSILON = 1e-6


class Overloaded(Exception):
    """Too many on-demand builds are waiting; the client should come back later."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many cold requests are waiting; retry in {retry_after} s")
        self.retry_after = retry_after


class BuildCancelled(Exception):
    """A queued background build was cancelled before it started (superseded snapshot)."""


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Counters since the scheduler was created, and its current state."""

    running: int
    waiting: int
    waiting_background: int
    started: int
    finished: int
    rejected: int
    cancelled: int
    #: Times the scheduler held a build back to pace it, and the seconds it asked to wait.
    pauses: int
    paused_seconds: float
    #: CPU seconds owed by the pacing rule (0 when idle, below 0 while a build runs).
    debt: float
    #: Wall-clock seconds of the finished builds, and the CPU seconds the process's
    #: threads other than the event loop's used while they ran.
    build_seconds: float
    build_cpu_seconds: float
    under_load: bool


class Ticket(Generic[T]):
    """One submitted build: await it for the result (or the build's exception)."""

    __slots__ = (
        "_scheduler",
        "background",
        "build",
        "cpu_at_start",
        "cpu_seconds",
        "future",
        "seconds",
        "started_at",
        "tag",
    )

    def __init__(
        self,
        scheduler: BuildScheduler,
        build: Callable[[], T],
        *,
        background: bool,
        tag: Hashable,
        future: asyncio.Future[T],
    ) -> None:
        self._scheduler = scheduler
        self.build = build
        self.background = background
        self.tag = tag
        self.future = future
        #: Clock time the build started, None while it waits.
        self.started_at: float | None = None
        #: How long the build ran (wall clock), and the CPU seconds the process's threads
        #: other than the event loop's used meanwhile, once it finished.
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None
        self.cpu_at_start = 0.0

    @property
    def started(self) -> bool:
        return self.started_at is not None

    def promote(self) -> None:
        """A client now waits for this build: move it to the on-demand lane if still queued."""
        self._scheduler._promote(self)

    def cancel(self) -> bool:
        """Drop this build if it is a queued background build; True if it was dropped."""
        return self._scheduler._cancel(self)

    def __await__(self) -> Generator[Any, None, T]:
        return self.future.__await__()


class BuildScheduler:
    """Runs blocking build callables with priorities, bounded concurrency and pacing.

    Parameters
    ----------
    max_running
        Builds running at once while the server is idle (one while it is under load).
    max_waiting
        On-demand builds that may wait; one more raises :class:`Overloaded`.
    max_wait
        Longest estimated wait (seconds) a new on-demand build is queued for.
    pressure
        Returns the number of requests received so far (monotonic); None: never under load.
    busy_rate
        Requests per second from which the server counts as under load.
    busy_share
        Share of one core (CPU seconds per second) builds may use while under load.
    on_demand_slack
        Debt (CPU seconds) up to which an on-demand build still starts at once.
    executor
        Where builds run; None means the event loop's default executor.
    clock, sleep
        Monotonic seconds and the pause coroutine (injected by tests).
    other_cpu
        CPU seconds used so far by the process's threads other than the calling one (it
        is called from the event loop).
    recheck
        Longest single pause: the load is measured again after it.
    window
        Shortest interval over which the request rate is measured.
    max_retry_after
        Upper bound of the ``Retry-After`` estimate, in seconds.
    typical_build
        Assumed duration (wall and CPU) of an on-demand build until one has finished.
    """

    def __init__(
        self,
        *,
        max_running: int = 2,
        max_waiting: int = 16,
        max_wait: float = 30.0,
        pressure: Callable[[], int] | None = None,
        busy_rate: float = 200.0,
        busy_share: float = 0.1,
        on_demand_slack: float = 0.25,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        other_cpu: Callable[[], float] | None = None,
        recheck: float = 0.25,
        window: float = 0.25,
        max_retry_after: int = 60,
        typical_build: float = 0.5,
    ) -> None:
        if max_running < 1 or max_waiting < 1:
            msg = f"need max_running >= 1 and max_waiting >= 1, got {max_running}, {max_waiting}"
            raise ValueError(msg)
        if not 0 < busy_share <= 1:
            msg = f"busy_share must be in (0, 1], got {busy_share}"
            raise ValueError(msg)
        if min(busy_rate, on_demand_slack, max_wait, typical_build) < 0:
            msg = "busy_rate, on_demand_slack, max_wait and typical_build must be >= 0"
            raise ValueError(msg)
        if recheck <= 0 or window <= 0:
            msg = f"recheck and window must be > 0, got {recheck}, {window}"
            raise ValueError(msg)
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.max_wait = max_wait
        self.busy_rate = busy_rate
        self.busy_share = busy_share
        self.on_demand_slack = on_demand_slack
        self._pressure = pressure
        self._executor = executor
        self._clock = clock
        self._sleep = sleep
        self._other_cpu = other_cpu if other_cpu is not None else _other_threads_cpu
        #: ``other_cpu()`` at the last accounting, None before the first.
        self._cpu_mark: float | None = None
        self._recheck = recheck
        self._window = window
        self._max_retry_after = max(1, max_retry_after)
        self._on_demand: deque[Ticket[Any]] = deque()
        self._background: deque[Ticket[Any]] = deque()
        self._running = 0
        now = clock()
        self._debt = 0.0
        self._accounted = now
        self._sample_at = now
        self._sample_count = pressure() if pressure is not None else 0
        self._rate = 0.0
        self._pressure_failed = False
        self._timer: asyncio.Task[None] | None = None
        #: Moving averages of on-demand builds' wall and CPU seconds (for the wait estimate).
        self._typical = typical_build
        self._typical_cpu = typical_build
        self._started = 0
        self._finished = 0
        self._rejected = 0
        self._cancelled = 0
        self._pauses = 0
        self._paused_seconds = 0.0
        self._build_seconds = 0.0
        self._build_cpu_seconds = 0.0

    # --- submitting -----------------------------------------------------------------------

    def submit(
        self, build: Callable[[], T], *, background: bool = False, tag: Hashable = None
    ) -> Ticket[T]:
        """Queue ``build`` and start it as soon as the rules allow; await the ticket.

        Raises
        ------
        Overloaded
            An on-demand build when ``max_waiting`` of them already wait.
        """
        loop = asyncio.get_running_loop()
        if not background:
            self._drop_done(self._on_demand)
            if self._on_demand and (
                len(self._on_demand) >= self.max_waiting or self.expected_wait() > self.max_wait
            ):
                self._rejected += 1
                raise Overloaded(self.retry_after())
        future: asyncio.Future[T] = loop.create_future()
        ticket = Ticket(self, build, background=background, tag=tag, future=future)
        (self._background if background else self._on_demand).append(ticket)
        self._dispatch()
        return ticket

    async def run(
        self, build: Callable[[], T], *, background: bool = False, tag: Hashable = None
    ) -> T:
        """Submit ``build`` and wait for its result."""
        return await self.submit(build, background=background, tag=tag)

    def cancel_background(self, where: Callable[[Hashable], bool] | None = None) -> int:
        """Drop queued background builds whose tag ``where`` accepts (all when None).

        Their waiters get :class:`BuildCancelled`; builds already running finish.
        Returns how many were dropped.
        """
        dropped = [t for t in self._background if where is None or where(t.tag)]
        for ticket in dropped:
            self._cancel(ticket)
        return len(dropped)

    def expected_wait(self) -> float:
        """Seconds a new on-demand build would likely wait before it starts."""
        ahead = len(self._on_demand) + self._running
        if self._under_load(self._clock()):
            # Each one, then its pause: at least its CPU time over the allowed share.
            per_build = max(self._typical, self._typical_cpu / self.busy_share)
        else:
            per_build = self._typical / self.max_running
        return ahead * per_build

    def retry_after(self) -> int:
        """:meth:`expected_wait` in whole seconds, from 1 to ``max_retry_after``."""
        return max(1, min(self._max_retry_after, math.ceil(self.expected_wait())))

    @property
    def stats(self) -> SchedulerStats:
        """A copy of the counters and of the state at the last scheduling decision."""
        return SchedulerStats(
            running=self._running,
            waiting=len(self._on_demand),
            waiting_background=len(self._background),
            started=self._started,
            finished=self._finished,
            rejected=self._rejected,
            cancelled=self._cancelled,
            pauses=self._pauses,
            paused_seconds=self._paused_seconds,
            debt=self._debt,
            build_seconds=self._build_seconds,
            build_cpu_seconds=self._build_cpu_seconds,
            under_load=self._loaded(),
        )

    def close(self) -> int:
        """Cancel every queued build (shutdown); running ones finish.  Returns how many.

        Their waiters get :class:`BuildCancelled`.  Submitting afterwards works again.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued = [*self._on_demand, *self._background]
        self._on_demand.clear()
        self._background.clear()
        for ticket in queued:
            self._cancelled += 1
            if not ticket.future.done():
                ticket.future.set_exception(BuildCancelled("the scheduler was closed"))
        return len(queued)

    # --- ticket operations ----------------------------------------------------------------

    def _promote(self, ticket: Ticket[Any]) -> None:
        if not ticket.background or ticket.started or ticket.future.done():
            return
        try:
            self._background.remove(ticket)
        except ValueError:
            return
        ticket.background = False
        self._on_demand.append(ticket)
        self._dispatch()

    def _cancel(self, ticket: Ticket[Any]) -> bool:
        if not ticket.background or ticket.started:
            return False
        try:
            self._background.remove(ticket)
        except ValueError:
            return False
        self._cancelled += 1
        if not ticket.future.done():
            ticket.future.set_exception(BuildCancelled(f"background build {ticket.tag!r}"))
        return True

    # --- the rules ------------------------------------------------------------------------

    def _under_load(self, now: float) -> bool:
        """Measure the request rate (over at least ``window`` seconds) and compare."""
        if self._pressure is None:
            return False
        elapsed = now - self._sample_at
        if elapsed >= self._window:
            try:
                count = self._pressure()
            except Exception:  # a broken counter must not stop the builds: keep the rate
                if not self._pressure_failed:
                    log.exception("build scheduler: the pressure counter failed")
                self._pressure_failed = True
                return self._rate >= self.busy_rate
            self._rate = (count - self._sample_count) / elapsed
            self._sample_at, self._sample_count = now, count
        return self._rate >= self.busy_rate

    def _loaded(self) -> bool:
        """Under load at the last measurement."""
        return self._pressure is not None and self._rate >= self.busy_rate

    def _account(self, now: float) -> None:
        """Bring the debt up to ``now``: CPU used off the loop adds, time pays back.

        While builds run the debt may go below zero, by at most one second's share: their
        own duration pays for part of them, but a build that takes long in wall time (a
        stopped or starved process) earns no credit for the builds after it.  Idle time
        is not saved up.
        """
        elapsed = now - self._accounted
        self._accounted = now
        cpu = self._other_cpu()
        used = cpu - self._cpu_mark if self._cpu_mark is not None else 0.0
        self._cpu_mark = cpu
        if not self._under_load(now):
            self._debt = 0.0
            return
        floor = 0.0 if self._running == 0 else -self.busy_share
        self._debt = max(self._debt - max(elapsed, 0.0) * self.busy_share, floor)
        self._debt += max(used, 0.0)

    @staticmethod
    def _drop_done(queue: deque[Ticket[Any]]) -> None:
        # A waiter that went away cancels the ticket's future: nothing left to build for.
        while queue and queue[0].future.done():
            queue.popleft()

    def _next(self, loaded: bool) -> Ticket[Any] | None:
        """The build to start now, if the pacing rule allows one."""
        self._drop_done(self._on_demand)
        if self._on_demand:
            if not loaded or self._debt <= self.on_demand_slack + _EPSILON:
                return self._on_demand.popleft()
            return None  # on-demand builds wait for the debt; background must not pass them
        self._drop_done(self._background)
        if self._background and (not loaded or self._debt <= _EPSILON):
            return self._background.popleft()
        return None

    def _dispatch(self) -> None:
        """Start every build the rules allow now; set a timer when pacing holds one back."""
        now = self._clock()
        self._account(now)
        loaded = self._loaded()
        limit = 1 if loaded else self.max_running
        while self._running < limit:
            ticket = self._next(loaded)
            if ticket is None:
                break
            self._start(ticket, now)
        if self._running >= limit or self._timer is not None:
            return  # a finishing build or the pending timer dispatches again
        if self._on_demand:
            owed = self._debt - self.on_demand_slack
        elif self._background:
            owed = self._debt
        else:
            return
        delay = min(self._recheck, max(owed / self.busy_share, 0.001))
        self._pauses += 1
        self._paused_seconds += delay
        self._timer = asyncio.get_running_loop().create_task(self._pause(delay))

    async def _pause(self, delay: float) -> None:
        try:
            await self._sleep(delay)
        finally:
            if self._timer is asyncio.current_task():
                self._timer = None
        self._dispatch()

    def _start(self, ticket: Ticket[Any], now: float) -> None:
        self._running += 1
        self._started += 1
        ticket.started_at = now
        ticket.cpu_at_start = self._cpu_mark if self._cpu_mark is not None else 0.0
        loop = asyncio.get_running_loop()
        try:
            done = loop.run_in_executor(self._executor, ticket.build)
        except RuntimeError as exc:  # the executor was shut down
            self._running -= 1
            if not ticket.future.done():
                ticket.future.set_exception(exc)
            return
        done.add_done_callback(lambda outcome: self._finish(ticket, outcome))

    def _finish(self, ticket: Ticket[Any], outcome: asyncio.Future[Any]) -> None:
        now = self._clock()
        self._account(now)
        self._running -= 1
        self._finished += 1
        started = ticket.started_at if ticket.started_at is not None else now
        ticket.seconds = now - started
        cpu = ticket.cpu_seconds = max((self._cpu_mark or 0.0) - ticket.cpu_at_start, 0.0)
        self._build_seconds += ticket.seconds
        self._build_cpu_seconds += cpu
        if self._running == 0:
            self._debt = max(self._debt, 0.0)
        if not ticket.background:
            self._typical = 0.7 * self._typical + 0.3 * ticket.seconds
            self._typical_cpu = 0.7 * self._typical_cpu + 0.3 * cpu
        future = ticket.future
        if not future.done():
            if outcome.cancelled():
                future.cancel()
            elif (error := outcome.exception()) is not None:
                future.set_exception(error)
            else:
                future.set_result(outcome.result())
        self._dispatch()


def _other_threads_cpu() -> float:
    """CPU seconds of the process's threads other than the calling one, so far."""
    return time.process_time() - time.thread_time()


def overloaded_response(exc: Overloaded, *, instance: str | None = None) -> Response:
    """The 503 problem+json answer to :class:`Overloaded`, with ``Retry-After``."""
    body = {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "too many new filter combinations are being computed; retry later",
        "instance": instance,
    }
    return Response(
        orjson.dumps(body),
        status_code=503,
        media_type="application/problem+json",
        headers={"cache-control": "no-store", "retry-after": str(exc.retry_after)},
    )
