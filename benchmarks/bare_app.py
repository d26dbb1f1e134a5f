"""The yardstick: a framework-free ASGI app replaying recorded responses by exact path.

The service's hot path is compared against this in wrk runs.  It shares no code with the
service: ``benchmarks/bench_api.py`` records the service's own answers (headers and raw
bytes of the identity 200, the gzip 200 and the 304 for each ETag) into a manifest, and
this app sends them back.  Its request parsing is the least that is correct for the
benchmark's requests and nothing more: an ``If-None-Match`` equal to a recorded ETag
gets that 304, an ``Accept-Encoding`` containing ``gzip`` gets the gzip bytes, anything
else the identity bytes.  No q-values, no lists, no ``W/``, no ``If-Modified-Since``, no
query strings; a path not recorded is a bare 404.

    python benchmarks/bare_app.py DIR [--port 8001]

serves ``DIR/manifest.json`` (see :func:`save` and :func:`load_dir`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

_NOT_FOUND: RawHeaders = [(b"content-type", b"text/plain"), (b"content-length", b"9")]
_MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class Answer:
    """One recorded response: status, headers (as the service sent them) and body bytes."""

    status: int
    headers: RawHeaders
    body: bytes


@dataclass(frozen=True, slots=True)
class Route:
    """What one path answers: identity and gzip 200s, and a 304 per exact ETag value."""

    identity: Answer
    gzip: Answer
    not_modified: Mapping[bytes, Answer]


def make_app(routes: Mapping[str, Route]) -> ASGIApp:
    """Return an ASGI app answering GET/HEAD for ``routes`` keyed by decoded path."""
    table = dict(routes)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do
        route = table.get(scope["path"])
        if route is None or scope["method"] not in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        answer: Answer | None = None
        wants_gzip = False
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                answer = route.not_modified.get(value)
            elif name == b"accept-encoding":
                wants_gzip = b"gzip" in value
        if answer is None:
            answer = route.gzip if wants_gzip else route.identity
        # A fresh list per response, as any app building its headers would hand over.
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": [*answer.headers]}
        )
        body = b"" if scope["method"] == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body})

    return app


def _encode_answer(answer: Answer, body_file: str | None) -> dict[str, Any]:
    return {
        "status": answer.status,
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in answer.headers
        ],
        "body": body_file,
    }


def _decode_answer(entry: Mapping[str, Any], root: Path) -> Answer:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in entry["headers"]
    ]
    body = (root / entry["body"]).read_bytes() if entry["body"] else b""
    return Answer(status=int(entry["status"]), headers=headers, body=body)


def save(root: Path, routes: Mapping[str, Route]) -> None:
    """Write ``routes`` under ``root``: bodies as files, everything else in the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}
    for index, (path, route) in enumerate(sorted(routes.items())):
        names = {"identity": f"{index}.identity", "gzip": f"{index}.gzip"}
        (root / names["identity"]).write_bytes(route.identity.body)
        (root / names["gzip"]).write_bytes(route.gzip.body)
        manifest[path] = {
            "identity": _encode_answer(route.identity, names["identity"]),
            "gzip": _encode_answer(route.gzip, names["gzip"]),
            "not_modified": {
                tag.decode("latin-1"): _encode_answer(answer, None)
                for tag, answer in route.not_modified.items()
            },
        }
    (root / _MANIFEST).write_text(json.dumps(manifest, indent=1))


def load_dir(root: Path) -> dict[str, Route]:
    """Read the routes :func:`save` wrote under ``root``."""
    manifest = json.loads((root / _MANIFEST).read_text())
    return {
        path: Route(
            identity=_decode_answer(entry["identity"], root),
            gzip=_decode_answer(entry["gzip"], root),
            not_modified={
                tag.encode("latin-1"): _decode_answer(answer, root)
                for tag, answer in entry["not_modified"].items()
            },
        )
        for path, entry in manifest.items()
    }


def main() -> None:
    """Serve a recorded directory with uvicorn (the service's server settings)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", type=Path, help="directory holding manifest.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    routes = load_dir(args.root)
    print(f"serving {len(routes)} paths from {args.root}")
    uvicorn.run(
        make_app(routes),
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        server_header=False,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
