"""FastAPI side of auth: ``require(scope)``, rate-limit dependencies, errors as problem+json.

Wiring (``create_app``)::

    context = install_auth(app, authenticator, limiter=limiter, client_address=address)

stores an :class:`AuthContext` on the app and installs the handlers that turn
:class:`~leaderboard_api.auth.scopes.NotAuthenticated` (401 with ``WWW-Authenticate``),
:class:`~leaderboard_api.auth.scopes.MissingScope` (403),
:class:`~leaderboard_api.auth.scopes.AuthUnavailable` (503 with ``Retry-After``) and
:class:`~leaderboard_api.auth.ratelimit.RateLimited` (429) into problem+json through
:func:`leaderboard_api.problems.problem`.  Routes then declare what they need::

    Submitter = Annotated[Identity, Depends(require("submit", limit="submissions"))]

    @router.post("/v1/submissions", responses={**AUTH_RESPONSES, **RATE_LIMIT_RESPONSES})
    async def submit(identity: Submitter) -> ...: ...

``require`` also documents the three ways to authenticate in the OpenAPI document
(security schemes ``bearer``, ``apiKey``, ``basic``), so ``/docs`` offers them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from fastapi import FastAPI, Request, Security
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBase, HTTPBearer
from fastapi.security.base import SecurityBase
from starlette.responses import Response

from leaderboard_api.auth.addresses import ClientAddress
from leaderboard_api.auth.identities import Authenticator
from leaderboard_api.auth.ratelimit import (
    Decision,
    RateLimited,
    RateLimiter,
    rate_limit_headers,
    rate_limited_response,
)
from leaderboard_api.auth.scopes import (
    SCOPES,
    AuthUnavailable,
    Identity,
    MissingScope,
    NotAuthenticated,
)
from leaderboard_api.problems import PROBLEM_TYPE, problem

__all__ = [
    "AUTH_RESPONSES",
    "RATE_LIMIT_RESPONSES",
    "AuthContext",
    "AuthError",
    "auth_context",
    "auth_problem",
    "install_auth",
    "rate_limit",
    "rate_limit_decisions",
    "require",
]

AuthError = NotAuthenticated | MissingScope | AuthUnavailable
_STATE_KEY: Final = "auth"
_DECISIONS_KEY: Final = "rate_limit_decisions"


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_TYPE: {}}}


#: ``responses=`` entries for a route behind :func:`require`.
AUTH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: _problem_doc("No credentials, or refused ones; see WWW-Authenticate."),
    403: _problem_doc("The credentials do not grant the scope this route needs."),
    503: _problem_doc("The credentials could not be checked now; see Retry-After."),
}
#: ``responses=`` entry for a rate-limited route.
RATE_LIMIT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    429: _problem_doc("Over a rate limit; see Retry-After, RateLimit-Policy and RateLimit."),
}


@dataclass(frozen=True, slots=True)
class AuthContext:
    """What the auth dependencies use, one per app (``app.state.auth``)."""

    authenticator: Authenticator
    limiter: RateLimiter | None = None
    client_address: ClientAddress = field(default_factory=ClientAddress)


def install_auth(
    app: FastAPI,
    authenticator: Authenticator,
    *,
    limiter: RateLimiter | None = None,
    client_address: ClientAddress | None = None,
) -> AuthContext:
    """Put an :class:`AuthContext` on ``app`` and map the auth errors to problem+json."""
    context = AuthContext(
        authenticator=authenticator,
        limiter=limiter,
        client_address=client_address if client_address is not None else ClientAddress(),
    )
    setattr(app.state, _STATE_KEY, context)

    async def auth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotAuthenticated | MissingScope | AuthUnavailable)
        return auth_problem(exc, authenticator=authenticator, instance=request.url.path)

    async def rate_limited(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimited)
        return rate_limited_response(exc.decision, instance=request.url.path)

    for error in (NotAuthenticated, MissingScope, AuthUnavailable):
        app.add_exception_handler(error, auth_error)
    app.add_exception_handler(RateLimited, rate_limited)
    return context


def auth_context(request: Request) -> AuthContext:
    """The app's :class:`AuthContext`; RuntimeError when :func:`install_auth` was not run."""
    context = getattr(request.app.state, _STATE_KEY, None)
    if not isinstance(context, AuthContext):
        msg = "auth is not installed on this app: call install_auth(app, authenticator)"
        raise RuntimeError(msg)
    return context


def auth_problem(exc: AuthError, *, authenticator: Authenticator, instance: str | None) -> Response:
    """The problem+json answer to an auth error (also used by the pure-ASGI ReadAuth)."""
    if isinstance(exc, NotAuthenticated):
        ways = "Authorization: Bearer <key> or X-API-Key: <key>"
        if authenticator.offers_basic:
            ways += " (or Basic)"
        detail = (
            "the credentials sent are not valid"
            if exc.invalid
            else f"this route needs credentials: send {ways}"
        )
        error = "invalid_token" if exc.invalid and exc.bearer else None
        return problem(
            401,
            detail=detail,
            instance=instance,
            headers={"www-authenticate": authenticator.challenge(error=error)},
        )
    if isinstance(exc, MissingScope):
        return problem(
            403,
            detail=f"these credentials do not grant the {exc.scope!r} scope this route needs",
            instance=instance,
            headers={
                "www-authenticate": authenticator.challenge(
                    error="insufficient_scope", scope=exc.scope
                )
            },
            extra={"scope": exc.scope},
        )
    return problem(
        503, detail=str(exc), instance=instance, headers={"retry-after": str(exc.retry_after)}
    )


class _Documented(SecurityBase):
    """A security scheme shown in OpenAPI; checking is :func:`require`'s own job."""

    def __init__(self, model: APIKey | HTTPBase, scheme_name: str) -> None:
        self.model = model
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        return None


_BEARER = _Documented(
    HTTPBearer(description="An API key, the admin token, or a Hugging Face token."), "bearer"
)
_API_KEY = _Documented(
    APIKey(**{"in": APIKeyIn.header}, name="X-API-Key", description="An API key."), "apiKey"
)
_BASIC = _Documented(HTTPBase(scheme="basic", description="A configured Basic user."), "basic")

IdentityDependency = Callable[..., Coroutine[Any, Any, Identity]]


def require(scope: str, *, limit: str | None = None) -> IdentityDependency:
    """A dependency yielding the request's :class:`Identity` if it has ``scope``.

    With ``limit``, the named rate-limit policy is hit too (keyed by identity or by
    client address, as the policy says); the RateLimit fields are added to the response
    FastAPI builds from a returned value, and kept for a route that returns its own
    Response (:func:`rate_limit_decisions`).  Unknown scopes are a ValueError here,
    at import time of the route module, not at request time.
    """
    if scope not in SCOPES:
        msg = f"unknown scope {scope!r}; known: {sorted(SCOPES)}"
        raise ValueError(msg)

    async def dependency(
        request: Request,
        response: Response,
        _bearer: Annotated[None, Security(_BEARER)],
        _api_key: Annotated[None, Security(_API_KEY)],
        _basic: Annotated[None, Security(_BASIC)],
    ) -> Identity:
        context = auth_context(request)
        identity = await context.authenticator.authorize(request.headers, scope)
        if limit is not None:
            await _limit(context, request, response, limit, identity)
        return identity

    return dependency


def rate_limit(policy: str) -> Callable[..., Coroutine[Any, Any, Decision | None]]:
    """A dependency hitting ``policy`` per client address (no identity needed).

    Yields the decision, or None when no limiter is installed.
    """

    async def dependency(request: Request, response: Response) -> Decision | None:
        return await _limit(auth_context(request), request, response, policy, None)

    return dependency


async def _limit(
    context: AuthContext,
    request: Request,
    response: Response,
    policy: str,
    identity: Identity | None,
) -> Decision | None:
    limiter = context.limiter
    if limiter is None:
        return None
    if limiter.policy(policy).per == "address":
        key = context.client_address(request.scope)
    elif identity is not None:
        key = identity.partition
    else:
        msg = f"rate-limit policy {policy!r} is per identity: use require(..., limit=)"
        raise RuntimeError(msg)
    decision = await limiter.check(policy, key)
    for name, value in rate_limit_headers(decision).items():
        response.headers[name] = value
    decisions: list[Decision] = getattr(request.state, _DECISIONS_KEY, [])
    decisions.append(decision)
    setattr(request.state, _DECISIONS_KEY, decisions)
    return decision


def rate_limit_decisions(request: Request) -> tuple[Decision, ...]:
    """The decisions made for this request, for routes returning their own Response
    (``headers=rate_limit_headers(*rate_limit_decisions(request))``)."""
    found = getattr(request.state, _DECISIONS_KEY, ())
    return tuple(decision for decision in found if isinstance(decision, Decision))
