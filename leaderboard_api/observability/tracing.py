"""OpenTelemetry tracing: a provider owned by the app, OTLP/HTTP export, an ASGI wrapper, spans.

Configuration is the standard ``OTEL_*`` environment, read by :func:`setup_tracing`:

- Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
  is set, or ``OTEL_TRACES_EXPORTER`` names ``otlp`` (or ``console``); it is off when
  ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.
- Spans go over OTLP/HTTP protobuf to ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else
  to ``$OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces`` (default ``http://localhost:4318``); the
  exporter resolves this itself, so no endpoint is passed to it.  ``OTEL_EXPORTER_OTLP_*``
  headers, timeout, compression and ``OTEL_BSP_*`` batching settings apply as usual.
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the service (default
  ``leaderboard-api``); ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` pick the
  sampler (the SDK reads them when the provider gets no explicit sampler; default
  ``parentbased_always_on``).

The provider is not installed globally: each app (and each test) owns its own, and
:meth:`TracingHandle.shutdown` flushes and closes it.  :class:`TracingMiddleware` (from
:meth:`TracingHandle.middleware`) gives each HTTP request one server span named after its
route template and continues incoming W3C ``traceparent`` headers through the global
propagator (``OTEL_PROPAGATORS``, default tracecontext); :func:`span` adds manual spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

from opentelemetry import context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, set_span_in_context
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard_api import __version__
from leaderboard_api.observability.routes import UNMATCHED, RouteTemplates, app_path

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "TracingHandle",
    "TracingMiddleware",
    "setup_tracing",
    "span",
    "tracing_exporters",
]


#: Paths never traced: probes and scrapes would drown the interesting spans.
DEFAULT_EXCLUDED_PATHS: Final = ("/health", "/ready", "/metrics")
_SUPPORTED_EXPORTERS: Final = frozenset({"otlp", "console"})
_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
_logger = logging.getLogger(__name__)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def tracing_exporters() -> list[str]:
    """Which span exporters the environment asks for (``[]`` means tracing is off)."""
    if _env_true("OTEL_SDK_DISABLED"):
        return []
    named = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        asked = [name.strip() for name in named.split(",") if name.strip()]
        if "none" in asked:
            return []
        for name in asked:
            if name not in _SUPPORTED_EXPORTERS:
                _logger.warning("OTEL_TRACES_EXPORTER=%s is not supported here; ignored", name)
        return [name for name in asked if name in _SUPPORTED_EXPORTERS]
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return ["otlp"]
    return []


def _resource(service_name_default: str) -> Resource:
    detected = Resource.create()
    name = detected.attributes.get(SERVICE_NAME)
    if not isinstance(name, str) or name.startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: service_name_default}))
    return detected


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if protocol and protocol != "http/protobuf":
        _logger.warning("OTLP protocol %r is not available; using http/protobuf", protocol)
    # No endpoint argument: the exporter then appends /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT
    # (and uses OTEL_EXPORTER_OTLP_TRACES_ENDPOINT verbatim), as the specification says.
    return OTLPSpanExporter()


class TracingHandle:
    """A tracer provider owned by one app: its tracer, ASGI wrapper and shutdown.

    Use :func:`setup_tracing` to make one from the environment.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("leaderboard_api", __version__)
        self._closed = False

    @contextmanager
    def span(self, name: str, /, **attributes: AttributeValue) -> Iterator[Span]:
        """Run the block in a new span (a child of the current one, if any)."""
        with self.tracer.start_as_current_span(name, attributes=attributes) as current:
            yield current

    def middleware(
        self,
        app: ASGIApp,
        *,
        templates: RouteTemplates,
        exclude: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
    ) -> TracingMiddleware:
        """Wrap ``app`` so each HTTP request gets a server span named after its route.

        ``exclude`` paths (default ``/health``, ``/ready``, ``/metrics``) get no span.
        """
        return TracingMiddleware(app, handle=self, templates=templates, exclude=exclude)

    def shutdown(self) -> None:
        """Export every finished span, then stop the provider (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.provider.force_flush()
        self.provider.shutdown()


def setup_tracing(service_name_default: str = "leaderboard-api") -> TracingHandle | None:
    """Build a tracer provider from the ``OTEL_*`` environment, or None when tracing is off.

    Call it at startup (not at import) and call :meth:`TracingHandle.shutdown` at exit.
    """
    exporters = tracing_exporters()
    if not exporters:
        return None
    # No sampler argument: the SDK reads OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
    provider = TracerProvider(resource=_resource(service_name_default), shutdown_on_exit=False)
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return TracingHandle(provider)


@contextmanager
def span(
    handle: TracingHandle | None, name: str, /, **attributes: AttributeValue
) -> Iterator[Span | None]:
    """``with span(handle, "dataset.load", source=...)``: a span, or nothing when tracing is off."""
    if handle is None:
        yield None
        return
    with handle.span(name, **attributes) as current:
        yield current


class TracingMiddleware:
    """Pure-ASGI server spans: one SERVER span per HTTP request, named after its route.

    The span is named ``"GET /v1/benchmarks/{name}/scores"`` with ``http.route`` set (just
    ``"GET"`` and no route for paths no template matches), continues the caller's context
    (``traceparent`` through the global propagator), and carries the stable HTTP semantic
    convention attributes; 5xx answers and exceptions mark it as an error.  The span is
    current while the app runs, so manual spans and cache builds nest under it, and an
    unsampled request's children stay unsampled.

    Why not ``opentelemetry-instrumentation-asgi``: it costs about 38 µs per request even
    when the request is not sampled (attribute collection, URL rebuilding, its own
    metrics), which cut a 38k req/s fast path to 9k req/s at 1 % sampling.  This does the
    minimum for unsampled requests (about 5 µs) and the full attribute set for sampled ones.
    """

    __slots__ = ("_app", "_exclude", "_fields", "_match", "_tracer")

    def __init__(
        self,
        app: ASGIApp,
        *,
        handle: TracingHandle,
        templates: RouteTemplates,
        exclude: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
    ) -> None:
        self._app = app
        self._tracer = handle.tracer
        self._match = templates.match
        self._exclude = frozenset(exclude)
        self._fields = frozenset(name.lower().encode() for name in get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = app_path(scope)
        if path in self._exclude:
            await self._app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        user_agent: str | None = None
        fields = self._fields
        for name, value in scope["headers"]:
            if name in fields:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        method: str = scope["method"]
        known = method if method in _METHODS else "_OTHER"
        route = self._match(path)
        attributes: dict[str, AttributeValue] = {
            "http.request.method": known,
            "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
        }
        if route == UNMATCHED:
            name = "HTTP" if known == "_OTHER" else known
        else:
            name = f"{'HTTP' if known == '_OTHER' else known} {route}"
            attributes["http.route"] = route
        parent = extract(carrier) if carrier else None
        server_span = self._tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = context.attach(set_span_in_context(server_span, parent))
        try:
            if not server_span.is_recording():
                await self._app(scope, receive, send)
                return
            _request_attributes(server_span, scope, method=method, user_agent=user_agent)
            await self._traced(server_span, scope, receive, send)
        finally:
            context.detach(token)

    async def _traced(self, server_span: Span, scope: Scope, receive: Receive, send: Send) -> None:
        ended = False

        async def traced_send(message: Message) -> None:
            nonlocal ended
            kind = message["type"]
            if kind == "http.response.start":
                status: int = message["status"]
                server_span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    server_span.set_attribute("error.type", str(status))
                    server_span.set_status(StatusCode.ERROR)
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                ended = True
                server_span.end()

        try:
            await self._app(scope, receive, traced_send)
        except BaseException as exc:
            if not ended:
                server_span.record_exception(exc)
                server_span.set_attribute("error.type", type(exc).__qualname__)
                server_span.set_status(StatusCode.ERROR, str(exc))
            raise
        finally:
            if not ended:
                server_span.end()


def _request_attributes(span_: Span, scope: Scope, *, method: str, user_agent: str | None) -> None:
    """The attributes only sampled requests pay for."""
    if method not in _METHODS:
        span_.set_attribute("http.request.method_original", method)
    server = scope.get("server")
    if server and server[1] is not None:
        span_.set_attribute("server.address", str(server[0]))
        span_.set_attribute("server.port", int(server[1]))
    client = scope.get("client")
    if client:
        span_.set_attribute("client.address", str(client[0]))
    query: bytes = scope.get("query_string", b"")
    if query:
        span_.set_attribute("url.query", query.decode("latin-1"))
    if user_agent is not None:
        span_.set_attribute("user_agent.original", user_agent)
    span_.set_attribute("network.protocol.version", str(scope.get("http_version", "1.1")))
