"""The /v1 routes: validate parameters, then serve a cached Payload built from the snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic_core import to_json
from starlette.responses import Response

from leaderboard_api import schemas
from leaderboard_api.lifecycle import AppState, Loaded, NotReady
from leaderboard_api.queries import ModelQuery, TaskQuery
from leaderboard_api.scoring.errors import BadParameter
from leaderboard_api.scoring.views import check_buckets
from leaderboard_api.serving.fastpath import PayloadResponse
from leaderboard_api.serving.payload import Payload
from leaderboard_api.views import Views

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
MAX_BUCKETS = 8
GET = ["GET", "HEAD"]

router = APIRouter(prefix="/v1", tags=["v1"])


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.lb
    return state


def _loaded(request: Request) -> Loaded:
    """The snapshot being served and its views; NotReady (503) before the first load."""
    loaded = _state(request).loaded
    if loaded is None:
        raise NotReady
    return loaded


def _views(request: Request) -> Views:
    views: Views = _loaded(request).views
    return views


def encode(obj: Any) -> bytes:
    """Schemas (or lists of them) to JSON bytes, camelCase, in field order."""
    return to_json(obj, by_alias=True)


#: Routes of the long tail (one per task or model): their identity bodies are decoded from
#: zstd when a client accepts no coding, instead of being held (most of the payload memory).
LONG_TAIL = frozenset({"task", "task-scores", "task-stats", "model", "model-scores"})


def make_payload(
    state: AppState,
    views: Views,
    body: bytes,
    *,
    media_type: str = JSON,
    extra: Any = (),
    route: str = "",
) -> Payload:
    """The one way a /v1 body becomes a Payload (handlers, warmup and export share it)."""
    return Payload.build(
        body,
        media_type=media_type,
        last_modified=views.snapshot.updated_at,
        cache_control=state.settings.cache_control,
        extra_headers=extra,
        keep_identity=route.split(":")[0] not in LONG_TAIL,
    )


async def serve(
    request: Request,
    *,
    route: str,
    params: tuple[Hashable, ...],
    build: Callable[[Views], bytes],
    media_type: str = JSON,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """Answer from the cache, building once per (snapshot, route, normalized params)."""
    state = _state(request)
    loaded = _loaded(request)
    snapshot_id = loaded.snapshot.id
    views: Views = loaded.views
    key = (snapshot_id, route, params)

    def run() -> Payload:
        started = time.perf_counter()
        with state.span("payload.build", route=route.split(":")[0], snapshot=snapshot_id):
            body = build(views)
            payload = make_payload(
                state, views, body, media_type=media_type, extra=extra_headers, route=route
            )
        if state.metrics is not None:
            state.metrics.observe_build(route.split(":")[0], time.perf_counter() - started)
        return payload

    payload = await state.cache.get_or_build(key, run, pin=not params)
    # Alias the raw spelling so the next identical request takes the fast path.
    raw = (snapshot_id, request.scope["path"], request.scope.get("query_string", b""))
    if raw != key and state.cache.get_ready(raw) is None:
        state.cache.put(raw, payload, pin=not params and not raw[2])
    return PayloadResponse(payload)


def csv_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".csv"


def _truthy(value: str | None, *, name: str) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadParameter(name, value, "expected true or false")


def split_list(values: list[str] | None) -> tuple[str, ...]:
    """Repeated or comma-separated query values as one flat tuple."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)


def parse_buckets(raw: str | None) -> tuple[tuple[float, float | None], ...] | None:
    """``[[min, max|null], ...]`` from JSON, at most MAX_BUCKETS; ranges checked by scoring."""
    if raw is None or raw.strip() == "":
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadParameter("buckets", raw, "expected JSON like [[0,500],[500,null]]") from exc
    if not isinstance(parsed, list) or not parsed:
        raise BadParameter("buckets", raw, "expected a non-empty JSON list of [min, max] pairs")
    if len(parsed) > MAX_BUCKETS:
        raise BadParameter("buckets", raw, f"at most {MAX_BUCKETS} buckets, got {len(parsed)}")

    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    for item in parsed:
        if not (isinstance(item, list) and len(item) == 2 and number(item[0])) or not (
            item[1] is None or number(item[1])
        ):
            raise BadParameter("buckets", item, "each bucket is [min, max or null]")
    return check_buckets(parsed)


def allow_params(request: Request, *names: str) -> None:
    """Refuse a query parameter the route does not take (a typo must not silently match all)."""
    for key in request.query_params:
        if key not in names:
            accepted = ", ".join(names) if names else "none"
            raise BadParameter(
                key, request.query_params[key], f"unknown query parameter (accepted: {accepted})"
            )


def _present(*pairs: tuple[str, Hashable]) -> tuple[tuple[str, Hashable], ...]:
    """The (name, value) pairs of the parameters a request gave: its cache-key part."""
    return tuple((name, value) for name, value in pairs if value is not None and value != "")


# --- benchmarks ---------------------------------------------------------------------------


@router.api_route("/benchmarks", methods=GET, response_model=list[schemas.BenchmarkOut])
async def list_benchmarks(request: Request, include_hidden: str | None = None) -> Response:
    allow_params(request, "include_hidden")
    hidden = bool(_truthy(include_hidden, name="include_hidden"))
    return await serve(
        request,
        route="benchmarks",
        params=(hidden,) if hidden else (),
        build=lambda v: encode(v.benchmarks(include_hidden=hidden)),
    )


@router.api_route("/benchmarks/menu", methods=GET, response_model=list[schemas.MenuGroupOut])
async def benchmark_menu(request: Request) -> Response:
    allow_params(request)
    return await serve(request, route="menu", params=(), build=lambda v: encode(v.menu()))


def _languages(
    languages: Annotated[
        list[str] | None, Query(description="codes or names; repeat or comma-separate")
    ],
    views: Views,
) -> tuple[str, ...]:
    return views.normalize_languages(split_list(languages))


@router.api_route(
    "/benchmarks/{name:path}/scores.csv",
    methods=GET,
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def benchmark_scores_csv(
    request: Request, name: str, languages: Annotated[list[str] | None, Query()] = None
) -> Response:
    allow_params(request, "languages")
    views = _views(request)
    name = views.canonical_benchmark(name)
    langs = _languages(languages, views)
    return await serve(
        request,
        route=f"benchmark-csv:{name}",
        params=(langs,) if langs else (),
        build=lambda v: v.scores_csv(name, languages=langs),
        media_type=CSV,
        extra_headers=(("content-disposition", f'attachment; filename="{csv_filename(name)}"'),),
    )


async def _scores(request: Request, name: str, languages: list[str] | None) -> Response:
    allow_params(request, "languages")
    views = _views(request)
    name = views.canonical_benchmark(name)
    langs = _languages(languages, views)
    return await serve(
        request,
        route=f"benchmark-scores:{name}",
        params=(langs,) if langs else (),
        build=lambda v: encode(v.scores(name, languages=langs)),
    )


@router.api_route("/benchmarks/{name:path}/scores", methods=GET, response_model=schemas.ScoresOut)
async def benchmark_scores(
    request: Request, name: str, languages: Annotated[list[str] | None, Query()] = None
) -> Response:
    return await _scores(request, name, languages)


@router.api_route("/benchmarks/{name:path}/summary", methods=GET, response_model=schemas.ScoresOut)
async def benchmark_summary(
    request: Request, name: str, languages: Annotated[list[str] | None, Query()] = None
) -> Response:
    return await _scores(request, name, languages)


@router.api_route(
    "/benchmarks/{name:path}/per-language", methods=GET, response_model=schemas.PerLanguageOut
)
async def benchmark_per_language(request: Request, name: str) -> Response:
    allow_params(request)
    name = _views(request).canonical_benchmark(name)
    return await serve(
        request,
        route=f"benchmark-per-language:{name}",
        params=(),
        build=lambda v: encode(v.per_language(name)),
    )


@router.api_route("/benchmarks/{name:path}/leaders", methods=GET, response_model=schemas.LeadersOut)
async def benchmark_leaders(
    request: Request,
    name: str,
    buckets: Annotated[
        str | None, Query(description="JSON list of [min, max|null] in millions of parameters")
    ] = None,
) -> Response:
    allow_params(request, "buckets")
    name = _views(request).canonical_benchmark(name)
    parsed = parse_buckets(buckets)
    return await serve(
        request,
        route=f"benchmark-leaders:{name}",
        params=(parsed,) if parsed is not None else (),
        build=lambda v: encode(v.leaders(name, buckets=parsed)),
    )


@router.api_route("/benchmarks/{name:path}", methods=GET, response_model=schemas.BenchmarkDetailOut)
async def benchmark_detail(request: Request, name: str) -> Response:
    allow_params(request)
    name = _views(request).canonical_benchmark(name)
    return await serve(
        request, route=f"benchmark:{name}", params=(), build=lambda v: encode(v.benchmark(name))
    )


# --- tasks --------------------------------------------------------------------------------


ListParam = Annotated[list[str] | None, Query(description="repeat or comma-separate")]


@router.api_route("/tasks", methods=GET, response_model=list[schemas.TaskOut])
async def list_tasks(
    request: Request,
    types: ListParam = None,
    languages: ListParam = None,
    domains: ListParam = None,
    modalities: ListParam = None,
    categories: ListParam = None,
    name: str | None = None,
    type: str | None = None,
    language: str | None = None,
    domain: str | None = None,
) -> Response:
    """Tasks, filtered: every facet given must match, any of a facet's values
    (``type``, ``language``, ``domain`` are one-value spellings of the list facets)."""
    allow_params(
        request,
        "types",
        "languages",
        "domains",
        "modalities",
        "categories",
        "name",
        "type",
        "language",
        "domain",
    )
    views = _views(request)
    wanted = split_list(languages) + ((language,) if language else ())
    query = TaskQuery(
        types=split_list(types) + ((type,) if type else ()),
        languages=views.normalize_languages(wanted) if wanted else (),
        domains=split_list(domains) + ((domain,) if domain else ()),
        modalities=split_list(modalities),
        categories=split_list(categories),
        name=name or None,
    )
    return await serve(
        request, route="tasks", params=query.key(), build=lambda v: encode(v.tasks(query))
    )


@router.api_route(
    "/tasks/{name:path}/descriptive_statistics",
    methods=GET,
    response_model=dict[str, Any],
    responses={404: {"description": "unknown task, or a task without descriptive statistics"}},
)
async def task_statistics(request: Request, name: str) -> Response:
    """The task's descriptive statistics per split, as the catalog exported them."""
    allow_params(request)
    views = _views(request)
    views.require_task(name)
    views.require_statistics(name)
    return await serve(
        request,
        route=f"task-stats:{name}",
        params=(),
        build=lambda v: v.task_statistics(name),
    )


@router.api_route("/tasks/{name:path}/scores", methods=GET, response_model=schemas.TaskScoresOut)
async def task_scores(
    request: Request,
    name: str,
    metric: Annotated[
        str | None, Query(description="another metric than the task's main one")
    ] = None,
) -> Response:
    allow_params(request, "metric")
    views = _views(request)
    views.require_task(name)
    chosen = views.require_metric(name, metric) if metric else None
    return await serve(
        request,
        route=f"task-scores:{name}",
        params=(("metric", chosen),) if chosen else (),
        build=lambda v: encode(v.task_scores(name, metric=chosen)),
    )


@router.api_route("/tasks/{name:path}", methods=GET, response_model=schemas.TaskOut)
async def task_detail(request: Request, name: str) -> Response:
    allow_params(request)
    _views(request).require_task(name)
    return await serve(
        request, route=f"task:{name}", params=(), build=lambda v: encode(v.task(name))
    )


# --- models -------------------------------------------------------------------------------


@router.api_route("/models", methods=GET, response_model=list[schemas.ModelOut])
async def list_models(
    request: Request,
    model_types: ListParam = None,
    frameworks: ListParam = None,
    modalities: ListParam = None,
    open_weights: str | None = None,
    instruction_tuned: str | None = None,
    exclusive_modality: str | None = None,
    min_params_b: Annotated[float | None, Query(ge=0)] = None,
    max_params_b: Annotated[float | None, Query(ge=0)] = None,
    name: str | None = None,
    type: str | None = None,
) -> Response:
    """Models, filtered: every facet given must match, any of a facet's values (``type`` is
    a one-value spelling of ``model_types``)."""
    allow_params(
        request,
        "model_types",
        "frameworks",
        "modalities",
        "open_weights",
        "instruction_tuned",
        "exclusive_modality",
        "min_params_b",
        "max_params_b",
        "name",
        "type",
    )
    if min_params_b is not None and max_params_b is not None and max_params_b < min_params_b:
        raise BadParameter("max_params_b", max_params_b, "must be >= min_params_b")
    query = ModelQuery(
        model_types=split_list(model_types) + ((type,) if type else ()),
        frameworks=split_list(frameworks),
        modalities=split_list(modalities),
        open_weights=_truthy(open_weights, name="open_weights"),
        instruction_tuned=_truthy(instruction_tuned, name="instruction_tuned"),
        exclusive_modality=bool(_truthy(exclusive_modality, name="exclusive_modality")),
        min_params_b=min_params_b,
        max_params_b=max_params_b,
        name=name or None,
    )
    return await serve(
        request, route="models", params=query.key(), build=lambda v: encode(v.models(query))
    )


@router.api_route("/models/{name:path}/scores", methods=GET, response_model=schemas.ModelScoresOut)
async def model_scores(request: Request, name: str) -> Response:
    allow_params(request)
    _views(request).require_model(name)
    return await serve(
        request,
        route=f"model-scores:{name}",
        params=(),
        build=lambda v: encode(v.model_scores(name)),
    )


@router.api_route("/models/{name:path}", methods=GET, response_model=schemas.ModelOut)
async def model_detail(request: Request, name: str) -> Response:
    allow_params(request)
    _views(request).require_model(name)
    return await serve(
        request, route=f"model:{name}", params=(), build=lambda v: encode(v.model(name))
    )


#: Route templates (for metrics and tracing labels), most specific first.
TEMPLATES = (
    "/v1/benchmarks",
    "/v1/benchmarks/menu",
    "/v1/benchmarks/{name:path}/scores.csv",
    "/v1/benchmarks/{name:path}/scores",
    "/v1/benchmarks/{name:path}/summary",
    "/v1/benchmarks/{name:path}/per-language",
    "/v1/benchmarks/{name:path}/leaders",
    "/v1/benchmarks/{name:path}",
    "/v1/tasks",
    "/v1/tasks/{name:path}/descriptive_statistics",
    "/v1/tasks/{name:path}/scores",
    "/v1/tasks/{name:path}",
    "/v1/models",
    "/v1/models/{name:path}/scores",
    "/v1/models/{name:path}",
    "/v1/icon/{name:path}",
)
