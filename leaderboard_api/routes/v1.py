"""The /v1 routes: validate parameters, then serve a cached Payload built from the snapshot."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from leaderboard_api import schemas
from leaderboard_api.auth.dependencies import auth_context
from leaderboard_api.auth.ratelimit import COLD_BUILDS
from leaderboard_api.payloads import ROUTES, builder, content_key, route_fingerprint
from leaderboard_api.queries import ModelQuery, TaskQuery
from leaderboard_api.scoring.errors import BadParameter
from leaderboard_api.scoring.standings import check_buckets
from leaderboard_api.serving.fastpath import PayloadResponse
from leaderboard_api.state import AppState, Current, Loaded, State

MAX_BUCKETS = 8
GET = ["GET", "HEAD"]

router = APIRouter(tags=["v1"])


async def serve(
    request: Request,
    state: AppState,
    loaded: Loaded,
    kind: str,
    name: str = "",
    *,
    params: tuple[Hashable, ...] = (),
    arg: Any = None,
) -> Response:
    """Answer from the cache: the payload of (route, name, params) under the fingerprint of
    what it reads, built once however many clients ask."""
    spec = ROUTES[kind]
    key = content_key(
        spec, name, params, route_fingerprint(loaded.fingerprints, spec, name, params)
    )
    # Unparameterized routes stay in memory, except the long tail when a store backs it.
    pin = not params and not (spec.long_tail and state.store is not None)
    if params and state.cache.get_ready(key) is None and not state.cache.building(key):
        # A cold parameterized build costs up to half a second of CPU: counted per
        # client address (429 with Retry-After over the limit); waiting on a build
        # already running, or a cached answer, costs nothing and is not counted.
        context = auth_context(request)
        if context.limiter is not None:
            address = context.client_address(request.scope)
            await context.limiter.check(COLD_BUILDS, address)
    build = builder(state, loaded, spec, name, arg, key)
    payload = await state.cache.get_or_build(key, build, pin=pin)
    # Alias the raw spelling so the next identical request takes the fast path.
    if loaded is state.loaded:
        raw = (request.scope["path"], request.scope.get("query_string", b""))
        if pin and not raw[1]:
            state.routing.routes.setdefault(raw, payload)
        else:
            state.routing.keys.remember(raw, key)
    return PayloadResponse(payload)


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


# --- benchmarks ---------------------------------------------------------------------------


def _path(kind: str, index: int = 0) -> str:
    return ROUTES[kind].paths[index]


@router.api_route(_path("benchmarks"), methods=GET, response_model=list[schemas.BenchmarkOut])
async def list_benchmarks(
    request: Request, state: State, loaded: Current, include_hidden: str | None = None
) -> Response:
    allow_params(request, "include_hidden")
    hidden = bool(_truthy(include_hidden, name="include_hidden"))
    params = (hidden,) if hidden else ()
    return await serve(request, state, loaded, "benchmarks", params=params, arg=hidden)


@router.api_route(_path("menu"), methods=GET, response_model=list[schemas.MenuGroupOut])
async def benchmark_menu(request: Request, state: State, loaded: Current) -> Response:
    allow_params(request)
    return await serve(request, state, loaded, "menu")


Languages = Annotated[
    list[str] | None, Query(description="codes or names; repeat or comma-separate")
]


async def _by_languages(
    request: Request, state: AppState, loaded: Loaded, kind: str, name: str, languages: Languages
) -> Response:
    allow_params(request, "languages")
    views = loaded.views
    name = views.canonical_benchmark(name)
    langs = views.normalize_languages(split_list(languages))
    params = (langs,) if langs else ()
    return await serve(request, state, loaded, kind, name, params=params, arg=langs)


@router.api_route(
    _path("benchmark-csv"),
    methods=GET,
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def benchmark_scores_csv(
    request: Request, state: State, loaded: Current, name: str, languages: Languages = None
) -> Response:
    return await _by_languages(request, state, loaded, "benchmark-csv", name, languages)


@router.api_route(_path("benchmark-scores"), methods=GET, response_model=schemas.ScoresOut)
async def benchmark_scores(
    request: Request, state: State, loaded: Current, name: str, languages: Languages = None
) -> Response:
    return await _by_languages(request, state, loaded, "benchmark-scores", name, languages)


@router.api_route(_path("benchmark-scores", 1), methods=GET, response_model=schemas.ScoresOut)
async def benchmark_summary(
    request: Request, state: State, loaded: Current, name: str, languages: Languages = None
) -> Response:
    return await _by_languages(request, state, loaded, "benchmark-scores", name, languages)


@router.api_route(
    _path("benchmark-per-language"), methods=GET, response_model=schemas.PerLanguageOut
)
async def benchmark_per_language(
    request: Request, state: State, loaded: Current, name: str
) -> Response:
    allow_params(request)
    name = loaded.views.canonical_benchmark(name)
    return await serve(request, state, loaded, "benchmark-per-language", name)


@router.api_route(_path("benchmark-leaders"), methods=GET, response_model=schemas.LeadersOut)
async def benchmark_leaders(
    request: Request,
    state: State,
    loaded: Current,
    name: str,
    buckets: Annotated[
        str | None, Query(description="JSON list of [min, max|null] in millions of parameters")
    ] = None,
) -> Response:
    allow_params(request, "buckets")
    name = loaded.views.canonical_benchmark(name)
    parsed = parse_buckets(buckets)
    params = (parsed,) if parsed is not None else ()
    return await serve(request, state, loaded, "benchmark-leaders", name, params=params, arg=parsed)


@router.api_route(_path("benchmark"), methods=GET, response_model=schemas.BenchmarkDetailOut)
async def benchmark_detail(request: Request, state: State, loaded: Current, name: str) -> Response:
    allow_params(request)
    name = loaded.views.canonical_benchmark(name)
    return await serve(request, state, loaded, "benchmark", name)


# --- tasks --------------------------------------------------------------------------------


ListParam = Annotated[list[str] | None, Query(description="repeat or comma-separate")]


@router.api_route(_path("tasks"), methods=GET, response_model=list[schemas.TaskOut])
async def list_tasks(
    request: Request,
    state: State,
    loaded: Current,
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
    views = loaded.views
    wanted = split_list(languages) + ((language,) if language else ())
    query = TaskQuery(
        types=split_list(types) + ((type,) if type else ()),
        languages=views.normalize_languages(wanted) if wanted else (),
        domains=split_list(domains) + ((domain,) if domain else ()),
        modalities=split_list(modalities),
        categories=split_list(categories),
        name=name or None,
    )
    return await serve(request, state, loaded, "tasks", params=query.key(), arg=query)


@router.api_route(
    _path("task-stats"),
    methods=GET,
    response_model=dict[str, Any],
    responses={404: {"description": "unknown task, or a task without descriptive statistics"}},
)
async def task_statistics(request: Request, state: State, loaded: Current, name: str) -> Response:
    """The task's descriptive statistics per split, as the catalog exported them."""
    allow_params(request)
    loaded.views.require_task(name)
    loaded.views.require_statistics(name)
    return await serve(request, state, loaded, "task-stats", name)


@router.api_route(_path("task-scores"), methods=GET, response_model=schemas.TaskScoresOut)
async def task_scores(
    request: Request,
    state: State,
    loaded: Current,
    name: str,
    metric: Annotated[
        str | None, Query(description="another metric than the task's main one")
    ] = None,
) -> Response:
    allow_params(request, "metric")
    views = loaded.views
    views.require_task(name)
    chosen = views.require_metric(name, metric) if metric else None
    params = (("metric", chosen),) if chosen else ()
    return await serve(request, state, loaded, "task-scores", name, params=params, arg=chosen)


@router.api_route(_path("task"), methods=GET, response_model=schemas.TaskOut)
async def task_detail(request: Request, state: State, loaded: Current, name: str) -> Response:
    allow_params(request)
    loaded.views.require_task(name)
    return await serve(request, state, loaded, "task", name)


# --- models -------------------------------------------------------------------------------


@router.api_route(_path("models"), methods=GET, response_model=list[schemas.ModelOut])
async def list_models(
    request: Request,
    state: State,
    loaded: Current,
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
    return await serve(request, state, loaded, "models", params=query.key(), arg=query)


@router.api_route(_path("model-scores"), methods=GET, response_model=schemas.ModelScoresOut)
async def model_scores(request: Request, state: State, loaded: Current, name: str) -> Response:
    allow_params(request)
    model = loaded.views.require_model(name)
    return await serve(request, state, loaded, "model-scores", model.name)


@router.api_route(_path("model"), methods=GET, response_model=schemas.ModelOut)
async def model_detail(request: Request, state: State, loaded: Current, name: str) -> Response:
    allow_params(request)
    model = loaded.views.require_model(name)
    return await serve(request, state, loaded, "model", model.name)
