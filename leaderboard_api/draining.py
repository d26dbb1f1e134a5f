"""Ending requests that cannot finish in the shutdown grace period: 503, never a 500.

When the server starts shutting down it calls :meth:`Drain.begin` with a deadline a little
before its own grace period ends. A request still waiting for its response at the deadline
(an icon from a slow upstream, say) has its handler cancelled and is answered ``503``
problem+json with ``Retry-After`` and ``Connection: close``. The cancellation is caught
here, so the server never sees it (it would log a traceback and answer a plain-text 500).
Responses already being written are abandoned (:meth:`Drain.abandon_started`) and their
connections closed by the server (see ``server.py``).

Per request this costs a small record and a wrapped ``send``: no extra task.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard_api.problems import MAX_INSTANCE, PROBLEM_TYPE

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


class _InFlight:
    __slots__ = ("cut", "send", "started", "task")

    def __init__(self, task: asyncio.Task[object] | None, send: Send) -> None:
        self.task = task
        self.send = send
        self.started = False
        self.cut = False


class Drain:
    """ASGI middleware answering requests still unanswered at the shutdown deadline."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._active: set[_InFlight] = set()
        #: Requests answered 503 by the shutdown (for logs and tests).
        self.cut_short = 0

    def begin(self, *, within: float) -> None:
        """Shutting down: requests not answered ``within`` seconds from now get a 503."""
        asyncio.get_running_loop().call_later(max(within, 0.0), self._expire)

    def _expire(self) -> None:
        for request in list(self._active):
            if not request.started and request.task is not None and not request.cut:
                request.cut = True
                request.task.cancel("shutdown deadline")

    def abandon_started(self) -> int:
        """Mark responses still being written as abandoned; returns how many.

        The server then closes their connections: their pending writes return at once
        instead of failing on the closed socket. uvicorn's send is a method of its
        request cycle, whose ``disconnected`` flag says exactly that.
        """
        count = 0
        for request in list(self._active):
            cycle = getattr(request.send, "__self__", None)
            if request.started and cycle is not None and hasattr(cycle, "disconnected"):
                cycle.disconnected = True
                count += 1
        return count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _InFlight(asyncio.current_task(), send)

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.started = True
            await send(message)

        self._active.add(request)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not request.cut or request.task is None:
                raise
            # Our own cancellation at the deadline: swallow it and answer.
            request.task.uncancel()
            if request.started:
                return
            self.cut_short += 1
            log.warning("shutdown: answered 503 to %s %s", scope["method"], scope["path"][:200])
            headers, body = shutdown_problem(scope["path"])
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            self._active.discard(request)
