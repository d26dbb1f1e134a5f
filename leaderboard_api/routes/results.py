"""POST /v1/results: ingest a batch of results as a new dataset version (scope ``ingest``).

The body is a parquet file (``application/vnd.apache.parquet`` or ``application/octet-stream``)
or JSON (``application/json``): a list of rows in the dataset contract's long format, or
``{"rows": [...], "models": [...], "tasks": [...]}`` with catalog entries for new models and
tasks.  :mod:`leaderboard_api.dataset.writer` checks it as the loader checks a dataset and
writes it (a commit, and a push, when the dataset is a git work tree).  Then the route asks
for a reload and waits, up to :data:`RELOAD_WAIT` seconds, for the new snapshot to be swapped
in (not for its warmup), so the client's next read serves what it wrote.

Errors are problem+json: 422 for rows or entries the contract refuses (naming the file,
column and rows), 409 for a catalog entry that differs from the served one or a dataset that
takes no writes (the embedded sample, a hub source), 413 over ``ingest_max_bytes``, 415 for
another media type, 400 for a body that is not JSON, 503 when the commit or push failed.
Nothing is written on any of them.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from leaderboard_api.auth import AUTH_RESPONSES, Identity, require
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.writer import (
    Batch,
    CatalogConflict,
    GitOptions,
    IngestResult,
    NotWritable,
    WriteFailed,
    batch_from_json,
    batch_from_parquet,
    ingest,
    writable_root,
)
from leaderboard_api.operational.records import Actor
from leaderboard_api.problems import PROBLEM_TYPE, problem
from leaderboard_api.routes.queue import actor, written
from leaderboard_api.schemas import Schema
from leaderboard_api.settings import Settings
from leaderboard_api.state import AppState, ReloadOutcome, State

if TYPE_CHECKING:
    from leaderboard_api.operational.repository import StateStore

__all__ = ["RELOAD_WAIT", "TEMPLATES", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["results"])
Ingester = Annotated[Identity, Depends(require("ingest"))]

#: Seconds the answer waits for the reload that swaps in the new version.
RELOAD_WAIT: Final = 10.0
#: Where the errors of a body say the bad input is.
SOURCE: Final = "request body"
JSON_TYPES: Final = frozenset({"application/json"})
PARQUET_TYPES: Final = frozenset(
    {"application/vnd.apache.parquet", "application/x-parquet", "application/octet-stream"}
)
#: Seconds a client waits after a failed commit or push (another writer may hold the remote).
RETRY_AFTER: Final = 5


class IngestOut(Schema):
    """What an ingest wrote and the dataset version that holds it."""

    version: str
    file: str
    rows: int
    models: list[str]
    tasks: list[str]
    created: bool
    commit: str | None = None
    pushed: bool = False
    #: The snapshot served once the reload swapped it in (None: not within the wait).
    served: str | None = None


def _doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {}}}


_BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
_JSON_BODY: Final = {
    "schema": {
        "oneOf": [
            {"type": "array", "items": {"type": "object"}},
            {
                "type": "object",
                "properties": {
                    "rows": {"type": "array", "items": {"type": "object"}},
                    "models": {"type": "array", "items": {"type": "object"}},
                    "tasks": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["rows"],
                "additionalProperties": False,
            },
        ]
    }
}
REQUEST_BODY: Final = {
    "required": True,
    "description": "A results file (parquet) or JSON rows in the dataset contract's long "
    "format (model_name, task_name, score, ...), optionally with catalog entries.",
    "content": {
        "application/json": _JSON_BODY,
        "application/vnd.apache.parquet": _BINARY,
        "application/octet-stream": _BINARY,
    },
}


def _git_options(settings: Settings) -> GitOptions:
    return GitOptions(
        author_name=settings.ingest_git_author_name,
        author_email=settings.ingest_git_author_email,
        push_retries=settings.ingest_push_retries,
    )


class _BadBody(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BadBody(413, f"the body is larger than {limit} bytes (setting ingest_max_bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            msg = f"the body is larger than {limit} bytes (setting ingest_max_bytes)"
            raise _BadBody(413, msg)
        chunks.append(chunk)
    return b"".join(chunks)


def _batch(media: str, body: bytes) -> Batch:
    """Blocking: the body as a checked batch (DatasetError when the contract refuses it)."""
    if media in PARQUET_TYPES:
        return batch_from_parquet(body, source=SOURCE)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _BadBody(400, f"the body is not JSON: {exc}") from None
    return batch_from_json(doc, source=SOURCE)


def _refused(exc: DatasetError, path: str) -> Response:
    status = 409 if isinstance(exc, CatalogConflict) else 422
    extra: dict[str, Any] = {
        "file": exc.file,
        "column": exc.column,
        "rows": [str(e) for e in exc.examples],
        "errors": [{"parameter": exc.column, "in": "body", "message": exc.message}],
    }
    if exc.hint:
        extra["hint"] = exc.hint
    return problem(status, detail=exc.render(), instance=path, extra=extra)


def _audit(ops: StateStore, by: Actor, result: IngestResult) -> None:
    """One audit row for the ingest (blocking)."""
    detail = {
        "version": result.version,
        "rows": result.rows,
        "created": result.created,
        "models": list(result.models),
        "tasks": list(result.tasks),
    }
    ops.record("results.ingest", result.file, by=by, detail=detail)


@router.post(
    "/v1/results",
    status_code=201,
    response_model=IngestOut,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        **AUTH_RESPONSES,
        200: {"description": "The same rows and entries were there already: nothing written."},
        400: _doc("The body is not JSON."),
        409: _doc(
            "A catalog entry differs from the one the dataset holds, or the dataset takes no "
            "writes (the embedded sample, a hub source, a read-only directory)."
        ),
        413: _doc("The body is larger than the setting ingest_max_bytes."),
        415: _doc("The body is neither parquet nor JSON."),
        422: _doc("The dataset contract refuses the rows or entries: file, column and rows."),
        503: _doc("The commit or push failed (nothing was written); see Retry-After."),
    },
)
async def post_results(request: Request, state: State, identity: Ingester) -> Response:
    """Add a batch of results as a new dataset version; the next snapshot serves it."""
    path = request.url.path
    settings = state.settings
    try:
        root = writable_root(settings.data)
    except NotWritable as exc:
        return problem(409, detail=str(exc), instance=path)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_TYPES and media not in PARQUET_TYPES:
        detail = (
            f"unsupported media type {media or '(none)'!r}: send application/json or "
            "application/vnd.apache.parquet"
        )
        return problem(415, detail=detail, instance=path)
    author = actor(request, identity)
    try:
        body = await _body(request, settings.ingest_max_bytes)
        batch = await asyncio.to_thread(_batch, media, body)
        call = partial(
            ingest, root, batch, author=identity.name, git=_git_options(settings), message=None
        )
        result = await asyncio.to_thread(call)
    except _BadBody as exc:
        return problem(exc.status, detail=str(exc), instance=path)
    except DatasetError as exc:
        return _refused(exc, path)
    except NotWritable as exc:
        return problem(409, detail=str(exc), instance=path)
    except WriteFailed as exc:
        headers = {"retry-after": str(RETRY_AFTER)}
        return problem(503, detail=str(exc), instance=path, headers=headers)
    if state.ops is not None:
        try:
            await asyncio.to_thread(_audit, state.ops, author, result)
        except SQLAlchemyError:
            # The version is written and cannot be taken back for a missing audit row.
            log.exception("ingest of %s written, but its audit row failed", result.file)
    if result.created:
        served = await _reload(state)
    else:
        served = state.loaded.snapshot.id if state.loaded is not None else None
    out = IngestOut(
        version=result.version,
        file=result.file,
        rows=result.rows,
        models=list(result.models),
        tasks=list(result.tasks),
        created=result.created,
        commit=result.commit,
        pushed=result.pushed,
        served=served,
    )
    return written(request, out, status=201 if result.created else 200)


async def _reload(state: AppState) -> str | None:
    """Ask for a reload and wait for its swap (at most RELOAD_WAIT seconds); the snapshot
    served then, None when it did not finish in time or failed."""
    reload = state.reload
    if reload is None:
        return None

    async def check() -> ReloadOutcome:
        return await reload()

    task = state.spawn(check())
    # A task of the app's own: it goes on when the wait ends or the client goes away.
    done, _ = await asyncio.wait({task}, timeout=RELOAD_WAIT)
    if not done or task.cancelled() or task.exception() is not None:
        return None
    outcome: ReloadOutcome = task.result()
    return None if outcome.result == "error" else outcome.snapshot


#: The route templates of this module, for metric and span labels.
TEMPLATES: tuple[str, ...] = tuple(
    dict.fromkeys(route.path for route in router.routes if isinstance(route, APIRoute))
)
