"""/v1/icon/{name}: a benchmark's icon fetched once from an allowed host and served immutable.

What it trusts: nothing the upstream says about the bytes. One deadline bounds the whole
fetch (connect, redirects, headers and body); redirects stay within the allow-list; the
type is read from the bytes' own signature, not the upstream's ``Content-Type``; SVG (which
can carry script) goes out sandboxed by a ``Content-Security-Policy``.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import APIRouter, Request
from starlette.responses import Response

from leaderboard_api.problems import problem
from leaderboard_api.serving.fastpath import PayloadResponse
from leaderboard_api.serving.payload import Payload
from leaderboard_api.state import AppState

router = APIRouter(prefix="/v1", tags=["v1"])
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_REDIRECTS = 3
#: Sent with every icon: the browser must not second-guess the type read from the bytes.
ICON_HEADERS = (("x-content-type-options", "nosniff"),)
#: An SVG is a document that can run script: opened directly it gets no script, no
#: network, no same-origin access; as an ``<img>`` it renders as usual.
SVG_HEADERS = (
    *ICON_HEADERS,
    ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    ("content-disposition", "inline"),
)
#: Raster signatures: (offset, magic bytes, media type).
_SIGNATURES = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (4, b"ftypavif", "image/avif"),
)


class IconError(Exception):
    """The icon cannot be served; carries the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(detail)


def sniff_image(body: bytes) -> str | None:
    """The media type the bytes themselves show (PNG, JPEG, GIF, WebP, ICO, AVIF, SVG)."""
    for offset, magic, media in _SIGNATURES:
        if body[offset : offset + len(magic)] == magic:
            return media
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) and b"<svg" in head:
        return "image/svg+xml"
    return None


def _allowed(url: str, hosts: list[str]) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and (parts.hostname or "") in set(hosts)


async def _fetch(client: httpx.AsyncClient, url: str, *, hosts: list[str], max_bytes: int) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        if not _allowed(url, hosts):
            host = urlsplit(url).hostname
            raise IconError(403, f"icon host {host!r} is not in the allow-list")
        try:
            async with client.stream("GET", url) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise IconError(502, f"icon source answered {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise IconError(502, f"icon is larger than {max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise IconError(502, f"icon is larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise IconError(502, f"icon fetch failed: {type(exc).__name__}") from exc
    raise IconError(502, "too many redirects")


async def fetch_icon(
    url: str, *, hosts: list[str], max_bytes: int, timeout: float
) -> tuple[bytes, str]:
    """GET ``url`` following redirects only within ``hosts``, at most ``max_bytes``, all
    within ``timeout`` seconds; returns the bytes and the image type they show."""
    # No automatic decompression (aiter_raw, identity only): max_bytes bounds what is read.
    headers = {"accept": "image/*", "accept-encoding": "identity"}
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(follow_redirects=False, timeout=timeout, headers=headers) as client,
        ):
            body = await _fetch(client, url, hosts=hosts, max_bytes=max_bytes)
    except TimeoutError as exc:
        raise IconError(504, f"icon source did not answer within {timeout:g} s") from exc
    media = sniff_image(body)
    if media is None:
        raise IconError(502, "icon source sent no PNG, JPEG, GIF, WebP, ICO, AVIF or SVG image")
    return body, media


@router.api_route("/icon/{name:path}", methods=["GET", "HEAD"], response_class=Response)
async def benchmark_icon(request: Request, name: str) -> Response:
    state: AppState = request.app.state.lb
    snapshot = state.snapshot
    bench = snapshot.benchmarks.get(name)
    if bench is None:
        return problem(404, detail=f"unknown benchmark {name!r}", instance=request.url.path)
    if not bench.icon:
        return problem(404, detail=f"benchmark {name!r} has no icon", instance=request.url.path)
    settings = state.settings
    # Keyed by the icon's source: the same URL gives the same image on every snapshot.
    key = f"icon\x1f{name}\x1f{bench.icon}"
    ready = state.cache.get_ready(key)
    if ready is not None:
        return PayloadResponse(ready)
    # Single flight: concurrent cold requests share one fetch; failures are not remembered.
    inflight: dict[str, asyncio.Task[tuple[bytes, str]]] = state.icon_fetches
    task = inflight.get(name)
    if task is None:
        # Spawned on the state: the lifespan cancels a fetch still running at shutdown.
        task = state.spawn(
            fetch_icon(
                bench.icon,
                hosts=settings.icon_allowed_hosts,
                max_bytes=settings.icon_max_bytes,
                timeout=settings.icon_timeout_seconds,
            )
        )
        inflight[name] = task
        task.add_done_callback(lambda _: inflight.pop(name, None))
    try:
        body, media = await asyncio.shield(task)
    except IconError as exc:
        return problem(exc.status, detail=str(exc), instance=request.url.path)

    def build() -> Payload:
        return Payload.build(
            body,
            media_type=media,
            last_modified=snapshot.updated_at,
            cache_control=IMMUTABLE,
            extra_headers=SVG_HEADERS if media == "image/svg+xml" else ICON_HEADERS,
        )

    payload = await state.cache.get_or_build(key, build)
    state.routing.keys.remember((request.scope["path"], b""), key)
    return PayloadResponse(payload)
