"""Answer a request the fast path missed from payloads on disk, before the framework routes.

Routes whose payloads live in an on-disk store (the long tail, and every route right after
a restart) are known by path: ``find(path, query)`` gives the content key of one, or None.
:class:`StoreFallback` then reads the payload off the event loop with ``load(key)`` (which
also makes it available to the fast path for the next request) and answers exactly as the
fast path would; a key the store no longer holds goes on to the framework, which builds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from leaderboard_api.serving.fastpath import OriginHeaders, send_payload
from leaderboard_api.serving.payload import Payload

__all__ = ["StoreFallback"]

Find = Callable[[str, bytes], str | None]
Load = Callable[[str, str, bytes], Awaitable[Payload | None]]


class StoreFallback:
    """ASGI middleware: ``find`` a stored route, ``load`` it, send it; else pass on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        find: Find,
        load: Load,
        origin_headers: OriginHeaders | None = None,
    ) -> None:
        self.app = app
        self._find = find
        self._load = load
        self._origin_headers = origin_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            query: bytes = scope.get("query_string", b"")
            key = self._find(path, query)
            if key is not None:
                payload = await self._load(key, path, query)
                if payload is not None:
                    extra: list[tuple[bytes, bytes]] = []
                    if self._origin_headers is not None:
                        for name, value in scope.get("headers", ()):
                            if name == b"origin":
                                extra.extend(self._origin_headers(value))
                                break
                    await send_payload(scope, receive, send, payload, extra_headers=extra)
                    return
        await self.app(scope, receive, send)
