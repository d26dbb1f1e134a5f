"""Ending requests that cannot finish in the shutdown grace period: 503, never a 500.

When the server starts shutting down it calls :meth:`Drain.begin` with a deadline a little
before its own grace period ends. A request still waiting for its response at the deadline
(an icon from a slow upstream, say) has its handler cancelled and is answered ``503``
problem+json with ``Retry-After`` and ``Connection: close``; one that reaches a handler
after the deadline is answered so at once. The cancellation is caught here, so the server
never sees it (it would log a traceback and answer a plain-text 500). Responses still being
written when the server gives up on them are abandoned and their connections closed by the
server (see ``server.py``).

Where the records are kept
    Only a request that waits on a handler can be cut, and only the framework runs
    handlers: the fast path in front of it answers from bytes already built and awaits
    nothing but ``send``, so one of its requests still in flight at the deadline is a
    response being written (which the server abandons like any other). So the server
    puts the part of the drain that keeps records (a record per request and a ``send``
    wrapped to see the response start) around the framework's routes only
    (:meth:`Drain.guard_routes`), inside the framework's error middleware and behind the
    fast path and the metrics, which then count the 503 like any other answer. In front
    of everything, :class:`Drain` then only hands each request on, with no coroutine of
    its own: the hot path pays one function call for it. Without a guard, :class:`Drain`
    keeps a record for every request itself, as a plain middleware around any app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard_api.problems import MAX_INSTANCE, PROBLEM_TYPE

__all__ = ["RETRY_AFTER", "Drain", "shutdown_problem"]

log = logging.getLogger(__name__)
RETRY_AFTER = "5"


def shutdown_problem(path: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of the 503 sent to a request cut short by the shutdown."""
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "the server is shutting down; retry the request",
            "instance": path[:MAX_INSTANCE],
        }
    )
    headers = [
        (b"content-type", PROBLEM_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", RETRY_AFTER.encode()),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    return headers, body


class _Waiting:
    """A guarded request: its task, its ``send``, whether its response has started."""

    __slots__ = ("cut", "send", "started", "task")

    def __init__(self, task: asyncio.Task[Any] | None, send: Send) -> None:
        self.task = task
        self.send = send
        self.started = False
        self.cut = False


class Drain:
    """ASGI middleware answering requests still unanswered at the shutdown deadline.

    Wrap the whole app with it (the server's outermost app).  By default it guards every
    HTTP request; after :meth:`guard_routes` only those reaching the framework's routes.
    ``http``, when given, answers HTTP requests in place of ``app`` (which still gets the
    lifespan and everything else): an app that only dispatches HTTP requests to an inner
    app can be skipped that way.

    ``Drain(...)(scope, receive, send)`` returns the awaitable of the app it hands the
    request to (it is not a coroutine function itself): give it to servers as an ASGI 3
    app explicitly (uvicorn's ``interface="asgi3"``) rather than letting them guess.
    """

    def __init__(self, app: ASGIApp, *, http: ASGIApp | None = None) -> None:
        self.app = app
        self._http = app if http is None else http
        #: Requests inside a guarded app (see :meth:`guard`).
        self._waiting: set[_Waiting] = set()
        self._guarded = False
        self._expired = False
        #: Requests answered 503 by the shutdown (for logs and tests).
        self.cut_short = 0

    @property
    def waiting(self) -> int:
        """Guarded requests in flight (the ones the deadline can cut)."""
        return len(self._waiting)

    def guard(self, app: ASGIApp) -> ASGIApp:
        """``app`` with its requests guarded: cut at the deadline, 503 after it.

        Once a guard is made, the drain stops guarding every request itself: requests
        that do not pass through a guard are never cut (they must not wait on anything
        but ``send``).
        """
        self._guarded = True
        return _Guard(self, app)

    def guard_routes(self, framework: Starlette) -> None:
        """Guard the requests that reach ``framework``'s routes, and only those.

        The guard becomes the outermost of ``framework``'s own middleware, inside its
        error middleware.  Call before ``framework`` serves (Starlette builds its
        middleware stack on the first call, the lifespan's).
        """
        framework.add_middleware(self.guard)

    def begin(self, *, within: float) -> None:
        """Shutting down: requests not answered ``within`` seconds from now get a 503."""
        asyncio.get_running_loop().call_later(max(within, 0.0), self._expire)

    def _expire(self) -> None:
        self._expired = True
        for request in list(self._waiting):
            if not request.started and request.task is not None and not request.cut:
                request.cut = True
                request.task.cancel("shutdown deadline")

    def abandon_started(self) -> int:
        """Mark the guarded responses still in flight as abandoned; returns how many.

        Meant for after the deadline, when every guarded request still in flight is
        writing its response (the others were cut).  The server then closes their
        connections: their pending writes return at once instead of failing on the
        closed socket.  uvicorn's send is a method of its request cycle, whose
        ``disconnected`` flag says exactly that; other sends are left alone (the fast
        path's responses have no record here: see ``server.py`` for those).
        """
        count = 0
        for request in list(self._waiting):
            cycle = getattr(request.send, "__self__", None)
            if cycle is not None and hasattr(cycle, "disconnected"):
                cycle.disconnected = True
                count += 1
        return count

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing over the inner app's awaitable: no coroutine of its own.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        if self._guarded:
            return self._http(scope, receive, send)
        return self._guarded_call(self._http, scope, receive, send)

    async def _guarded_call(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if self._expired:
            await self._unavailable(scope, send)
            return
        request = _Waiting(asyncio.current_task(), send)

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.started = True
            await send(message)

        self._waiting.add(request)
        try:
            await app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not request.cut or request.task is None:
                raise
            # Our own cancellation at the deadline: swallow it and answer.
            request.task.uncancel()
            if not request.started:
                await self._unavailable(scope, send)
        finally:
            self._waiting.discard(request)

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        self.cut_short += 1
        log.warning("shutdown: answered 503 to %s %s", scope["method"], scope["path"][:200])
        headers, body = shutdown_problem(scope["path"])
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _Guard:
    """The part of a :class:`Drain` around an inner app (see :meth:`Drain.guard`)."""

    __slots__ = ("_app", "_drain")

    def __init__(self, drain: Drain, app: ASGIApp) -> None:
        self._drain = drain
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        await self._drain._guarded_call(self._app, scope, receive, send)
