"""Pure-ASGI fast path: answer GET/HEAD from a ready Payload before the framework routes.

:class:`FastPath` wraps the framework app.  For a GET or HEAD it asks ``lookup(path,
query_string)`` for a built payload; when there is one it answers on the spot (conditional
check, coding negotiation, precomputed headers, exact Content-Length, no body for HEAD);
otherwise the request goes to the wrapped app untouched.  Cold requests that the
framework handles answer through :func:`send_payload` (or :class:`PayloadResponse` from a
route), so the same bytes and headers go out whichever path served them.

``path`` is ``scope["path"]``: percent-decoded by the server (uvicorn, httpx's ASGI
transport), so ``/MTEB(eng,%20v2)`` and ``/MTEB(eng, v2)`` reach ``lookup`` alike, and
including any ``root_path`` prefix the server adds.  ``query_string`` is the raw bytes of
the query; normalizing it (or answering None for anything parameterized) is the caller's
choice.  ``lookup`` runs on every GET/HEAD, so it should be a dict lookup, e.g. a
:meth:`~leaderboard_api.serving.cache.PayloadCache.get_ready` call.

Per request the fast path allocates the header list (a fresh list, because middleware
and servers may mutate what they are given) and two message dicts; everything else is
precomputed in the payload or memoized (Accept-Encoding rankings).  Middleware that must
see every request (metrics, tracing, access logs) goes outside :class:`FastPath`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from leaderboard_api.serving.conditional import EncodingNegotiator, not_modified_variant
from leaderboard_api.serving.payload import Payload

__all__ = ["ASGIApp", "FastPath", "Lookup", "OriginHeaders", "PayloadResponse", "send_payload"]

RawHeaders = Sequence[tuple[bytes, bytes]]
#: ``lookup(path, query_string) -> Payload | None``.
Lookup = Callable[[str, bytes], Payload | None]
#: ``origin_headers(origin) -> headers`` to add when the request has an Origin (CORS).
OriginHeaders = Callable[[bytes], RawHeaders]

_METHODS: Final = frozenset({"GET", "HEAD"})


async def _respond(
    scope: Scope,
    send: Send,
    payload: Payload,
    *,
    negotiator: EncodingNegotiator,
    extra_headers: RawHeaders,
    origin_headers: OriginHeaders | None,
) -> None:
    """Write the 200 or 304 for ``payload``; the shared core of both serving paths."""
    accept: bytes | None = None
    if_none_match: bytes | None = None
    if_modified_since: bytes | None = None
    origin: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            accept = value if accept is None else accept + b"," + value
        elif name == b"if-none-match":
            if_none_match = value if if_none_match is None else if_none_match + b"," + value
        elif name == b"if-modified-since":
            if_modified_since = value
        elif name == b"origin":
            origin = value
    variant = negotiator.choose(accept, payload)
    status = 200
    headers = variant.headers
    body = variant.body
    if if_none_match is not None or if_modified_since is not None:
        matched = not_modified_variant(
            payload,
            if_none_match=None if if_none_match is None else if_none_match.decode("latin-1"),
            if_modified_since=(
                None if if_modified_since is None else if_modified_since.decode("latin-1")
            ),
            preferred=variant,
        )
        if matched is not None:
            status = 304
            headers = matched.not_modified_headers
            body = b""
    if origin is not None and origin_headers is not None:
        out = [*headers, *extra_headers, *origin_headers(origin)]
    else:
        out = [*headers, *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": out})
    if scope["method"] == "HEAD":
        body = b""
    await send({"type": "http.response.body", "body": body})


async def send_payload(
    scope: Scope,
    receive: Receive,
    send: Send,
    payload: Payload,
    *,
    extra_headers: RawHeaders = (),
    negotiator: EncodingNegotiator | None = None,
) -> None:
    """Answer an HTTP request with ``payload`` exactly as the fast path would.

    Honors If-None-Match / If-Modified-Since (304), Accept-Encoding and HEAD.
    ``extra_headers`` are appended to every response.  ``receive`` is unused (GET and
    HEAD have no body to read) and is accepted for the ASGI call shape.
    """
    await _respond(
        scope,
        send,
        payload,
        negotiator=negotiator if negotiator is not None else EncodingNegotiator(limit=0),
        extra_headers=extra_headers,
        origin_headers=None,
    )


class FastPath:
    """ASGI middleware answering GET/HEAD for built payloads; everything else passes through.

    Parameters
    ----------
    app
        The wrapped application (the framework).
    lookup
        ``lookup(scope["path"], scope["query_string"])``: the ready payload or None.
    extra_headers
        Static headers added to every fast-path response (200 and 304).
    origin_headers
        Called with the Origin value when the request has one; its headers are added
        (CORS: ``access-control-allow-origin`` and ``vary: origin`` for allowed origins,
        nothing for others).  Preflight OPTIONS requests go to ``app``.
    """

    __slots__ = ("_app", "_extra", "_lookup", "_negotiator", "_origin_headers")

    def __init__(
        self,
        app: ASGIApp,
        *,
        lookup: Lookup,
        extra_headers: RawHeaders = (),
        origin_headers: OriginHeaders | None = None,
    ) -> None:
        self._app = app
        self._lookup = lookup
        self._extra = tuple(extra_headers)
        self._origin_headers = origin_headers
        self._negotiator = EncodingNegotiator()

    @property
    def app(self) -> ASGIApp:
        """The wrapped application."""
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _METHODS:
            payload = self._lookup(scope["path"], scope["query_string"])
            if payload is not None:
                await _respond(
                    scope,
                    send,
                    payload,
                    negotiator=self._negotiator,
                    extra_headers=self._extra,
                    origin_headers=self._origin_headers,
                )
                return
        await self._app(scope, receive, send)


class PayloadResponse(Response):
    """A Starlette/FastAPI response that sends a :class:`Payload` through :func:`send_payload`.

    Return it from a route for a cold request.  Headers set on it after construction
    (``response.headers[...] = ...``, FastAPI's sub-response merging) are appended to the
    payload's own; a background task, if given, runs after the body is sent.
    """

    def __init__(self, payload: Payload, *, extra_headers: RawHeaders = ()) -> None:
        super().__init__(status_code=200, media_type=payload.media_type)
        self.payload = payload
        self.body = payload.identity
        self.raw_headers = list(extra_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_payload(scope, receive, send, self.payload, extra_headers=self.raw_headers)
        if self.background is not None:
            await self.background()
