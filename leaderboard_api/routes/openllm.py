"""The Open LLM Leaderboard backend's API (``/api/…``), unchanged, over our snapshot and store.

The paths, parameters and JSON shapes are those of the leaderboard's FastAPI backend
(``backend/app/api/endpoints/{leaderboard,models,votes}.py`` and its README), so its React
frontend runs against this server:

- ``GET /api/leaderboard``: the raw table rows, the ``contents`` dataset's column names
  (``eval_name``, ``Precision``, ``Type``, ``Average ⬆️``, ``IFEval Raw``, ``IFEval``, …);
  ``GET /api/leaderboard/formatted``: each row as ``{id, model, evaluations, features,
  metadata}``, built from the raw row exactly as the backend's ``transform_data`` does
  (its ``.get`` defaults, its model-type clean-up and its ``is_not_available_on_hub``,
  which carries *Available on the hub*).  Both are built once per snapshot of an Open LLM
  dataset (``leaderboard-api import openllm``), served as precomputed bytes with ETags
  (and by the fast path once built); another dataset answers 404.
- ``GET /api/models/status`` (``{pending, evaluating, finished}``), ``GET
  /api/models/pending``, ``POST /api/models/submit``, ``GET /api/models/{model_id}/status``;
  ``POST /api/votes/{model_id}``, ``GET /api/votes/model/{provider}/{model}``, ``GET
  /api/votes/user/{user_id}``: the submissions and votes of the state store, read as
  precomputed bytes keyed by its change counter (``routes/queue.py``).

Mapping the backend's statuses onto the store's: the queue lists put ``pending`` under
*pending* (``PENDING``), ``running`` under *evaluating* (``EVALUATING``) and ``finished``
under *finished* (``FINISHED``); ``failed`` ones are left out, as the backend leaves out
request files of any other status.  A model's status speaks the request files' words:
``PENDING``, ``RUNNING``, ``FINISHED``, ``FAILED`` (``not_found`` when there is none).

Where this differs, deliberately:

- Writes need a credential (scope ``submit`` or ``vote``, e.g. a Hugging Face token with
  ``hf_auth``) whose identity is the body's ``user_id`` (else 403); the backend trusted the
  ``user_id`` it was sent.
- A vote is the store's: one per user and model, a second replaces the first (the backend
  refused a second vote on the same revision with 400).  Votes are per model, so
  ``votes_by_config`` / ``votes_by_revision`` (what the frontend's vote page reads) give
  each queued configuration of the model the model's up-votes.
- A submission is checked by the model check (``routes/queue.py``) instead of loading the
  model; refusals and duplicates (same model, revision and precision) are 400 with the
  reason in ``detail``, as the backend answered a ``ValueError``; errors are problem+json,
  whose ``detail`` is what the frontend shows.  ``use_chat_template`` is not kept, the
  revision is not resolved to a commit, ``job_id`` is the submission's id.
- ``wait_time`` in the queue lists is at most a minute old (the backend cached them 5).
- ``POST /api/votes/model/P/M`` and ``/api/votes/user/U`` are 405 (those are the votes'
  reads), so a model of an organization named ``model`` or ``user`` has no vote route.
- The raw rows carry what the imported table holds: no ``CO₂ cost (kg)``, ``Generation``
  or ``Base Model`` columns (the formatted view then has the backend's defaults), and
  ``Model`` is the plain name, not the contents dataset's HTML link.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Final

import orjson
import polars as pl
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from leaderboard_api.auth import AUTH_RESPONSES, RATE_LIMIT_RESPONSES
from leaderboard_api.dataset.contract import ModelInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.operational.records import Direction, Duplicate, StateError, Submission
from leaderboard_api.problems import PROBLEM_TYPE, problem
from leaderboard_api.routes.queue import (
    HubUnavailable,
    ModelRefused,
    SiblingAllow,
    Submitter,
    Voter,
    actor,
    blocking,
    check_model,
    link_siblings,
    model_check_refusal,
    state_answer,
    store_of,
    written,
)
from leaderboard_api.serving.fastpath import PayloadResponse
from leaderboard_api.serving.payload import Payload
from leaderboard_api.state import AppState, Current, Loaded, State

if TYPE_CHECKING:
    from leaderboard_api.operational.repository import StateStore

__all__ = ["TEMPLATES", "formatted_row", "leaderboard_rows", "router"]

GET = ["GET", "HEAD"]
JSON: Final = "application/json"
#: The queue lists' wait times are as old as this at most (seconds).
WAIT_TIME_STEP: Final = 60

router = APIRouter(tags=["openllm"], route_class=SiblingAllow)

Responses = dict[int | str, dict[str, Any]]


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {}}}


_NOT_OPENLLM: Final[Responses] = {
    404: _problem_doc("The served dataset is not an Open LLM Leaderboard dataset.")
}
_UNAVAILABLE: Final[Responses] = {
    503: _problem_doc("Still loading, no state store (setting `state`), or the Hub unreachable.")
}
_BAD_REQUEST: Final[Responses] = {
    400: _problem_doc("A missing or invalid field, a duplicate, or a refused model.")
}
_WRITE: Final[Responses] = {
    **AUTH_RESPONSES,
    **RATE_LIMIT_RESPONSES,
    **_BAD_REQUEST,
    **_UNAVAILABLE,
}


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One benchmark column pair: the formatted key, its display name, the table column."""

    key: str
    name: str
    column: str


@dataclass(frozen=True, slots=True)
class Version:
    """What an imported Open LLM table holds (``leaderboard-api import openllm``)."""

    benchmark: str
    evaluations: tuple[Evaluation, ...]
    #: Whether the raw scores (``<task> Raw``, metric ``raw``) were imported.
    raw: bool
    #: Whether chat template, highlight and upload date were imported.
    v2_columns: bool


V2: Final = Version(
    "open-llm-leaderboard-v2",
    (
        Evaluation("ifeval", "IFEval", "IFEval"),
        Evaluation("bbh", "BBH", "BBH"),
        Evaluation("math", "MATH Level 5", "MATH Lvl 5"),
        Evaluation("gpqa", "GPQA", "GPQA"),
        Evaluation("musr", "MUSR", "MUSR"),
        Evaluation("mmlu_pro", "MMLU-PRO", "MMLU-PRO"),
    ),
    raw=True,
    v2_columns=True,
)
#: The v1 table, in the same shapes (the backend served v2 only; ``value`` is the score).
V1: Final = Version(
    "open-llm-leaderboard-v1",
    (
        Evaluation("arc", "ARC", "ARC"),
        Evaluation("hellaswag", "HellaSwag", "HellaSwag"),
        Evaluation("mmlu", "MMLU", "MMLU"),
        Evaluation("truthfulqa", "TruthfulQA", "TruthfulQA"),
        Evaluation("winogrande", "Winogrande", "Winogrande"),
        Evaluation("gsm8k", "GSM8K", "GSM8K"),
    ),
    raw=False,
    v2_columns=False,
)
#: The backend's model-type clean-up: these characters go, then the old names are mapped.
_TYPE_STRIP: Final = "🔶🟢🟩💬🤝🌸 "
_FINE_TUNED: Final = "fined-tuned-on-domain-specific-dataset"
_TYPE_NAMES: Final = dict.fromkeys(
    (
        "fine-tuned",
        "fine tuned",
        "finetuned",
        "fine_tuned",
        "ft",
        "finetuning",
        "fine tuning",
        "fine-tuning",
    ),
    _FINE_TUNED,
)


class NotOpenLLM(Exception):
    """The served dataset holds no Open LLM Leaderboard table."""


def version_of(snapshot: Snapshot) -> Version:
    for version in (V2, V1):
        if version.benchmark in snapshot.benchmarks:
            return version
    msg = (
        "the served dataset is not an Open LLM Leaderboard dataset (no benchmark "
        f"{V2.benchmark!r} or {V1.benchmark!r}; see `leaderboard-api import openllm`)"
    )
    raise NotOpenLLM(msg)


Cells = dict[tuple[str, str], float | None]


def _cells(frame: pl.DataFrame, tasks: Sequence[str]) -> Cells:
    """(model entry, task) -> score (the mean, should a cell have several rows)."""
    picked = (
        frame.select(
            pl.col("model_name").cast(pl.String),
            pl.col("task_name").cast(pl.String),
            pl.col("score"),
        )
        .filter(pl.col("task_name").is_in(list(tasks)))
        .group_by("model_name", "task_name")
        .agg(pl.col("score").mean())
    )
    return {(model, task): score for model, task, score in picked.iter_rows()}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _type_text(extras: Mapping[str, Any], info: ModelInfo) -> str:
    """The table's ``Type`` (``"💬 chat models (…)"``): symbol and name, as published."""
    kind = info.model_type[0] if isinstance(info.model_type, list) else info.model_type
    kind = kind or ""
    symbol = extras.get("type_symbol")
    if isinstance(symbol, str) and symbol and kind and not kind.startswith(symbol):
        return f"{symbol} {kind}"
    return kind


def _average(reported: Any, scores: list[float | None]) -> float | None:
    number = _number(reported)
    if number is not None:
        return number
    known = [s for s in scores if s is not None]
    return round(sum(known) / len(scores), 2) if known and len(known) == len(scores) else None


def _row(
    name: str, info: ModelInfo, version: Version, main: Cells, raw: Cells
) -> dict[str, Any] | None:
    extras = info.extras()
    hub = extras.get("model")
    if not isinstance(hub, str):
        return None  # not an entry of the imported table
    precision = str(extras.get("precision") or "unknown")
    params = _number(info.n_parameters)
    scores: dict[str, Any] = {}
    for evaluation in version.evaluations:
        if version.raw:
            scores[f"{evaluation.column} Raw"] = raw.get((name, evaluation.column))
        scores[evaluation.column] = main.get((name, evaluation.column))
    row: dict[str, Any] = {
        "eval_name": f"{hub.replace('/', '_')}_{precision}",
        "Precision": precision,
        "Type": _type_text(extras, info),
        "T": extras.get("type_symbol"),
        "Weight type": extras.get("weight_type"),
        "Architecture": extras.get("architecture"),
        "Model": hub,
        "fullname": hub,
        "Model sha": info.revision,
        "Average ⬆️": _average(
            extras.get("reported_average"),
            [main.get((name, e.column)) for e in version.evaluations],
        ),
        "Hub License": info.license,
        "Hub ❤️": extras.get("likes"),
        # 0 is the published tables' "unknown" (the importer keeps it as null).
        "#Params (B)": round(params / 1e9, 6) if params is not None else 0,
        "Available on the hub": extras.get("available_on_hub"),
        "Merged": extras.get("merged"),
        "MoE": extras.get("moe"),
        "Flagged": extras.get("flagged"),
    }
    if version.v2_columns:
        row["Chat Template"] = extras.get("chat_template")
    row.update(scores)
    if version.v2_columns:
        row["Maintainer's Highlight"] = extras.get("highlighted")
        # The contents dataset's later name of the same column (the formatted view reads it).
        row["Official Providers"] = extras.get("highlighted")
        row["Upload To Hub Date"] = _text(info.release_date)
    row["Submission Date"] = _text(extras.get("submission_date"))
    return row


def leaderboard_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The raw table of an Open LLM snapshot, best average first (then by ``eval_name``).
    Pure; reads the raw scores from the metric store."""
    version = version_of(snapshot)
    tasks = [e.column for e in version.evaluations]
    main = _cells(snapshot.results, tasks)
    raw: Cells = {}
    if version.raw and snapshot.metrics is not None:
        for task in tasks:
            raw.update(_cells(snapshot.metrics.rows(task, "raw"), [task]))
    rows = [
        row
        for name, info in snapshot.models.items()
        if (row := _row(name, info, version, main, raw)) is not None
    ]
    rows.sort(key=lambda r: (r["Average ⬆️"] is None, -(r["Average ⬆️"] or 0.0), r["eval_name"]))
    return rows


def _model_type(original: Any) -> str:
    model_type = str(original or "").lower().strip()
    if "(" in model_type:
        model_type = model_type.split("(")[0].strip()
    model_type = "".join(c for c in model_type if c not in _TYPE_STRIP)
    return _TYPE_NAMES.get(model_type.lower().strip(), model_type)


def formatted_row(data: Mapping[str, Any], version: Version = V2) -> dict[str, Any]:
    """One raw row as the backend's ``transform_data`` formats it (same keys, defaults)."""
    unique_id = (
        f"{data.get('fullname', 'Unknown')}_{data.get('Precision', 'Unknown')}_"
        f"{data.get('Model sha', 'Unknown')}_{data.get('Chat Template', False)!s}"
    )
    evaluations = {
        e.key: {
            "name": e.name,
            "value": data.get(f"{e.column} Raw", 0) if version.raw else data.get(e.column, 0),
            "normalized_score": data.get(e.column, 0),
        }
        for e in version.evaluations
    }
    official = data.get("Official Providers", False)
    return {
        "id": unique_id,
        "model": {
            "name": data.get("fullname"),
            "sha": data.get("Model sha"),
            "precision": data.get("Precision"),
            "type": _model_type(data.get("Type", "")),
            "weight_type": data.get("Weight type"),
            "architecture": data.get("Architecture"),
            "average_score": data.get("Average ⬆️"),
            "has_chat_template": data.get("Chat Template", False),
        },
        "evaluations": evaluations,
        "features": {
            "is_not_available_on_hub": data.get("Available on the hub", False),
            "is_merged": data.get("Merged", False),
            "is_moe": data.get("MoE", False),
            "is_flagged": data.get("Flagged", False),
            # The README's name and the later backend's name of one feature.
            "is_highlighted_by_maintainer": official,
            "is_official_provider": official,
        },
        "metadata": {
            "upload_date": data.get("Upload To Hub Date"),
            "submission_date": data.get("Submission Date"),
            "generation": data.get("Generation"),
            "base_model": data.get("Base Model"),
            "hub_license": data.get("Hub License"),
            "hub_hearts": data.get("Hub ❤️"),
            "params_billions": data.get("#Params (B)"),
            "co2_cost": data.get("CO₂ cost (kg)", 0),
        },
    }


def _rows_of(snapshot: Snapshot) -> list[dict[str, Any]]:
    return snapshot.derived("openllm-rows", leaderboard_rows)


def _raw_body(snapshot: Snapshot) -> bytes:
    return orjson.dumps(_rows_of(snapshot))


def _formatted_body(snapshot: Snapshot) -> bytes:
    version = version_of(snapshot)
    return orjson.dumps([formatted_row(row, version) for row in _rows_of(snapshot)])


async def serve_table(
    request: Request,
    state: AppState,
    loaded: Loaded,
    kind: str,
    body: Callable[[Snapshot], bytes],
) -> Response:
    """A table route's payload: built once per snapshot (single flight, off the loop),
    then aliased so the fast path answers the next request for this path."""
    snapshot = loaded.snapshot
    try:
        version_of(snapshot)
    except NotOpenLLM as exc:
        return problem(404, detail=str(exc), instance=request.url.path)
    key = f"openllm-{kind}\x1f\x1f()\x1f{loaded.fingerprints.of('snapshot')}"

    def build() -> Payload:
        return Payload.build(
            body(snapshot),
            media_type=JSON,
            last_modified=snapshot.updated_at,
            cache_control=state.settings.cache_control,
        )

    payload = await state.cache.get_or_build(key, build, pin=True)
    if loaded is state.loaded and not request.scope.get("query_string"):
        state.routing.routes.setdefault((request.scope["path"], b""), payload)
    return PayloadResponse(payload)


@router.api_route(
    "/api/leaderboard",
    methods=GET,
    response_model=list[dict[str, Any]],
    responses={**_NOT_OPENLLM, **_UNAVAILABLE},
)
async def get_leaderboard(request: Request, state: State, loaded: Current) -> Response:
    """The raw leaderboard rows (the contents dataset's columns)."""
    return await serve_table(request, state, loaded, "raw", _raw_body)


@router.api_route(
    "/api/leaderboard/formatted",
    methods=GET,
    response_model=list[dict[str, Any]],
    responses={**_NOT_OPENLLM, **_UNAVAILABLE},
)
async def get_formatted_leaderboard(request: Request, state: State, loaded: Current) -> Response:
    """The leaderboard rows as ``{id, model, evaluations, features, metadata}``."""
    return await serve_table(request, state, loaded, "formatted", _formatted_body)


# --- the queue ------------------------------------------------------------------------------

#: Store status -> the queue list holding it and the status word the lists carry.
_LISTS: Final = {
    "pending": ("pending", "PENDING"),
    "running": ("evaluating", "EVALUATING"),
    "finished": ("finished", "FINISHED"),
}
#: Store status -> the request files' status word.
_FILE_STATUS: Final = {
    "pending": "PENDING",
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _queue_entry(found: Submission, status: str, now: datetime) -> dict[str, Any]:
    return {
        "name": found.model,
        "submitter": found.submitter,
        "revision": found.revision,
        "wait_time": f"{(now - found.created_at).total_seconds():.1f}s",
        "submission_time": _stamp(found.created_at),
        "status": status,
        "precision": found.precision,
        "model_type": found.model_type,
        "weight_type": found.weight_type,
    }


def _queue(ops: StateStore) -> dict[str, list[dict[str, Any]]]:
    now = datetime.now(UTC)
    lists: dict[str, list[dict[str, Any]]] = {"pending": [], "evaluating": [], "finished": []}
    for found in ops.submissions.list():
        if found.status in _LISTS:
            name, word = _LISTS[found.status]
            lists[name].append(_queue_entry(found, word, now))
    return lists


def _wait_step() -> tuple[Hashable, ...]:
    # Wait times move with the clock: the answer is rebuilt a minute later at most.
    return (int(datetime.now(UTC).timestamp()) // WAIT_TIME_STEP,)


@router.api_route(
    "/api/models/status",
    methods=GET,
    response_model=dict[str, list[dict[str, Any]]],
    responses=_UNAVAILABLE,
)
async def get_models_status(request: Request, state: State) -> Response:
    """Every submission by status: ``{pending, evaluating, finished}``."""
    return await state_answer(
        request, state, "openllm-status", _wait_step(), lambda ops: orjson.dumps(_queue(ops))
    )


@router.api_route(
    "/api/models/pending",
    methods=GET,
    response_model=list[dict[str, Any]],
    responses=_UNAVAILABLE,
)
async def get_pending_models(request: Request, state: State) -> Response:
    """The submissions waiting for evaluation."""
    return await state_answer(
        request,
        state,
        "openllm-pending",
        _wait_step(),
        lambda ops: orjson.dumps(_queue(ops)["pending"]),
    )


class _BadField(ValueError):
    """A submission or vote field that is missing or of the wrong type."""


def _optional(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        msg = f"{name} must be a string"
        raise _BadField(msg)
    return value


def _required(data: Mapping[str, Any], name: str, *, missing: str | None = None) -> str:
    value = _optional(data, name)
    if value is None:
        raise _BadField(missing or f"Missing required field: {name}")
    return value


def _not_you(user_id: str, name: str, request: Request) -> Response:
    return problem(
        403,
        detail=f"user_id {user_id!r} is not the authenticated user {name!r}",
        instance=request.url.path,
    )


@router.post("/api/models/submit", response_model=dict[str, str], responses=_WRITE)
async def submit_model(
    request: Request,
    state: State,
    identity: Submitter,
    model_data: Annotated[dict[str, Any], Body()],
) -> Response:
    """Queue a model: ``{user_id, model_id, base_model?, revision?, precision?, model_type,
    weight_type?}``; the submitter's up-vote is recorded with it, as the backend did."""
    ops = store_of(state)
    path = request.url.path
    try:
        user_id = _required(model_data, "user_id", missing="user_id is required")
        model_id = _required(model_data, "model_id")
        model_type = _required(model_data, "model_type")
        revision = _optional(model_data, "revision")
        precision = _optional(model_data, "precision")
        base_model = _optional(model_data, "base_model")
        weight_type = _optional(model_data, "weight_type")
    except _BadField as exc:
        return problem(400, detail=str(exc), instance=path)
    if user_id != identity.name:
        return _not_you(user_id, identity.name, request)
    try:
        await check_model(state, model_id, revision)
    except ModelRefused as exc:
        return problem(400, detail=str(exc), instance=path)
    except HubUnavailable as exc:
        return model_check_refusal(exc, request)
    by = actor(request, identity)
    call = partial(
        ops.submissions.submit,
        model_id,
        by=by,
        revision=revision,
        precision=precision,
        model_type=model_type,
        base_model=base_model,
        weight_type=weight_type,
    )
    try:
        created = await blocking(call)
    except Duplicate as exc:
        return problem(400, detail=await _duplicate_text(ops, exc), instance=path)
    except StateError as exc:
        return problem(400, detail=str(exc), instance=path)
    # The submission stands should its vote fail, as it did in the backend.
    with contextlib.suppress(StateError):
        await blocking(partial(ops.votes.cast, created.model, "up", by=by))
    message = "The model was submitted successfully, and the vote has been recorded"
    return written(request, {"status": "success", "message": message})


async def _duplicate_text(ops: StateStore, exc: Duplicate) -> str:
    if exc.existing_id is None:
        return str(exc)
    try:
        existing = await blocking(partial(ops.submissions.get, exc.existing_id))
    except StateError:
        return str(exc)
    where = _LISTS.get(existing.status, (existing.status, ""))[0]
    return (
        f"Model {existing.model} revision {existing.revision} is already in the system "
        f"with status: {where}"
    )


ModelId = Annotated[str, Path(description="The model's hub name (org/model).")]


@router.api_route(
    "/api/models/{model_id:path}/status",
    methods=GET,
    response_model=dict[str, Any],
    responses=_UNAVAILABLE,
)
async def get_model_status(request: Request, state: State, model_id: ModelId) -> Response:
    """The newest submission of a model: ``{status, submitted_time, job_id}``, or
    ``{status: "not_found"}``."""

    def body(ops: StateStore) -> bytes:
        found = [s for s in ops.submissions.list() if s.model == model_id]
        if not found:
            return orjson.dumps({"status": "not_found"})
        newest = max(found, key=lambda s: (s.created_at, s.id))
        return orjson.dumps(
            {
                "status": _FILE_STATUS[newest.status],
                "submitted_time": _stamp(newest.created_at),
                "job_id": newest.id,
            }
        )

    return await state_answer(request, state, "openllm-model-status", (model_id,), body)


# --- votes ----------------------------------------------------------------------------------


def _model_votes(ops: StateStore, model: str) -> bytes:
    counts = ops.votes.counts(model)
    configs: dict[str, dict[str, Any]] = {}
    revisions: dict[str, int] = {}
    for found in ops.submissions.list():
        if found.model == model and found.status != "failed":
            configs[f"{found.revision}_{found.precision}"] = {
                "revision": found.revision,
                "precision": found.precision,
                "count": counts.up,
            }
            revisions[found.revision] = counts.up
    return orjson.dumps(
        {
            "total_votes": counts.total,
            "up_votes": counts.up,
            "down_votes": counts.down,
            "votes_by_revision": revisions,
            "votes_by_config": configs,
        }
    )


@router.api_route(
    "/api/votes/model/{provider}/{model}",
    methods=GET,
    response_model=dict[str, Any],
    responses=_UNAVAILABLE,
)
async def get_model_votes(request: Request, state: State, provider: str, model: str) -> Response:
    """A model's votes: ``{total_votes, up_votes, down_votes}`` and, per queued
    configuration, ``votes_by_config`` / ``votes_by_revision``."""
    name = f"{provider}/{model}"
    return await state_answer(
        request, state, "openllm-model-votes", (name,), lambda ops: _model_votes(ops, name)
    )


@router.api_route(
    "/api/votes/user/{user_id}",
    methods=GET,
    response_model=list[dict[str, Any]],
    responses=_UNAVAILABLE,
)
async def get_user_votes(request: Request, state: State, user_id: str) -> Response:
    """A user's votes: ``[{model, model_id, vote_type, timestamp, username}]``."""

    def body(ops: StateStore) -> bytes:
        return orjson.dumps(
            [
                {
                    "model": vote.model,
                    "model_id": vote.model,
                    "vote_type": vote.direction,
                    "timestamp": _stamp(vote.updated_at),
                    "username": vote.identity,
                }
                for vote in ops.votes.of_user(user_id)
            ]
        )

    return await state_answer(request, state, "openllm-user-votes", (user_id,), body)


# After the reads: this route's {model_id:path} matches their paths too, and the first
# route matching a path names the methods a 405 there allows.


def _not_a_vote_path(model_id: ModelId) -> None:
    """POST on the paths of the votes' GET routes (which this route's ``{model_id:path}``
    also matches) is 405, before credentials are asked for."""
    if _READ_PATHS.fullmatch(model_id):
        raise HTTPException(405, headers={"Allow": "GET, HEAD"})


_READ_PATHS: Final = re.compile(r"model/[^/]+/[^/]+|user/[^/]+")


@router.post(
    "/api/votes/{model_id:path}",
    response_model=dict[str, Any],
    responses={
        **_WRITE,
        422: _problem_doc("vote_type or user_id missing (query or JSON body)."),
        405: _problem_doc("POST on a path of the votes' reads (model/P/M, user/U)."),
    },
)
async def add_vote(
    request: Request,
    state: State,
    _path: Annotated[None, Depends(_not_a_vote_path)],
    identity: Voter,
    model_id: ModelId,
    vote_type: Annotated[str | None, Query(description="up or down")] = None,
    user_id: Annotated[str | None, Query(description="the voter's user name")] = None,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> Response:
    """Vote on a model: ``vote_type`` and ``user_id`` in the query (as the frontend sends
    them) or in a JSON body; a body's ``precision``/``revision`` are accepted and unused."""
    ops = store_of(state)
    path = request.url.path
    given = body or {}
    try:
        vote_type = vote_type or _optional(given, "vote_type")
        user_id = user_id or _optional(given, "user_id")
    except _BadField as exc:
        return problem(400, detail=str(exc), instance=path)
    missing = [n for n, v in (("vote_type", vote_type), ("user_id", user_id)) if not v]
    if missing or vote_type is None or user_id is None:
        errors = [{"parameter": n, "in": "query", "message": "Field required"} for n in missing]
        detail = f"parameter {missing[0]!r}: Field required"
        return problem(422, detail=detail, instance=path, extra={"errors": errors})
    if user_id != identity.name:
        return _not_you(user_id, identity.name, request)
    if vote_type not in ("up", "down"):
        return problem(
            400, detail=f"vote_type must be 'up' or 'down', not {vote_type!r}", instance=path
        )
    direction: Direction = "up" if vote_type == "up" else "down"
    call = partial(ops.votes.cast, model_id, direction, by=actor(request, identity))
    try:
        await blocking(call)
    except StateError as exc:
        return problem(400, detail=str(exc), instance=path)
    return written(
        request, {"success": True, "status": "success", "message": "Vote added successfully"}
    )


link_siblings(router)

#: The route templates of this module, for metric and span labels.
TEMPLATES: tuple[str, ...] = tuple(
    dict.fromkeys(route.path for route in router.routes if isinstance(route, APIRoute))
)
