"""Logging: text or JSON lines, a per-request context (request id, snapshot) and an access log.

:func:`setup_logging` configures the root logger once at startup (never at import);
calling it again replaces its own handler instead of adding another.  Every record
formatted by that handler carries the current request's ``request_id`` and ``snapshot``
(when a request is being served) and the current ``trace_id``/``span_id`` (when a sampled
OpenTelemetry span is active).  Fields passed with ``extra={...}`` are kept: JSON lines
get them as keys, text lines as ``key=value`` after the message.

:class:`AccessLogMiddleware` is pure ASGI.  It binds the request context, echoes the
request id in an ``X-Request-ID`` response header and, when ``log_requests`` is on,
writes one ``leaderboard_api.access`` line per request.  Put it outside the fast path to
see (and log) fast-path requests too, inside it to log only framework-routed ones.
"""

from __future__ import annotations

import logging
import random
import re
import sys
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from time import perf_counter
from typing import IO, Final, Literal, NamedTuple

import orjson
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AccessLogMiddleware",
    "JsonFormatter",
    "RequestContext",
    "TextFormatter",
    "current_request",
    "setup_logging",
]


ACCESS_LOGGER: Final = "leaderboard_api.access"
_REQUEST_ID_HEADER: Final = b"x-request-id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "snapshot",
    "trace_id",
    "span_id",
}
_MARK: Final = "_leaderboard_api_handler"


class RequestContext(NamedTuple):
    """What every log line written while serving one request carries."""

    request_id: str
    snapshot: str | None = None


_REQUEST: ContextVar[RequestContext | None] = ContextVar("leaderboard_request", default=None)


def current_request() -> RequestContext | None:
    """The request being served by this task (None outside requests)."""
    return _REQUEST.get()


class _ContextFilter(logging.Filter):
    """Copy the request context and the active trace onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _REQUEST.get()
        record.request_id = None if context is None else context.request_id
        record.snapshot = None if context is None else context.snapshot
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = record.span_id = None
        return True


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in _NOISE
    }


#: Extras other libraries attach that repeat the message (uvicorn's ANSI-coloured copy).
_NOISE = frozenset({"color_message"})


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, context, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "snapshot", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z INFO    logger: message key=value ... [request_id=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"]
        if record.name != ACCESS_LOGGER:  # its message already says it all
            parts.extend(f"{key}={value}" for key, value in _extras(record).items())
        for key in ("request_id", "snapshot", "trace_id"):
            value = getattr(record, key, None)
            if value is not None:
                parts.append(f"{key}={value}")
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def setup_logging(
    *,
    fmt: Literal["text", "json"] = "text",
    level: str = "INFO",
    stream: IO[str] | None = None,
) -> None:
    """Send every log record to ``stream`` (stderr) as text or JSON lines, at ``level``.

    Idempotent: a second call replaces the handler the first one installed.  uvicorn's
    loggers are routed through the same handler (their own handlers are removed), so
    run uvicorn with ``log_config=None`` or call this after it configured logging.

    Raises
    ------
    ValueError
        For an unknown format or level name.
    """
    if fmt not in ("text", "json"):
        msg = f"log format must be 'text' or 'json', got {fmt!r}"
        raise ValueError(msg)
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        msg = f"unknown log level {level!r}; use one of " + ", ".join(sorted(levels))
        raise ValueError(msg)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [old for old in root.handlers if getattr(old, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levels[level.upper()])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True


def _request_id(scope: Scope, generator: random.Random) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_HEADER:
            candidate: str = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    # Ids only need to be unique, not unguessable: a seeded PRNG avoids a syscall per request.
    return f"{generator.getrandbits(128):032x}"


class AccessLogMiddleware:
    """Pure-ASGI request context, ``X-Request-ID`` header and (optional) access log.

    Parameters
    ----------
    app
        The wrapped application.
    snapshot_id
        Called once per request: the id of the snapshot being served (or None).
    log_requests
        Write one access line per request; when False only the context and the
        response header are set.
    exclude
        Exact paths not logged (they still get a request id), e.g. ``/health``.
    logger
        Where access lines go (default ``leaderboard_api.access``).
    """

    __slots__ = ("_app", "_exclude", "_ids", "_log_requests", "_logger", "_snapshot_id")

    def __init__(
        self,
        app: ASGIApp,
        *,
        snapshot_id: Callable[[], str | None] | None = None,
        log_requests: bool = True,
        exclude: Iterable[str] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        self._app = app
        self._snapshot_id = snapshot_id
        self._log_requests = log_requests
        self._exclude = frozenset(exclude)
        self._logger = logging.getLogger(ACCESS_LOGGER) if logger is None else logger
        self._ids = random.Random()  # seeded from os.urandom

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = _request_id(scope, self._ids)
        snapshot = None if self._snapshot_id is None else self._snapshot_id()
        token = _REQUEST.set(RequestContext(request_id, snapshot))
        header = (_REQUEST_ID_HEADER, request_id.encode("latin-1"))
        start = perf_counter()
        status = 0
        size = 0

        async def tagging_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the app may reuse its header list across responses.
                message["headers"] = [*message.get("headers", ()), header]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self._app(scope, receive, tagging_send)
        finally:
            if (
                self._log_requests
                and scope["path"] not in self._exclude
                and self._logger.isEnabledFor(logging.INFO)
            ):
                self._log(scope, status=status or 500, size=size, seconds=perf_counter() - start)
            _REQUEST.reset(token)

    def _log(self, scope: Scope, *, status: int, size: int, seconds: float) -> None:
        extra: dict[str, object] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "size": size,
        }
        target = scope["path"]
        query = scope.get("query_string", b"")
        if query:
            extra["query"] = query.decode("latin-1")
            target = f"{target}?{extra['query']}"
        self._logger.info(
            "%s %s %d %dB %.2fms",
            scope["method"],
            target,
            status,
            size,
            seconds * 1000,
            extra=extra,
        )
