"""Run the app under uvicorn: one worker, graceful shutdown, a non-zero exit on a bad dataset."""

from __future__ import annotations

import logging
import signal
import sys

import uvicorn

from leaderboard_api.app import create_app
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


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish before the process exits."""
    setup_logging(fmt=settings.log_format, level=settings.log_level)
    app = create_app(settings)
    loop, http = _loop_and_http()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http=http,
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
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
