"""Run the app under uvicorn: one worker, graceful shutdown, a non-zero exit on a bad dataset."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from leaderboard_api.app import create_app
from leaderboard_api.draining import Drain
from leaderboard_api.observability.logs import setup_logging
from leaderboard_api.settings import Settings

log = logging.getLogger(__name__)


def _loop_and_http() -> tuple[str, str]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        loop = "asyncio"
    else:
        loop = "uvloop"
    try:
        import httptools  # noqa: F401
    except ImportError:
        http = "h11"
    else:
        http = "httptools"
    return loop, http


#: Seconds in-flight requests get to finish after SIGTERM (Kubernetes waits 30 s by default
#: before SIGKILL).
GRACE_SECONDS = 30.0


def _request_cycles(state: ServerState) -> Iterator[Any]:
    """The request cycle of every request uvicorn is running.

    The drain keeps no record of fast-path requests (see ``draining.py``), and a
    connection only knows its newest cycle (with pipelining, that is a request waiting
    behind the one being written), so the running cycles are found through uvicorn's
    request tasks: each runs ``cycle.run_asgi(app)``, whose ``self`` is the cycle.
    Marking one ``disconnected`` makes its pending ``send`` return instead of writing to
    the socket about to be closed (uvloop raises on that, and uvicorn logs a traceback).
    """
    for task in list(state.tasks):
        frame = getattr(task.get_coro(), "cr_frame", None)
        cycle = frame.f_locals.get("self") if frame is not None else None
        if cycle is not None and hasattr(cycle, "disconnected"):
            yield cycle


class GracefulServer(uvicorn.Server):
    """uvicorn's server, ending what cannot finish within the grace period cleanly.

    Shortly before the grace period ends, requests still waiting for their response get
    a 503 problem+json (see :class:`~leaderboard_api.draining.Drain`), then connections
    still writing a response (a client that stopped reading) are closed. uvicorn's own
    fallback at the end of the period, cancelling tasks, would log tracebacks and send
    plain-text 500s; with both steps done first it finds nothing left to cancel.
    """

    def __init__(self, config: uvicorn.Config, *, drain: Drain, grace: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace = grace

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        margin = min(1.0, self.grace / 4)
        self.drain.begin(within=self.grace - margin)
        asyncio.get_running_loop().call_later(self.grace - margin / 2, self._close_unfinished)
        await super().shutdown(sockets)

    def _close_unfinished(self) -> None:
        # Requests still unanswered got their 503 and their connections closed after it;
        # idle ones were closed when the shutdown began. What is left is writing to a
        # client that stopped reading, and cannot finish in time.
        self.drain.abandon_started()
        for cycle in _request_cycles(self.server_state):
            if not getattr(cycle, "response_complete", False):
                cycle.disconnected = True
        closed = 0
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                # abort, not close: close would wait for the unread bytes to drain first.
                transport.abort()
                closed += 1
        if closed:
            log.warning("shutdown: closed %d connection(s) still being written to", closed)


def run_server(settings: Settings, *, grace_seconds: float = GRACE_SECONDS) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``grace_seconds`` to finish."""
    setup_logging(fmt=settings.log_format, level=settings.log_level)
    app = create_app(settings)
    # HTTP requests straight to the app's outer stack (metrics, fast path), which is all
    # the app's own __call__ would do with them: one coroutine less per request.
    drain = Drain(app, http=app.outer)
    # Only requests reaching a route can wait on a handler: the fast path in front of
    # the framework answers from built bytes, so its requests carry no drain record.
    drain.guard_routes(app)
    loop, http = _loop_and_http()
    config = uvicorn.Config(
        drain,
        interface="asgi3",  # the drain hands requests on without being a coroutine itself
        host=settings.host,
        port=settings.port,
        loop=loop,
        http=http,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        # uvicorn's own limit is a backstop: GracefulServer ends everything before it.
        timeout_graceful_shutdown=int(grace_seconds) + 1,
        # Clients that pause between requests (a static-site build crawling thousands of
        # pages, a CDN) reuse idle connections; uvicorn's 5 s default closes them under
        # those clients' feet, and a request sent on a just-closed socket fails.
        timeout_keep_alive=75,
    )
    server = GracefulServer(config, drain=drain, grace=grace_seconds)
    failed: list[Exception] = []

    def fatal(exc: Exception) -> None:
        failed.append(exc)
        server.should_exit = True

    app.state.lb.on_fatal.append(fatal)
    log.info(
        "serving %s on http://%s:%d",
        settings.data or "the embedded sample",
        settings.host,
        settings.port,
    )
    # uvicorn re-raises the signal after its graceful shutdown; with the default SIGTERM
    # handler that kills the process (exit -15, stdout lost). Ignore the re-raise so the
    # process exits 0 once in-flight requests are done and traces are flushed.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    if failed:
        print(f"error: {failed[0]}", file=sys.stderr)
        raise SystemExit(1)
