"""Observability: Prometheus metrics, OpenTelemetry tracing and structured logs.

Suggested wrapping order, outermost first: ``MetricsMiddleware`` (sees every request and
measures everything inside it), ``TracingMiddleware`` (so access lines can carry the trace
id), ``AccessLogMiddleware``, then the fast path and the framework.  Each piece is
optional and takes its state (``Metrics``, ``TracingHandle``) from the app factory.
"""

from leaderboard_api.observability.logs import (
    AccessLogMiddleware,
    JsonFormatter,
    RequestContext,
    TextFormatter,
    current_request,
    setup_logging,
)
from leaderboard_api.observability.metrics import (
    DURATION_BUCKETS,
    CacheSizes,
    Metrics,
    MetricsMiddleware,
    MultiprocessModeError,
    check_multiprocess_env,
    render_metrics,
)
from leaderboard_api.observability.routes import UNMATCHED, RouteTemplates
from leaderboard_api.observability.tracing import (
    DEFAULT_EXCLUDED_PATHS,
    TracingHandle,
    TracingMiddleware,
    setup_tracing,
    span,
    tracing_exporters,
)

__all__ = [
    "DEFAULT_EXCLUDED_PATHS",
    "DURATION_BUCKETS",
    "UNMATCHED",
    "AccessLogMiddleware",
    "CacheSizes",
    "JsonFormatter",
    "Metrics",
    "MetricsMiddleware",
    "MultiprocessModeError",
    "RequestContext",
    "RouteTemplates",
    "TextFormatter",
    "TracingHandle",
    "TracingMiddleware",
    "check_multiprocess_env",
    "current_request",
    "render_metrics",
    "setup_logging",
    "setup_tracing",
    "span",
    "tracing_exporters",
]
