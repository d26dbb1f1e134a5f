"""The yardstick: a framework-free ASGI app serving precomputed payloads by exact path.

The service's fast path is compared against this in wrk runs: same payload bytes, same
negotiation and conditional rules (it imports them), but no framework, no middleware,
no cache, no query handling.  Anything not in the table is a bare 404.

    python benchmarks/bare_app.py DIR [--port 8001]

serves every file under DIR at ``/<relative path>`` (and without its ``.json``/``.csv``
suffix), built into payloads at startup with the service's compression policy.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leaderboard_api.serving.conditional import EncodingNegotiator, not_modified_variant
from leaderboard_api.serving.payload import Payload

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MEDIA_TYPES = {".json": "application/json", ".csv": "text/csv; charset=utf-8"}
_NOT_FOUND = [(b"content-type", b"text/plain"), (b"content-length", b"9")]


def make_app(payloads: Mapping[str, Payload]) -> ASGIApp:
    """Return an ASGI app answering GET/HEAD for ``payloads`` keyed by decoded path."""
    table = dict(payloads)
    negotiator = EncodingNegotiator()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do
        payload = table.get(scope["path"])
        if payload is None or scope["method"] not in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        accept = inm = ims = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value
            elif name == b"if-none-match":
                inm = value.decode("latin-1")
            elif name == b"if-modified-since":
                ims = value.decode("latin-1")
        variant = negotiator.choose(accept, payload)
        matched = None
        if inm is not None or ims is not None:
            matched = not_modified_variant(
                payload, if_none_match=inm, if_modified_since=ims, preferred=variant
            )
        if matched is not None:
            status, headers, body = 304, matched.not_modified_headers, b""
        else:
            status, headers, body = 200, variant.headers, variant.body
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return app


def load_dir(root: Path, *, cache_control: str = "public, max-age=60") -> dict[str, Payload]:
    """Build a payload per file under ``root``, keyed by URL path, with and without suffix."""
    payloads: dict[str, Payload] = {}
    for file in sorted(path for path in root.rglob("*") if path.is_file()):
        payload = Payload.build(
            file.read_bytes(),
            media_type=_MEDIA_TYPES.get(file.suffix, "application/octet-stream"),
            last_modified=datetime.fromtimestamp(int(file.stat().st_mtime), tz=UTC),
            cache_control=cache_control,
        )
        relative = "/" + file.relative_to(root).as_posix()
        payloads[relative] = payload
        if file.suffix in _MEDIA_TYPES:
            payloads.setdefault(relative.removesuffix(file.suffix), payload)
    return payloads


def main() -> None:
    """Serve a directory with uvicorn (same server settings as the service's defaults)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", type=Path, help="directory of files to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    payloads = load_dir(args.root)
    print(f"serving {len(payloads)} paths from {args.root}")
    uvicorn.run(
        make_app(payloads), host=args.host, port=args.port, log_level="warning", lifespan="off"
    )


if __name__ == "__main__":
    main()
