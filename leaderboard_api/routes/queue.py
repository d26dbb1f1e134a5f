"""The write side's native routes under /v1: the evaluation queue (submissions) and votes.

Writes need a credential with the route's scope (``submit``, ``evaluate``, ``vote``), are
rate limited where a policy says so (``submissions``, ``votes``), run in a worker thread
and name their author and client address in the audit log (:class:`Actor`).

Reads of this state are precomputed bytes too.  A :class:`CounterMemo` keeps each answer's
:class:`Payload` under the store's change counter, so a read that finds the counter unchanged
answers without querying the database; the counter itself is read at most once a second
(at once after this process's own writes, so a client reads its own writes; another
replica's writes show within a second).  ``Cache-Control: no-cache`` makes clients
revalidate, and an unchanged answer keeps its ETag: 304.

Errors are problem+json: Duplicate and InvalidTransition 409 (a duplicate names the
existing submission in ``existingId``), NotFound 404, InvalidValue and a model the model
check refuses 422, no state store (``state=none``) or the Hub unreachable 503.

The model check
    A submitted model must be in the served snapshot's catalog (a catalog name, or the hub
    name an Open LLM entry keeps in ``model``) or match one of the ``submission_allow``
    fnmatch patterns (case-sensitive).  Failing both, and only with ``submission_check_hub``,
    it must exist on the Hub: ``huggingface_hub.HfApi.model_info`` against
    ``hf_auth_endpoint`` (at the given revision unless it is ``main``).
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from leaderboard_api.auth import (
    AUTH_RESPONSES,
    RATE_LIMIT_RESPONSES,
    Identity,
    auth_context,
    rate_limit_decisions,
    rate_limit_headers,
    require,
)
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.operational.records import (
    Actor,
    Direction,
    Duplicate,
    InvalidValue,
    NotFound,
    StateError,
    Status,
    Submission,
    Vote,
    VoteCounts,
)
from leaderboard_api.payloads import encode
from leaderboard_api.problems import PROBLEM_TYPE, problem
from leaderboard_api.routes.v1 import allow_params
from leaderboard_api.schemas import Schema
from leaderboard_api.serving.fastpath import PayloadResponse
from leaderboard_api.serving.payload import Payload
from leaderboard_api.settings import Settings
from leaderboard_api.state import AppState, NotReady, State

if TYPE_CHECKING:
    from leaderboard_api.operational.repository import StateStore

try:  # huggingface_hub 2.x speaks httpx2 (see auth/hub.py); 1.x httpx; 0.x requests (OSError)
    from httpx2 import HTTPError as _Httpx2Error

    _TRANSPORT_ERRORS: tuple[type[Exception], ...] = (OSError, httpx.HTTPError, _Httpx2Error)
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    _TRANSPORT_ERRORS = (OSError, httpx.HTTPError)

__all__ = [
    "TEMPLATES",
    "CounterMemo",
    "HubUnavailable",
    "ModelRefused",
    "actor",
    "check_model",
    "router",
    "state_answer",
    "store_of",
]

GET = ["GET", "HEAD"]
JSON: Final = "application/json"
NO_STORE: Final = {"cache-control": "no-store"}
#: Answers about operational state: any cache must ask again (304 when nothing changed).
STATE_CACHE_CONTROL: Final = "no-cache"
#: How stale the change counter may be (seconds) before a read asks the database.
COUNTER_MAX_AGE: Final = 1.0
#: Answers kept per app (route and parameters); the oldest go first.
MEMO_ENTRIES: Final = 512
#: Seconds a client waits after the Hub could not be asked.
HUB_RETRY_AFTER: Final = 10


class SiblingAllow(APIRoute):
    """An APIRoute whose 405 names the methods of every route on its path: FastAPI makes a
    route per operation, and Starlette's own ``Allow`` would name this one's only.  The
    names are filled in by :func:`link_siblings` once a router's routes are declared."""

    allowed: frozenset[str] = frozenset()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allowed = self.allowed or frozenset(self.methods)
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)


def link_siblings(router: APIRouter) -> None:
    """Tell each SiblingAllow route of ``router`` the methods of its path."""
    methods: dict[str, set[str]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            methods.setdefault(route.path_format, set()).update(route.methods or ())
    for route in router.routes:
        if isinstance(route, SiblingAllow):
            route.allowed = frozenset(methods[route.path_format])


router = APIRouter(tags=["queue"], route_class=SiblingAllow)

Submitter = Annotated[Identity, Depends(require("submit", limit="submissions"))]
Evaluator = Annotated[Identity, Depends(require("evaluate"))]
Voter = Annotated[Identity, Depends(require("vote", limit="votes"))]
SubmissionId = Annotated[int, Path(alias="id", ge=1, le=2**53, description="Submission id.")]
ModelName = Annotated[str, Path(description="Model name (slashes allowed).")]


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {}}}


Responses = dict[int | str, dict[str, Any]]
_CONFLICT: Final[Responses] = {
    409: _problem_doc("A duplicate, or a status change the submission does not allow.")
}
_NOT_FOUND: Final[Responses] = {404: _problem_doc("No such submission (or vote).")}
_REFUSED: Final[Responses] = {
    422: _problem_doc("A value the store refuses, or a model the model check refuses.")
}
#: FastAPI's answer to a body that is not JSON.
_BAD_BODY: Final[Responses] = {400: _problem_doc("The body is not JSON.")}
_UNAVAILABLE: Final[Responses] = {
    503: _problem_doc("No state store (setting `state`), or the Hub could not be asked now.")
}


# --- shapes -----------------------------------------------------------------------------


class SubmissionOut(Schema):
    """One submission of the evaluation queue."""

    id: int
    model: str
    revision: str
    precision: str
    model_type: str | None = None
    base_model: str | None = None
    weight_type: str | None = None
    status: Status
    submitter: str
    claimed_by: str | None = None
    dataset_version: str | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: Submission) -> SubmissionOut:
        return cls(
            id=found.id,
            model=found.model,
            revision=found.revision,
            precision=found.precision,
            model_type=found.model_type,
            base_model=found.base_model,
            weight_type=found.weight_type,
            status=found.status,
            submitter=found.submitter,
            claimed_by=found.claimed_by,
            dataset_version=found.dataset_version,
            reason=found.reason,
            created_at=found.created_at,
            updated_at=found.updated_at,
        )


class VoteOut(Schema):
    """One identity's vote on one model."""

    model: str
    user: str
    vote: Direction
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: Vote) -> VoteOut:
        return cls(
            model=found.model,
            user=found.identity,
            vote=found.direction,
            created_at=found.created_at,
            updated_at=found.updated_at,
        )


class VoteCountsOut(Schema):
    """A model's votes: all, up and down."""

    total: int
    up: int
    down: int

    @classmethod
    def of(cls, counts: VoteCounts) -> VoteCountsOut:
        return cls(total=counts.total, up=counts.up, down=counts.down)


class _In(BaseModel):
    """Base of request bodies: camelCase (snake_case taken too), unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", protected_namespaces=()
    )


class SubmissionIn(_In):
    model: str = Field(min_length=1, max_length=300, description="Hub name, e.g. org/model.")
    revision: str | None = Field(default=None, max_length=100, description="Default main.")
    precision: str | None = Field(default=None, max_length=32, description="Default float16.")
    model_type: str | None = Field(default=None, max_length=64)
    base_model: str | None = Field(default=None, max_length=300)
    weight_type: str | None = Field(default=None, max_length=32)


class StatusIn(_In):
    status: Status = Field(
        description="finished (needs datasetVersion), failed (needs reason), pending (retry "
        "or release); running comes only from a claim."
    )
    dataset_version: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=10_000)


class VoteIn(_In):
    vote: Direction


# --- the pieces both route modules use ----------------------------------------------------


def store_of(state: AppState) -> StateStore:
    """The operational store; 503 when this server runs without one."""
    if state.ops is None:
        raise HTTPException(
            503, detail="the write side is off: this server has no state store (setting `state`)"
        )
    return state.ops


def actor(request: Request, identity: Identity) -> Actor:
    """Who writes and from where, for the audit log."""
    return Actor(identity.name, auth_context(request).client_address(request.scope))


T = TypeVar("T")


async def blocking(call: Callable[[], T]) -> T:
    """``call()`` in a worker thread (every database call of a handler goes through here)."""
    return await asyncio.to_thread(call)


def status_of(exc: StateError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidValue):
        return 422
    return 409  # Duplicate, InvalidTransition


def refusal(exc: StateError, request: Request) -> Response:
    """The problem+json answer to an error of the store."""
    extra = None
    if isinstance(exc, Duplicate) and exc.existing_id is not None:
        extra = {"existingId": exc.existing_id}
    return problem(status_of(exc), detail=str(exc), instance=request.url.path, extra=extra)


def written(request: Request, body: Any, *, status: int = 200, **headers: str) -> Response:
    """A write's answer: JSON, never cached, with the RateLimit fields of the request."""
    fields = {**NO_STORE, **rate_limit_headers(*rate_limit_decisions(request)), **headers}
    return Response(encode(body), status_code=status, media_type=JSON, headers=fields)


MemoKey = tuple[str, tuple[Hashable, ...]]
#: What an answer is: its payload, or the store's refusal (a 404 is remembered too).
Outcome = Payload | StateError


@dataclass(slots=True)
class CounterMemo:
    """Built answers by (route, parameters), each valid for the change counter it was built
    at; one build at a time per key and counter.  Bounded: the least recently read go."""

    limit: int = MEMO_ENTRIES
    entries: OrderedDict[MemoKey, tuple[int, Outcome]] = field(default_factory=OrderedDict)
    flights: dict[tuple[MemoKey, int], asyncio.Future[Outcome]] = field(default_factory=dict)

    async def get(self, key: MemoKey, counter: int, build: Callable[[], Payload]) -> Outcome:
        """The answer of ``key`` at ``counter``: built by ``build`` in a worker thread when
        the memo has none that new; the StateError it raised, if it did."""
        found = self.entries.get(key)
        if found is None or found[0] < counter:
            flight = (key, counter)
            future = self.flights.get(flight)
            if future is None:
                future = asyncio.ensure_future(asyncio.to_thread(_outcome, build))
                self.flights[flight] = future
                future.add_done_callback(partial(self._landed, flight))
            # shield: a client that goes away must not cancel a build others wait for.
            outcome = await asyncio.shield(future)
            self._remember(key, counter, outcome)
        else:
            self.entries.move_to_end(key)
            outcome = found[1]
        return outcome

    def _landed(self, flight: tuple[MemoKey, int], _: object) -> None:
        self.flights.pop(flight, None)

    def _remember(self, key: MemoKey, counter: int, outcome: Outcome) -> None:
        found = self.entries.get(key)
        if found is not None and found[0] > counter:
            return  # a build for a newer counter finished first
        self.entries[key] = (counter, outcome)
        self.entries.move_to_end(key)
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)


def _outcome(build: Callable[[], Payload]) -> Outcome:
    try:
        return build()
    except StateError as exc:
        # Kept without its traceback: the frames would hold the build and its store.
        return exc.with_traceback(None)


def memo_of(request: Request) -> CounterMemo:
    """The app's memo of state answers (made on first use; one per app, never global)."""
    memo = getattr(request.app.state, "state_answers", None)
    if not isinstance(memo, CounterMemo):
        memo = CounterMemo()
        request.app.state.state_answers = memo
    return memo


def state_payload(body: bytes) -> Payload:
    """An answer about operational state as a payload: ETag from the bytes, revalidated."""
    return Payload.build(
        body,
        media_type=JSON,
        # A build only ever follows a newer counter, so its time never goes back.
        last_modified=datetime.now(UTC),
        cache_control=STATE_CACHE_CONTROL,
    )


async def state_answer(
    request: Request,
    state: AppState,
    route: str,
    params: tuple[Hashable, ...],
    body: Callable[[StateStore], bytes],
) -> Response:
    """Answer a read of operational state from the memo: ``body(store)`` runs (in a worker
    thread) only when the change counter moved since the answer was built."""
    ops = store_of(state)
    counter = await blocking(partial(ops.change_counter, max_age=COUNTER_MAX_AGE))
    outcome = await memo_of(request).get((route, params), counter, lambda: state_payload(body(ops)))
    if isinstance(outcome, StateError):
        return refusal(outcome, request)
    return PayloadResponse(outcome)


# --- the model check ------------------------------------------------------------------------


class ModelRefused(Exception):
    """The model check refuses a submitted model; the message says why."""


class HubUnavailable(Exception):
    """The Hub could not be asked whether a model exists (the client may retry)."""


def _known_models(snapshot: Snapshot) -> frozenset[str]:
    names = set(snapshot.models)
    for info in snapshot.models.values():
        hub_name = info.extras().get("model")
        if isinstance(hub_name, str):
            names.add(hub_name)
    return frozenset(names)


def _setting_patterns(settings: Settings) -> list[str]:
    return [part for part in settings.submission_allow if part.strip()]


def _hub_check_on(settings: Settings) -> bool:
    return settings.submission_check_hub


def hub_has_model(endpoint: str, model: str, revision: str | None, *, timeout: float) -> None:
    """Raise ModelRefused unless ``model`` (at ``revision``) is a model repository on the
    Hub at ``endpoint``; HubUnavailable when the Hub cannot say.  Blocking."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = HfApi(endpoint=endpoint.rstrip("/"), library_name="leaderboard-api")
    wanted = None if revision in (None, "", "main") else revision
    try:
        api.model_info(model, revision=wanted, timeout=timeout)
    except GatedRepoError:
        return  # it exists; only its files need an accepted licence
    except RevisionNotFoundError:
        msg = f"{model} has no revision {revision!r} on the Hub"
        raise ModelRefused(msg) from None
    except RepositoryNotFoundError:
        msg = f"{model} is not a (public) model repository on the Hub"
        raise ModelRefused(msg) from None
    except HFValidationError as exc:
        msg = f"{model!r} is not a Hub repository id: {exc}"
        raise ModelRefused(msg) from None
    except HfHubHTTPError as exc:
        msg = f"the Hub did not answer whether {model} exists: {exc}".splitlines()[0]
        raise HubUnavailable(msg) from None
    except _TRANSPORT_ERRORS as exc:
        msg = f"the Hub could not be reached to check {model}: {type(exc).__name__}"
        raise HubUnavailable(msg) from None


async def check_model(state: AppState, model: str, revision: str | None) -> None:
    """Raise ModelRefused (or HubUnavailable, NotReady) unless the model check takes
    ``model`` (see the module docstring)."""
    name = model.strip()
    settings = state.settings
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in _setting_patterns(settings)):
        return
    loaded = state.loaded
    if loaded is not None and name in loaded.snapshot.derived("queue-models", _known_models):
        return
    if _hub_check_on(settings):
        timeout = settings.hf_auth_timeout_seconds
        endpoint = settings.hf_auth_endpoint
        await blocking(partial(hub_has_model, endpoint, name, revision, timeout=timeout))
        return
    if loaded is None:
        raise NotReady  # the catalog is not loaded yet: 503 with Retry-After
    msg = (
        f"{name!r} is not a model of the served dataset and matches no allowed pattern "
        "(setting submission_allow)"
    )
    raise ModelRefused(msg)


def model_check_refusal(exc: ModelRefused | HubUnavailable, request: Request) -> Response:
    if isinstance(exc, HubUnavailable):
        return problem(
            503,
            detail=str(exc),
            instance=request.url.path,
            headers={"retry-after": str(HUB_RETRY_AFTER)},
        )
    return problem(422, detail=str(exc), instance=request.url.path)


# --- submissions ----------------------------------------------------------------------------


@router.post(
    "/v1/submissions",
    status_code=201,
    response_model=SubmissionOut,
    responses={
        **AUTH_RESPONSES,
        **RATE_LIMIT_RESPONSES,
        **_CONFLICT,
        **_REFUSED,
        **_UNAVAILABLE,
        **_BAD_BODY,
    },
)
async def submit(
    request: Request, state: State, identity: Submitter, body: SubmissionIn
) -> Response:
    """Queue a model for evaluation (pending); 409 when the same model, revision and
    precision is pending, running or finished."""
    ops = store_of(state)
    try:
        await check_model(state, body.model, body.revision)
    except (ModelRefused, HubUnavailable) as exc:
        return model_check_refusal(exc, request)
    call = partial(
        ops.submissions.submit,
        body.model,
        by=actor(request, identity),
        revision=body.revision,
        precision=body.precision,
        model_type=body.model_type,
        base_model=body.base_model,
        weight_type=body.weight_type,
    )
    try:
        created = await blocking(call)
    except StateError as exc:
        return refusal(exc, request)
    location = f"/v1/submissions/{created.id}"
    return written(request, SubmissionOut.of(created), status=201, location=location)


@router.api_route(
    "/v1/submissions", methods=GET, response_model=list[SubmissionOut], responses=_UNAVAILABLE
)
async def list_submissions(
    request: Request,
    state: State,
    status: Annotated[Status | None, Query(description="Only submissions of this status.")] = None,
) -> Response:
    """Submissions, oldest first."""
    allow_params(request, "status")

    def body(ops: StateStore) -> bytes:
        return encode([SubmissionOut.of(s) for s in ops.submissions.list(status=status)])

    return await state_answer(request, state, "submissions", (status,), body)


@router.post(
    "/v1/submissions/claim",
    response_model=SubmissionOut,
    responses={
        **AUTH_RESPONSES,
        **_UNAVAILABLE,
        204: {"description": "Nothing is pending."},
    },
)
async def claim(request: Request, state: State, identity: Evaluator) -> Response:
    """Take the next pending submission (most up-votes, then oldest): it is running now
    and held by the caller.  204 when nothing is pending."""
    ops = store_of(state)
    claimed = await blocking(partial(ops.submissions.claim, by=actor(request, identity)))
    if claimed is None:
        return Response(status_code=204, headers=NO_STORE)
    return written(request, SubmissionOut.of(claimed))


@router.api_route(
    "/v1/submissions/{id:int}",
    methods=GET,
    response_model=SubmissionOut,
    responses={**_NOT_FOUND, **_UNAVAILABLE},
)
async def get_submission(request: Request, state: State, submission_id: SubmissionId) -> Response:
    allow_params(request)

    def body(ops: StateStore) -> bytes:
        return encode(SubmissionOut.of(ops.submissions.get(submission_id)))

    return await state_answer(request, state, "submission", (submission_id,), body)


@router.post(
    "/v1/submissions/{id:int}/status",
    response_model=SubmissionOut,
    responses={
        **AUTH_RESPONSES,
        **_NOT_FOUND,
        **_CONFLICT,
        **_REFUSED,
        **_UNAVAILABLE,
        **_BAD_BODY,
    },
)
async def set_status(
    request: Request,
    state: State,
    identity: Evaluator,
    submission_id: SubmissionId,
    body: StatusIn,
) -> Response:
    """Report on a submission: finished (with the dataset version holding its results) or
    failed (with a reason), or back to pending.  Only the evaluator holding a running
    submission finishes it (``admin`` excepted); failing, cancelling and retrying are
    queue management any evaluator may do."""
    ops = store_of(state)
    holder = identity.name if body.status == "finished" and "admin" not in identity.scopes else None
    call = partial(
        ops.submissions.set_status,
        submission_id,
        body.status,
        by=actor(request, identity),
        dataset_version=body.dataset_version,
        reason=body.reason,
        claimed_by=holder,
    )
    try:
        changed = await blocking(call)
    except StateError as exc:
        return refusal(exc, request)
    return written(request, SubmissionOut.of(changed))


# --- votes ----------------------------------------------------------------------------------


@router.post(
    "/v1/models/{name:path}/votes",
    response_model=VoteOut,
    responses={**AUTH_RESPONSES, **RATE_LIMIT_RESPONSES, **_REFUSED, **_UNAVAILABLE, **_BAD_BODY},
)
async def cast_vote(
    request: Request, state: State, identity: Voter, name: ModelName, body: VoteIn
) -> Response:
    """The caller's vote on a model, up or down; a second vote replaces the first."""
    ops = store_of(state)
    call = partial(ops.votes.cast, name, body.vote, by=actor(request, identity))
    try:
        vote = await blocking(call)
    except StateError as exc:
        return refusal(exc, request)
    return written(request, VoteOut.of(vote))


@router.delete(
    "/v1/models/{name:path}/votes",
    status_code=204,
    response_class=Response,
    responses={**AUTH_RESPONSES, **RATE_LIMIT_RESPONSES, **_NOT_FOUND, **_UNAVAILABLE},
)
async def delete_vote(request: Request, state: State, identity: Voter, name: ModelName) -> Response:
    """Withdraw the caller's vote on a model (404 when there is none)."""
    ops = store_of(state)
    try:
        await blocking(partial(ops.votes.delete, name.strip(), by=actor(request, identity)))
    except StateError as exc:
        return refusal(exc, request)
    headers = {**NO_STORE, **rate_limit_headers(*rate_limit_decisions(request))}
    return Response(status_code=204, headers=headers)


@router.api_route(
    "/v1/models/{name:path}/votes",
    methods=GET,
    response_model=VoteCountsOut,
    responses=_UNAVAILABLE,
)
async def vote_counts(request: Request, state: State, name: ModelName) -> Response:
    """A model's votes (zeros for a model nobody voted on)."""
    allow_params(request)
    model = name.strip()

    def body(ops: StateStore) -> bytes:
        return encode(VoteCountsOut.of(ops.votes.counts(model)))

    return await state_answer(request, state, "vote-counts", (model,), body)


@router.api_route("/v1/votes", methods=GET, response_model=list[VoteOut], responses=_UNAVAILABLE)
async def user_votes(
    request: Request,
    state: State,
    user: Annotated[str, Query(min_length=1, max_length=300, description="Whose votes.")],
) -> Response:
    """One user's votes, by model name."""
    allow_params(request, "user")

    def body(ops: StateStore) -> bytes:
        return encode([VoteOut.of(v) for v in ops.votes.of_user(user)])

    return await state_answer(request, state, "user-votes", (user,), body)


link_siblings(router)

#: The route templates of this module, for metric and span labels.
TEMPLATES: tuple[str, ...] = tuple(
    dict.fromkeys(route.path for route in router.routes if isinstance(route, APIRoute))
)
