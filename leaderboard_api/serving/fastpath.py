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

Answer memo
    The answer to a request depends on the payload and on the raw ``Accept-Encoding``,
    ``If-None-Match`` and ``If-Modified-Since`` values only, and clients send few distinct
    values (one per browser family, the ETag they were given).  :class:`AnswerMemo`
    keeps, per payload, ``(accept, if_none_match, if_modified_since) -> (status, headers,
    body)``, so a repeated request costs a header scan and two dict lookups instead of
    negotiation and validator parsing.  It is bounded (see :class:`AnswerMemo`) and holds
    payloads weakly: a payload dropped by the cache takes its answers with it.

Per request the fast path allocates the header list (a fresh list, because middleware
and servers may mutate what they are given) and two message dicts; everything else is
precomputed in the payload or memoized.  Middleware that must see every request
(metrics, tracing, access logs) goes outside :class:`FastPath`;
:class:`~leaderboard_api.observability.metrics.MetricsMiddleware` directly around it
serves through :meth:`FastPath.prebuilt` and counts without wrapping ``send``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from leaderboard_api.serving.conditional import EncodingNegotiator, not_modified_variant
from leaderboard_api.serving.payload import Payload

__all__ = [
    "ASGIApp",
    "Answer",
    "AnswerMemo",
    "FastPath",
    "Lookup",
    "OriginHeaders",
    "PayloadResponse",
    "answer",
    "send_payload",
]

RawHeaders = Sequence[tuple[bytes, bytes]]
#: ``lookup(path, query_string) -> Payload | None``.
Lookup = Callable[[str, bytes], Payload | None]
#: ``origin_headers(origin) -> headers`` to add when the request has an Origin (CORS).
OriginHeaders = Callable[[bytes], RawHeaders]
#: What goes out: status, headers (before origin headers) and the GET body.
Answer = tuple[int, tuple[tuple[bytes, bytes], ...], bytes]
#: The request headers an answer depends on, raw (None when absent).
Conditions = tuple[bytes | None, bytes | None, bytes | None]


def answer(
    payload: Payload,
    *,
    accept: bytes | None,
    if_none_match: bytes | None,
    if_modified_since: bytes | None,
    negotiator: EncodingNegotiator,
    extra_headers: RawHeaders = (),
) -> Answer:
    """The 200 or 304 for ``payload`` under these raw request headers (not memoized)."""
    variant = negotiator.choose(accept, payload)
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
            return 304, (*matched.not_modified_headers, *extra_headers), b""
    return 200, (*variant.headers, *extra_headers), variant.body


def _decoded(payload: Payload, result: Answer) -> bool:
    """Whether ``result`` sends an identity body decoded for this answer alone (memoizing
    it would hold the very bytes the payload chose not to hold)."""
    if not payload.identity_on_demand or result[0] != 200:
        return False
    return not any(name == b"content-encoding" for name, _ in result[1])


class _PayloadAnswers:
    """One payload's memoized answers, and the weak reference that forgets them."""

    __slots__ = ("ref", "table")

    def __init__(self, ref: weakref.ref[Payload]) -> None:
        self.ref = ref
        self.table: dict[Conditions, Answer] = {}


class AnswerMemo:
    """Bounded memo of :func:`answer` per payload and raw header values.

    Keyed by the payload (identity, held weakly) and the exact raw ``Accept-Encoding``,
    ``If-None-Match`` and ``If-Modified-Since`` values.  Bounds: at most ``max_entries``
    answers over all payloads (when full it is emptied, so a client that varies its
    headers costs recomputation, never memory), and headers longer than
    ``max_header_bytes`` together are answered without being memoized (a key keeps its
    header bytes alive).  An answer refers to its payload's header values and body only,
    which live as long as the payload does anyway.

    Used from the event loop thread; the weak-reference callback may run in any thread
    (where the payload's last reference goes) and only removes its own entry.
    """

    __slots__ = (
        "_by_payload",
        "_entries",
        "_extra",
        "_negotiator",
        "max_entries",
        "max_header_bytes",
    )

    def __init__(
        self,
        *,
        negotiator: EncodingNegotiator,
        extra_headers: RawHeaders = (),
        max_entries: int = 4096,
        max_header_bytes: int = 512,
    ) -> None:
        self._negotiator = negotiator
        self._extra = tuple(extra_headers)
        self._by_payload: dict[int, _PayloadAnswers] = {}
        self._entries = 0
        self.max_entries = max_entries
        self.max_header_bytes = max_header_bytes

    def __len__(self) -> int:
        """How many answers are memoized now (at most ``max_entries``)."""
        return self._entries

    @property
    def payloads(self) -> int:
        """How many payloads have memoized answers now."""
        return len(self._by_payload)

    def get(self, payload: Payload, conditions: Conditions) -> Answer:
        """Return :func:`answer` for ``payload`` under ``conditions``, memoized when it may be."""
        answers = self._by_payload.get(id(payload))
        if answers is not None and answers.ref() is payload:
            found = answers.table.get(conditions)
            if found is not None:
                return found
        accept, if_none_match, if_modified_since = conditions
        result = answer(
            payload,
            accept=accept,
            if_none_match=if_none_match,
            if_modified_since=if_modified_since,
            negotiator=self._negotiator,
            extra_headers=self._extra,
        )
        size = sum(len(value) for value in conditions if value is not None)
        if size <= self.max_header_bytes and self.max_entries > 0 and not _decoded(payload, result):
            self._store(payload, answers, conditions, result)
        return result

    def _store(
        self,
        payload: Payload,
        answers: _PayloadAnswers | None,
        conditions: Conditions,
        result: Answer,
    ) -> None:
        if self._entries >= self.max_entries:
            self.clear()
            answers = None
        if answers is None or answers.ref() is not payload:
            answers = self._track(payload)
        answers.table[conditions] = result
        self._entries += 1

    def _track(self, payload: Payload) -> _PayloadAnswers:
        key = id(payload)
        by_payload = self._by_payload

        def forget(ref: weakref.ref[Payload]) -> None:
            # Only this payload's own entry: its id may already name a newer payload.
            current = by_payload.get(key)
            if current is not None and current.ref is ref:
                del by_payload[key]
                self._entries -= len(current.table)

        stale = by_payload.get(key)
        if stale is not None:  # a dead payload's id reused before its callback ran
            self._entries -= len(stale.table)
        answers = by_payload[key] = _PayloadAnswers(weakref.ref(payload, forget))
        return answers

    def clear(self) -> None:
        """Forget every answer."""
        self._by_payload.clear()
        self._entries = 0


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
    HEAD have no body to read) and is accepted for the ASGI call shape.  Nothing is
    memoized: cold requests are rare and each may carry other headers.
    """
    accept, if_none_match, if_modified_since, _ = _conditions(scope)
    status, headers, body = answer(
        payload,
        accept=accept,
        if_none_match=if_none_match,
        if_modified_since=if_modified_since,
        negotiator=negotiator if negotiator is not None else EncodingNegotiator(limit=0),
        extra_headers=extra_headers,
    )
    await send({"type": "http.response.start", "status": status, "headers": [*headers]})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


#: The request headers :func:`_conditions` reads.
_CONDITION_NAMES: Final = frozenset(
    {b"accept-encoding", b"if-none-match", b"if-modified-since", b"origin"}
)


def _conditions(scope: Scope) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """Accept-Encoding, If-None-Match, If-Modified-Since and Origin, raw (None when absent).

    Repeated Accept-Encoding or If-None-Match fields are joined with commas (RFC 9110
    §5.3); a repeated If-Modified-Since or Origin keeps the last.  :meth:`FastPath.prebuilt`
    inlines this loop: keep the two in step.
    """
    accept: bytes | None = None
    if_none_match: bytes | None = None
    if_modified_since: bytes | None = None
    origin: bytes | None = None
    for name, value in scope["headers"]:
        # One set lookup rejects the many headers a browser sends that matter not here.
        if name in _CONDITION_NAMES:
            if name == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value
            elif name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match + b"," + value
            elif name == b"if-modified-since":
                if_modified_since = value
            else:
                origin = value
    return accept, if_none_match, if_modified_since, origin


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
    memo_entries
        Bound of the :class:`AnswerMemo` (answers over all payloads); 0 memoizes nothing.
    """

    __slots__ = ("_app", "_extra", "_lookup", "_origin_headers", "memo")

    def __init__(
        self,
        app: ASGIApp,
        *,
        lookup: Lookup,
        extra_headers: RawHeaders = (),
        origin_headers: OriginHeaders | None = None,
        memo_entries: int = 4096,
    ) -> None:
        self._app = app
        self._lookup = lookup
        self._extra = tuple(extra_headers)
        self._origin_headers = origin_headers
        self.memo = AnswerMemo(
            negotiator=EncodingNegotiator(),
            extra_headers=self._extra,
            max_entries=memo_entries,
        )

    @property
    def app(self) -> ASGIApp:
        """The wrapped application."""
        return self._app

    def prebuilt(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """The response to an HTTP ``scope`` if the fast path answers it, else None.

        Status, a fresh header list and the body (empty for HEAD and 304): exactly what
        :meth:`__call__` would send.  ``scope["type"]`` must be ``"http"``.
        """
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return None
        payload = self._lookup(scope["path"], scope["query_string"])
        if payload is None:
            return None
        # _conditions and AnswerMemo.get's hit, inlined: this runs for every request the
        # fast path answers, and each call costs as much as the work it does.
        accept: bytes | None = None
        if_none_match: bytes | None = None
        if_modified_since: bytes | None = None
        origin: bytes | None = None
        for name, value in scope["headers"]:
            if name in _CONDITION_NAMES:
                if name == b"accept-encoding":
                    accept = value if accept is None else accept + b"," + value
                elif name == b"if-none-match":
                    if_none_match = value if if_none_match is None else if_none_match + b"," + value
                elif name == b"if-modified-since":
                    if_modified_since = value
                else:
                    origin = value
        conditions = (accept, if_none_match, if_modified_since)
        memo = self.memo
        answers = memo._by_payload.get(id(payload))
        found = None
        if answers is not None and answers.ref() is payload:
            found = answers.table.get(conditions)
        status, headers, body = found if found is not None else memo.get(payload, conditions)
        if origin is not None and self._origin_headers is not None:
            out = [*headers, *self._origin_headers(origin)]
        else:
            out = [*headers]
        return status, out, body if method == "GET" else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self.prebuilt(scope)
            if found is not None:
                status, headers, body = found
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
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
