"""Private reads: a pure-ASGI gate in front of the fast path (``LEADERBOARD_READ_AUTH=true``).

:class:`ReadAuth` wraps the fast path (and so the store fallback and the framework
behind it).  A GET or HEAD whose path is under a protected prefix (``/v1`` and the
compatibility ``/api`` by default) must carry credentials with the ``read`` scope;
otherwise it is answered here with the same problem+json 401/403/503 as the write
routes, *before* the fast path looks the path up.  So a payload built for one caller,
held in the fast path's tables or its answer memo, can never be served, revalidated
(an ``If-None-Match`` probe gets 401, not 304) or counted towards a 304 for a request
without a valid credential.  Other methods pass (writes check their own scopes; CORS
preflights carry no credentials), and so does every other path: ``/health``, ``/ready``,
``/metrics``, ``/docs``, ``/openapi.json`` and the static page stay public.

Authorized answers are rewritten on the way out, because they may no longer be stored
by a shared cache or reused for another caller: ``Cache-Control`` ``public`` (and the
shared-cache-only ``s-maxage`` / ``proxy-revalidate``) become ``private`` (a response
without the field gets ``private``; ``no-store`` is left alone), and ``Vary`` gains
``Authorization, X-API-Key`` — on 200 and 304 alike, and on the refusals too.  The
payload's precomputed header tuples are never mutated: each answer gets a new list.

The check per request is the authenticator's credential cache (a hash and a dict
lookup once a credential has been seen, see :class:`~leaderboard_api.auth.identities.
Authenticator`), plus one wrapped ``send``.  Put it inside metrics, tracing and the
access log (so refusals are counted and logged) and outside :class:`~leaderboard_api.
serving.fastpath.FastPath`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard_api.auth.dependencies import auth_problem
from leaderboard_api.auth.identities import Authenticator
from leaderboard_api.auth.scopes import READ, AuthUnavailable, MissingScope, NotAuthenticated
from leaderboard_api.observability.routes import app_path

__all__ = ["DEFAULT_PREFIXES", "ReadAuth", "private_cache_control", "with_vary"]

DEFAULT_PREFIXES: Final = ("/v1", "/api")
_METHODS: Final = frozenset({"GET", "HEAD"})
_VARY: Final = (b"Authorization", b"X-API-Key")
#: Directives that only speak to shared caches, meaningless once the answer is private.
_SHARED_ONLY: Final = frozenset({b"public", b"s-maxage", b"proxy-revalidate"})
#: Most distinct header lists whose private form is kept (then the memo starts over).
_MEMO_LIMIT: Final = 1024

RawHeaders = Iterable[tuple[bytes, bytes]]
Headers = tuple[tuple[bytes, bytes], ...]


def private_cache_control(value: bytes) -> bytes:
    """``value`` with ``public`` (and shared-cache-only directives) turned into ``private``."""
    directives = [part.strip() for part in value.split(b",") if part.strip()]
    names = [part.partition(b"=")[0].strip().lower() for part in directives]
    if b"no-store" in names:
        return value
    kept = [part for part, name in zip(directives, names, strict=True) if name not in _SHARED_ONLY]
    kept = [part for part in kept if part.partition(b"=")[0].strip().lower() != b"private"]
    return b", ".join([b"private", *kept])


def with_vary(headers: RawHeaders, names: Sequence[bytes] = _VARY) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``names`` in their one ``Vary`` field (merged, never duplicated)."""
    out = list(headers)
    for index, (name, value) in enumerate(out):
        if name.lower() == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"*" in tokens:
                return out
            missing = [item for item in names if item.lower() not in tokens]
            if missing:
                out[index] = (name, b", ".join([value, *missing]))
            return out
    out.append((b"vary", b", ".join(names)))
    return out


class ReadAuth:
    """ASGI middleware refusing reads under ``prefixes`` without the ``scope`` scope.

    Parameters
    ----------
    app
        What it guards: the fast path (which wraps the framework).
    authenticator
        Verifies the credentials (and caches the outcome per credential).
    scope
        The scope reads need (``read``; ``admin`` implies it).
    prefixes
        Path prefixes that are private (a prefix matches itself and what is below it).
    """

    __slots__ = ("_app", "_authenticator", "_exact", "_memo", "_prefixes", "_scope")

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        scope: str = READ,
        prefixes: Sequence[str] = DEFAULT_PREFIXES,
    ) -> None:
        cleaned = tuple(prefix.rstrip("/") for prefix in prefixes)
        if not cleaned or any(not prefix.startswith("/") for prefix in cleaned):
            msg = f"read-auth prefixes must be paths starting with '/', got {list(prefixes)}"
            raise ValueError(msg)
        self._app = app
        self._authenticator = authenticator
        self._scope = scope
        self._exact = frozenset(cleaned)
        self._prefixes = tuple(f"{prefix}/" for prefix in cleaned)
        self._memo: dict[tuple[int, Headers], Headers] = {}

    @property
    def app(self) -> ASGIApp:
        """The wrapped application."""
        return self._app

    def protects(self, path: str) -> bool:
        """Whether a GET of ``path`` (without root_path) needs credentials."""
        return path.startswith(self._prefixes) or path in self._exact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self._app(scope, receive, send)
            return
        path = app_path(scope)
        if not self.protects(path):
            await self._app(scope, receive, send)
            return
        try:
            await self._authenticator.authorize(scope["headers"], self._scope)
        except (NotAuthenticated, MissingScope, AuthUnavailable) as exc:
            await self._refuse(scope, send, exc, path)
            return

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = self._private(message["status"], message.get("headers", ()))
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_private)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        exc: NotAuthenticated | MissingScope | AuthUnavailable,
        path: str,
    ) -> None:
        response = auth_problem(exc, authenticator=self._authenticator, instance=path)
        headers = with_vary(response.raw_headers)
        start = {"type": "http.response.start", "status": response.status_code}
        await send({**start, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else bytes(response.body)
        await send({"type": "http.response.body", "body": body})

    def _private(self, status: int, headers: RawHeaders) -> list[tuple[bytes, bytes]]:
        # A payload answers with the same header tuples every time: rewrite each list once.
        key = (status, tuple(headers))
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[key] = tuple(_privatized(status, key[1]))
        return list(found)


def _privatized(status: int, headers: RawHeaders) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    seen = False
    for name, value in headers:
        if status < 400 and name.lower() == b"cache-control":
            seen = True
            value = private_cache_control(value)
        out.append((name, value))
    if not seen and status < 400:
        out.append((b"cache-control", b"private"))
    return with_vary(out)
