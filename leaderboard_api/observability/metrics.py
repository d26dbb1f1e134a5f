"""Prometheus metrics: a per-app registry, route templates and a pure-ASGI request counter.

Every series lives in a :class:`Metrics` object's own ``CollectorRegistry`` (never the
global default one), so each app (and each test) starts from zero.

Hot path
    :class:`MetricsMiddleware` sits outside the fast path and sees every HTTP request.
    Its series (``http_*``) and the cache hit counters are plain Python ints and lists
    updated without locks and turned into metric families only at scrape time: a
    ``prometheus_client`` histogram observe costs about 2.5 µs, this about 0.4 µs.  They
    are updated from the event loop thread only (ASGI apps and the cache's hooks run
    there); everything else (builds, snapshot, reloads) uses ordinary, thread-safe
    ``prometheus_client`` objects.

Cardinality
    The ``route`` label is a route template (``/v1/benchmarks/{name}/scores``, see
    :class:`~leaderboard_api.observability.routes.RouteTemplates`) or ``<unmatched>``,
    never a raw path; ``method`` is one of the HTTP methods or ``OTHER``.

``/metrics`` is counted like any other route (its scrapes show up under
``route="/metrics"``); pass ``exclude=("/metrics",)`` to leave it out.

Processes
    Metrics are kept in process: the service runs one uvicorn worker per replica and
    scales by replicas.  prometheus_client's multiprocess mode is not supported, and
    :func:`check_multiprocess_env` refuses to start when ``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from time import perf_counter
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard_api.observability.routes import RouteTemplates
from leaderboard_api.serving.fastpath import FastPath

__all__ = [
    "DURATION_BUCKETS",
    "CacheSizes",
    "Metrics",
    "MetricsMiddleware",
    "MultiprocessModeError",
    "check_multiprocess_env",
    "render_metrics",
]


#: Request duration buckets (seconds): fast-path answers take well under a millisecond.
DURATION_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BUILD_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
_CACHE_REQUEST_RESULTS: Final = frozenset({"hit", "miss", "coalesced"})
#: Most (method, raw path, status) keys the middleware remembers series for.
_BY_PATH_LIMIT: Final = 4096


class MultiprocessModeError(RuntimeError):
    """``PROMETHEUS_MULTIPROC_DIR`` is set, but metrics are kept in one process."""


def check_multiprocess_env(environ: MutableMapping[str, str] | None = None) -> None:
    """Refuse prometheus_client's multiprocess mode (one worker per replica is the design).

    Raises
    ------
    MultiprocessModeError
        If ``PROMETHEUS_MULTIPROC_DIR`` (or its old lowercase spelling) is set.
    """
    env = os.environ if environ is None else environ
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        if env.get(name):
            msg = (
                f"{name}={env[name]!r} is set, but leaderboard-api keeps its metrics in "
                "process and runs one uvicorn worker per replica; unset it and scale "
                "with replicas instead of workers"
            )
            raise MultiprocessModeError(msg)


class _Hist:
    """Lock-free histogram: per-bucket counts (last one is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "labels", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.labels = _le_labels(bounds)

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for label, count in zip(self.labels, self.counts, strict=True):
            total += count
            out.append((label, total))
        return out


def _le_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    values = (*bounds, float("inf"))
    return tuple(floatToGoString(value) for value in values)  # type: ignore[no-untyped-call]


class _Series:
    """Everything one (method, route, status) request updates."""

    __slots__ = ("bytes", "count", "duration")

    def __init__(self, duration: _Hist) -> None:
        self.count = 0
        self.bytes = 0
        self.duration = duration

    def observe(self, seconds: float, size: int) -> None:
        # MetricsMiddleware inlines this body: keep the two in step.
        self.count += 1
        self.bytes += size
        hist = self.duration
        hist.counts[bisect_left(hist.bounds, seconds)] += 1
        hist.sum += seconds


class CacheSizes(Protocol):
    """What :meth:`Metrics.watch_cache` reads at scrape time (e.g. ``PayloadCache.stats``)."""

    @property
    def pinned_entries(self) -> int: ...
    @property
    def pinned_bytes(self) -> int: ...
    @property
    def lru_entries(self) -> int: ...
    @property
    def lru_bytes(self) -> int: ...
    @property
    def inflight(self) -> int: ...


class Metrics:
    """All the service's metrics, in a registry owned by this object (one per app).

    Parameters
    ----------
    registry
        Where to register; a fresh ``CollectorRegistry`` when None.
    process_metrics
        Also export ``process_*`` (CPU, memory, file descriptors), ``python_gc_*`` and
        ``python_info``; they are read at scrape time only.
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, process_metrics: bool = True
    ) -> None:
        check_multiprocess_env()
        self.registry = CollectorRegistry() if registry is None else registry
        self.in_flight = 0
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._durations: dict[tuple[str, str], _Hist] = {}
        self._cache_counts: dict[tuple[str, str], int] = {}
        #: Cache hits by layer: the event of every fast-path request, kept apart from
        #: ``_cache_counts`` so that counting one builds no key.
        self._cache_hits: dict[str, int] = {}
        self._cache_reader: Callable[[], CacheSizes] | None = None
        self._snapshot: str | None = None
        reg = self.registry
        self.build_seconds = Histogram(
            "leaderboard_payload_build_seconds",
            "Time to build one response payload (scoring, encoding, compression).",
            ["kind"],
            buckets=BUILD_BUCKETS,
            registry=reg,
        )
        self.dataset_info = Gauge(
            "leaderboard_dataset_info",
            "The snapshot being served (value 1).",
            ["snapshot"],
            registry=reg,
        )
        self.dataset_rows = Gauge(
            "leaderboard_dataset_rows", "Result rows in the served snapshot.", registry=reg
        )
        self.warmup_seconds = Gauge(
            "leaderboard_warmup_seconds", "Duration of the last warmup.", registry=reg
        )
        self.reloads = Counter(
            "leaderboard_reloads", "Dataset reload attempts by result.", ["result"], registry=reg
        )
        reg.register(_HotCollector(self))
        if process_metrics:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)

    def record(self, *, method: str, route: str, status: int, seconds: float, size: int) -> None:
        """Count one finished HTTP request (event loop thread only)."""
        series = self._series.get((method, route, status))
        if series is None:
            series = self._new_series(method, route, status)
        series.observe(seconds, size)

    def _new_series(self, method: str, route: str, status: int) -> _Series:
        duration = self._durations.get((method, route))
        if duration is None:
            duration = self._durations[(method, route)] = _Hist(DURATION_BUCKETS)
        series = self._series[(method, route, status)] = _Series(duration)
        return series

    def requests_total(self) -> int:
        """HTTP requests counted so far (fast path included): the build scheduler's load
        signal."""
        return sum(series.count for series in list(self._series.values()))

    def cache_event(self, layer: str, result: str) -> None:
        """Count a cache event; fits ``PayloadCache(on_event=...)`` (event loop thread only).

        ``hit``, ``miss`` and ``coalesced`` go to ``leaderboard_cache_requests_total``;
        other events (``evicted``, ``error``, ``oversize``) to ``leaderboard_cache_events_total``.
        """
        if result == "hit":
            hits = self._cache_hits
            hits[layer] = hits.get(layer, 0) + 1
            return
        key = (layer, result)
        self._cache_counts[key] = self._cache_counts.get(key, 0) + 1

    def watch_cache(self, read: Callable[[], CacheSizes]) -> None:
        """Export entries, bytes and builds in flight from ``read()`` at each scrape."""
        self._cache_reader = read

    def observe_build(self, kind: str, seconds: float) -> None:
        """Record one payload build; fits ``PayloadCache(on_build=...)``; any thread."""
        self.build_seconds.labels(kind).observe(seconds)

    def set_snapshot(self, snapshot_id: str, rows: int) -> None:
        """Publish the served snapshot; the previous snapshot's series is removed."""
        previous, self._snapshot = self._snapshot, snapshot_id
        if previous is not None and previous != snapshot_id:
            self.dataset_info.remove(previous)
        self.dataset_info.labels(snapshot_id).set(1)
        self.dataset_rows.set(rows)

    def set_warmup(self, seconds: float) -> None:
        """Record how long the last warmup took."""
        self.warmup_seconds.set(seconds)

    def reload(self, result: str) -> None:
        """Count a reload attempt (``result`` such as ``ok``, ``unchanged``, ``error``)."""
        self.reloads.labels(result).inc()

    def collect_hot(self) -> Iterator[Metric]:
        """Metric families of the lock-free series (used by the registry at scrape time)."""
        requests = CounterMetricFamily(
            "http_requests", "HTTP requests by method, route and status.",
            labels=["method", "route", "status"],
        )  # fmt: skip
        for (method, route, status), series in list(self._series.items()):
            requests.add_metric([method, route, str(status)], series.count)
        yield requests
        durations = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time from request to the last body byte handed to the server.",
            labels=["method", "route"],
        )
        for (method, route), hist in list(self._durations.items()):
            durations.add_metric([method, route], hist.cumulative(), hist.sum)
        yield durations
        # A summary (count and sum per route): response sizes of a route barely vary, and
        # this costs one addition per request where histogram buckets would cost a search.
        size_count: dict[str, int] = {}
        size_sum: dict[str, int] = {}
        for (_, route, _), series in list(self._series.items()):
            size_count[route] = size_count.get(route, 0) + series.count
            size_sum[route] = size_sum.get(route, 0) + series.bytes
        sizes = SummaryMetricFamily(
            "http_response_size_bytes", "Response body bytes sent (0 for HEAD and 304).",
            labels=["route"],
        )  # fmt: skip
        for route, count in size_count.items():
            sizes.add_metric([route], count_value=count, sum_value=size_sum[route])
        yield sizes
        yield GaugeMetricFamily(
            "http_requests_in_flight", "HTTP requests being answered.", value=self.in_flight
        )
        yield from self._collect_cache()

    def _collect_cache(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "leaderboard_cache_requests", "Payload cache lookups by layer and result.",
            labels=["layer", "result"],
        )  # fmt: skip
        events = CounterMetricFamily(
            "leaderboard_cache_events", "Payload cache evictions, build errors, oversize.",
            labels=["layer", "event"],
        )  # fmt: skip
        for layer, count in list(self._cache_hits.items()):
            lookups.add_metric([layer, "hit"], count)
        for (layer, result), count in list(self._cache_counts.items()):
            family = lookups if result in _CACHE_REQUEST_RESULTS else events
            family.add_metric([layer, result], count)
        yield lookups
        yield events
        entries = GaugeMetricFamily(
            "leaderboard_cache_entries", "Payloads held, by layer.", labels=["layer"]
        )
        nbytes = GaugeMetricFamily(
            "leaderboard_cache_bytes", "Bytes held (all codings), by layer.", labels=["layer"]
        )
        building = GaugeMetricFamily(
            "leaderboard_cache_builds_in_flight", "Payload builds running now."
        )
        if self._cache_reader is not None:
            sizes = self._cache_reader()
            entries.add_metric(["pinned"], sizes.pinned_entries)
            entries.add_metric(["lru"], sizes.lru_entries)
            nbytes.add_metric(["pinned"], sizes.pinned_bytes)
            nbytes.add_metric(["lru"], sizes.lru_bytes)
            building.add_metric([], sizes.inflight)
        yield from (entries, nbytes, building)


class _HotCollector:
    """Registry adapter for :meth:`Metrics.collect_hot`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.collect_hot()

    def describe(self) -> Iterable[Metric]:
        # Only the family names matter here; they do not depend on what was counted.
        return list(self._metrics.collect_hot())


def render_metrics(metrics: Metrics, *, accept: str | None = None) -> tuple[bytes, str]:
    """Return the exposition body and its content type (OpenMetrics if ``accept`` asks)."""
    if accept is not None and "application/openmetrics-text" in accept:
        body: bytes = openmetrics.generate_latest(metrics.registry)  # type: ignore[no-untyped-call]
        return body, openmetrics.CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure-ASGI middleware counting every HTTP request that passes through it.

    Put it outermost (outside the fast path) so prebuilt responses, 304s, HEADs and
    errors raised or answered by inner layers are all counted.  Status comes from
    ``http.response.start`` (500 when the app fails before starting a response); size is
    the sum of body chunks actually sent; duration runs until the last body chunk has
    been handed to the server (background tasks after it are not counted).

    Parameters
    ----------
    app
        The wrapped application.
    metrics
        Where to count.
    templates
        Maps ``scope["path"]`` (minus ``root_path``) to the ``route`` label.
    exclude
        Exact paths not counted at all (default: none; ``/metrics`` is counted).
    """

    __slots__ = ("_app", "_by_path", "_exclude", "_match", "_metrics", "_prebuilt")

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        templates: RouteTemplates,
        exclude: Sequence[str] = (),
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._match = templates.match
        self._exclude = frozenset(exclude)
        # Directly around the fast path, its answers are sent from here and counted
        # without a wrapped send (a closure and two calls per request saved).
        self._prebuilt = app.prebuilt if isinstance(app, FastPath) else None
        self._by_path: dict[tuple[str, str, int], _Series] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):  # app_path, inlined
            path = path[len(root) :]
        if self._exclude and path in self._exclude:
            await self._app(scope, receive, send)
            return
        start = perf_counter()
        prebuilt = self._prebuilt
        if prebuilt is not None:
            try:
                found = prebuilt(scope)
            except BaseException:
                self._count(scope["method"], path, 500, perf_counter() - start, 0)
                raise
            if found is not None:
                status, headers, body = found
                metrics = self._metrics
                size = 0
                end = 0.0
                metrics.in_flight += 1
                try:
                    await send(
                        {"type": "http.response.start", "status": status, "headers": headers}
                    )
                    size = len(body)
                    end = perf_counter()  # as counting_send: when the last chunk is handed over
                    await send({"type": "http.response.body", "body": body})
                finally:
                    metrics.in_flight -= 1
                    seconds = (end or perf_counter()) - start
                    # Keyed by the raw path: no template match per request.
                    key = (scope["method"], path, status)
                    series = self._by_path.get(key)
                    if series is None:
                        series = self._series_by_path(key)
                    # _Series.observe, inlined: this runs for every fast-path request.
                    series.count += 1
                    series.bytes += size
                    hist = series.duration
                    hist.counts[bisect_left(hist.bounds, seconds)] += 1
                    hist.sum += seconds
                return
        metrics = self._metrics
        end = 0.0
        status = 0
        size = 0
        start_message: Message | None = None

        # A plain function returning the server's awaitable: no coroutine of its own.
        def counting_send(message: Message) -> Awaitable[None]:
            nonlocal end, status, size, start_message
            kind = message["type"]
            if kind == "http.response.body":
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    end = perf_counter()
            elif kind == "http.response.start":
                status = message["status"]
                start_message = message
            elif kind == "http.response.pathsend":
                if start_message is not None:
                    size += _content_length(start_message)
                end = perf_counter()
            return send(message)

        metrics.in_flight += 1
        try:
            await self._app(scope, receive, counting_send)
        finally:
            metrics.in_flight -= 1
            self._count(scope["method"], path, status or 500, (end or perf_counter()) - start, size)

    def _series_by_path(self, key: tuple[str, str, int]) -> _Series:
        """The series of a (method, raw path, status), remembered for the fast path."""
        method, path, status = key
        route_key = (method if method in _METHODS else "OTHER", self._match(path), status)
        series = self._metrics._series.get(route_key)
        if series is None:
            series = self._metrics._new_series(*route_key)
        by_path = self._by_path
        if len(by_path) >= _BY_PATH_LIMIT:
            by_path.clear()  # a memo of series kept in Metrics: clearing loses no count
        by_path[key] = series
        return series

    def _count(self, method: str, path: str, status: int, seconds: float, size: int) -> None:
        key = (method if method in _METHODS else "OTHER", self._match(path), status)
        series = self._metrics._series.get(key)
        if series is None:
            series = self._metrics._new_series(*key)
        # _Series.observe, inlined: this runs for every request.
        series.count += 1
        series.bytes += size
        hist = series.duration
        hist.counts[bisect_left(hist.bounds, seconds)] += 1
        hist.sum += seconds


def _content_length(message: Message) -> int:
    """The Content-Length of a response start, 0 if absent (only needed for ``pathsend``)."""
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return 0
