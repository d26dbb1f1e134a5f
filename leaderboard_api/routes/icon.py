"""/v1/icon/{name}: a benchmark's icon fetched once from an allowed host and served immutable."""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import APIRouter, Request
from starlette.responses import Response

from leaderboard_api.lifecycle import AppState
from leaderboard_api.problems import problem
from leaderboard_api.serving.fastpath import PayloadResponse
from leaderboard_api.serving.payload import Payload

router = APIRouter(prefix="/v1", tags=["v1"])
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_REDIRECTS = 3


class IconError(Exception):
    """The icon cannot be served; carries the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(detail)


def _allowed(url: str, hosts: list[str]) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and (parts.hostname or "") in set(hosts)


async def fetch_icon(
    url: str, *, hosts: list[str], max_bytes: int, timeout: float
) -> tuple[bytes, str]:
    """GET ``url`` following redirects only within ``hosts``, at most ``max_bytes``."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
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
                        msg = f"icon source answered {response.status_code}"
                        raise IconError(502, msg)
                    media = response.headers.get("content-type", "").split(";")[0].strip()
                    if not media.startswith("image/"):
                        raise IconError(502, f"icon source sent {media or 'no type'}, not an image")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise IconError(502, f"icon is larger than {max_bytes} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks), media
            except httpx.HTTPError as exc:
                raise IconError(502, f"icon fetch failed: {type(exc).__name__}") from exc
    raise IconError(502, "too many redirects")


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
    key = (snapshot.id, f"icon:{name}", ())
    ready = state.cache.get_ready(key)
    if ready is not None:
        return PayloadResponse(ready)
    # Single flight: concurrent cold requests share one fetch; failures are not remembered.
    inflight: dict[str, asyncio.Task[tuple[bytes, str]]] = state.icon_fetches
    task = inflight.get(name)
    if task is None:
        task = asyncio.get_running_loop().create_task(
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
            body, media_type=media, last_modified=snapshot.updated_at, cache_control=IMMUTABLE
        )

    payload = await state.cache.get_or_build(key, build)
    state.cache.put((snapshot.id, request.scope["path"], b""), payload)
    return PayloadResponse(payload)
