"""The route table: every cached /v1 route declared once, and the warm plan built from it.

A :class:`RouteSpec` names a route's kind (the cache key's first part), its path
templates, what builds its body from the views, its media type and download file name,
what its bytes depend on (a fingerprint scope, see ``fingerprints.py``) and when warmup
builds it.  The handlers (``routes/v1.py``), the warm plan, the static export, the metric
and trace labels and build timing all read this table.

Content keys
    A payload is cached and stored under ``kind \\x1f name \\x1f params \\x1f fingerprint``:
    what it is and what it read, not which snapshot it came from.  A new snapshot whose
    fingerprint for a route is unchanged finds the old payload under the same key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import to_json

from leaderboard_api.fingerprints import Fingerprints, Scope
from leaderboard_api.queries import ModelQuery, TaskQuery
from leaderboard_api.serving.payload import Payload

if TYPE_CHECKING:
    from leaderboard_api.resources import Views
    from leaderboard_api.state import AppState, Loaded

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
Phase = Literal["ready", "background", "never"]
Build = Callable[["Views", str, Any], bytes]


def encode(obj: Any) -> bytes:
    """Schemas (or lists of them) to JSON bytes, camelCase, in field order."""
    return to_json(obj, by_alias=True)


def csv_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".csv"


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One cached route (see the module docstring)."""

    kind: str
    #: Path templates, the first canonical (``{name:path}`` is the benchmark/task/model).
    paths: tuple[str, ...]
    build: Build
    scope: Scope
    media_type: str = JSON
    #: ``Content-Disposition`` file name for a download, from the route's name.
    download: Callable[[str], str] | None = None
    #: One page per task or model: held on disk (or as zstd only), not in memory.
    long_tail: bool = False
    warm: Phase = "background"

    @property
    def path(self) -> str:
        return self.paths[0]

    def headers(self, name: str) -> tuple[tuple[str, str], ...]:
        if self.download is None:
            return ()
        return (("content-disposition", f'attachment; filename="{self.download(name)}"'),)

    def urls(self, name: str) -> tuple[str, ...]:
        return tuple(p.replace("{name:path}", name) for p in self.paths)


def _spec(
    kind: str,
    paths: str | tuple[str, ...],
    build: Build,
    scope: Scope,
    **options: Any,
) -> RouteSpec:
    return RouteSpec(kind, (paths,) if isinstance(paths, str) else paths, build, scope, **options)


def _benchmarks(v: Views, _: str, hidden: Any) -> bytes:
    return encode(v.benchmarks(include_hidden=bool(hidden)))


def _tasks(v: Views, _: str, query: Any) -> bytes:
    return encode(v.tasks(query if isinstance(query, TaskQuery) else None))


def _models(v: Views, _: str, query: Any) -> bytes:
    return encode(v.models(query if isinstance(query, ModelQuery) else None))


B = "/v1/benchmarks/{name:path}"
ROUTES: dict[str, RouteSpec] = {
    spec.kind: spec
    for spec in (
        _spec("benchmarks", "/v1/benchmarks", _benchmarks, "all", warm="ready"),
        _spec("menu", "/v1/benchmarks/menu", lambda v, n, a: encode(v.menu()), "all", warm="ready"),
        _spec("tasks", "/v1/tasks", _tasks, "all", warm="ready"),
        _spec("models", "/v1/models", _models, "all", warm="ready"),
        _spec(
            "benchmark-csv",
            f"{B}/scores.csv",
            lambda v, n, langs: v.scores_csv(n, languages=langs or ()),
            "benchmark",
            media_type=CSV,
            download=csv_filename,
        ),
        _spec(
            "benchmark-scores",
            (f"{B}/scores", f"{B}/summary"),
            lambda v, n, langs: encode(v.scores(n, languages=langs or ())),
            "benchmark",
            warm="ready",
        ),
        _spec(
            "benchmark-per-language",
            f"{B}/per-language",
            lambda v, n, a: encode(v.per_language(n)),
            "benchmark",
        ),
        _spec(
            "benchmark-leaders",
            f"{B}/leaders",
            lambda v, n, buckets: encode(v.leaders(n, buckets=buckets)),
            "benchmark",
        ),
        _spec("benchmark", B, lambda v, n, a: encode(v.benchmark(n)), "benchmark", warm="ready"),
        _spec(
            "task-stats",
            "/v1/tasks/{name:path}/descriptive_statistics",
            lambda v, n, a: v.task_statistics(n),
            "task-stats",
            long_tail=True,
            warm="never",
        ),
        _spec(
            "task-scores",
            "/v1/tasks/{name:path}/scores",
            lambda v, n, metric: encode(v.task_scores(n, metric=metric)),
            "task",
            long_tail=True,
        ),
        _spec(
            "task",
            "/v1/tasks/{name:path}",
            lambda v, n, a: encode(v.task(n)),
            "task",
            long_tail=True,
        ),
        _spec(
            "model-scores",
            "/v1/models/{name:path}/scores",
            lambda v, n, a: encode(v.model_scores(n)),
            "model",
            long_tail=True,
        ),
        _spec(
            "model",
            "/v1/models/{name:path}",
            lambda v, n, a: encode(v.model(n)),
            "model",
            long_tail=True,
        ),
    )
}

#: Route templates of the table and the other /v1 routes, for metric and span labels.
TEMPLATES: tuple[str, ...] = (
    *(path for spec in ROUTES.values() for path in spec.paths),
    "/v1/icon/{name:path}",
)


def content_key(spec: RouteSpec, name: str, params: tuple[Hashable, ...], fingerprint: str) -> str:
    """The cache and store key of one payload (see the module docstring)."""
    return f"{spec.kind}\x1f{name}\x1f{params!r}\x1f{fingerprint}"


def fingerprint_of(key: str) -> str:
    """The fingerprint part of a content key."""
    return key.rsplit("\x1f", 1)[-1]


def route_fingerprint(
    fingerprints: Fingerprints, spec: RouteSpec, name: str, params: tuple[Hashable, ...]
) -> str:
    """What a route reads; a parameter the scopes do not track pins it to the snapshot."""
    if spec.kind == "task-scores" and params:
        return fingerprints.of("snapshot")  # ?metric= reads the metric store
    return fingerprints.of(spec.scope, name)


def make_payload(
    state: AppState, loaded: Loaded, spec: RouteSpec, name: str, body: bytes
) -> Payload:
    """The one way a /v1 body becomes a Payload (handlers, warmup and export share it)."""
    return Payload.build(
        body,
        media_type=spec.media_type,
        last_modified=loaded.snapshot.updated_at,
        cache_control=state.settings.cache_control,
        extra_headers=spec.headers(name),
        keep_identity=not spec.long_tail,
    )


def builder(
    state: AppState,
    loaded: Loaded,
    spec: RouteSpec,
    name: str,
    arg: Any,
    key: str,
) -> Callable[[], Payload]:
    """A blocking callable giving the payload: from the store when it holds ``key``, else
    built (timed, traced, counted) and stored."""

    def run() -> Payload:
        store = state.store
        if store is not None:
            stored = store.get(key)
            if stored is not None:
                return stored
        started = time.perf_counter()
        with state.span("payload.build", route=spec.kind, snapshot=loaded.snapshot.id):
            body = spec.build(loaded.views, name, arg)
            payload = make_payload(state, loaded, spec, name, body)
        if state.metrics is not None:
            state.metrics.observe_build(spec.kind, time.perf_counter() - started)
        if store is not None and not key.endswith(f"snapshot:{loaded.snapshot.id}"):
            store.put(key, payload)
        return payload

    return run


@dataclass(frozen=True, slots=True)
class WarmItem:
    """One unparameterized route of a snapshot: its content key and URL paths."""

    spec: RouteSpec
    name: str
    key: str
    paths: tuple[str, ...]

    @property
    def phase(self) -> Phase:
        return self.spec.warm


def warm_plan(views: Views, fingerprints: Fingerprints) -> list[WarmItem]:
    """Every unparameterized route of a snapshot, the ``ready`` ones first."""
    aliases: dict[str, list[str]] = {}
    for alias, canonical in sorted(views.aliases.items()):
        aliases.setdefault(canonical, []).append(alias)
    names: dict[Scope, list[str]] = {
        "benchmark": views.benchmark_names(),
        "task": views.task_names(),
        "model": views.model_names(),
    }

    def items() -> Iterator[WarmItem]:
        for spec in ROUTES.values():
            if spec.warm == "never":
                continue
            if spec.scope == "all":
                yield WarmItem(
                    spec, "", content_key(spec, "", (), fingerprints.of("all")), spec.paths
                )
                continue
            for name in names[spec.scope]:
                key = content_key(spec, name, (), fingerprints.of(spec.scope, name))
                spellings = [name, *aliases.get(name, [])] if spec.scope == "benchmark" else [name]
                urls = [url for n in spellings for url in spec.urls(n)]
                yield WarmItem(spec, name, key, tuple(urls))

    plan = list(items())
    return [i for i in plan if i.phase == "ready"] + [i for i in plan if i.phase != "ready"]
