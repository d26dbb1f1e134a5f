"""Infrastructure routes at the root: health, readiness, robots, favicon and the web page."""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import UTC, datetime
from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from leaderboard_api import schemas
from leaderboard_api.problems import problem
from leaderboard_api.serving.payload import Payload
from leaderboard_api.state import AppState, get_state

router = APIRouter(tags=["infra"])
GET = ["GET", "HEAD"]
NO_STORE = {"cache-control": "no-store"}
STATIC_CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=3600"
ROBOTS = b"User-agent: *\nAllow: /\nDisallow: /v1/\nDisallow: /admin/\n"
# A 1x1 transparent ICO-compatible PNG keeps browsers from asking again and again.
FAVICON = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@router.api_route("/health", methods=GET, include_in_schema=True)
async def health() -> Response:
    """Liveness: the process answers; never touches data."""
    return Response(b'{"status":"ok"}', media_type="application/json", headers=NO_STORE)


@router.api_route("/ready", methods=GET, response_model=schemas.ReadyOut)
async def ready(request: Request) -> Response:
    """Readiness: 503 with Retry-After until the dataset is loaded and warm, then 200."""
    state = get_state(request)
    body = ready_body(state)
    if state.ops is not None:
        healthy, detail = await asyncio.to_thread(state.ops.health)
        body["stateStore"] = "ok" if healthy else detail
    if not state.ready:
        return Response(
            orjson.dumps(body),
            status_code=503,
            media_type="application/json",
            headers={**NO_STORE, "retry-after": "2"},
        )
    return Response(orjson.dumps(body), media_type="application/json", headers=NO_STORE)


@router.api_route("/metrics", methods=GET, response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition (OpenMetrics when the scraper asks for it)."""
    state = get_state(request)
    if state.metrics is None:
        return problem(404, detail="metrics are turned off", instance=request.url.path)
    from leaderboard_api.observability.metrics import render_metrics

    body, content_type = render_metrics(state.metrics, accept=request.headers.get("accept"))
    return Response(body, headers={**NO_STORE, "content-type": content_type})


def ready_body(state: AppState) -> dict[str, object]:
    loaded = state.loaded
    snap = loaded.snapshot if loaded else None
    return schemas.ReadyOut(
        status="ready" if state.ready else ("loading" if state.last_error is None else "error"),
        snapshot=snap.id if snap else None,
        source=snap.source if snap else None,
        loaded_at=snap.loaded_at.isoformat() if snap else None,
        updated_at=snap.updated_at.isoformat() if snap else None,
        rows=snap.stats.rows if snap else None,
        warmed=state.warmed,
        warmup_complete=state.warm_done,
        load_seconds=state.load_seconds,
        warmup_seconds=state.warmup_seconds,
        last_error=state.last_error,
        warnings=[w.render() for w in snap.warnings] if snap else [],
    ).model_dump(by_alias=True)


def static_dir() -> Path:
    """The web page's folder: ``static/`` beside the package (a source checkout or image)."""
    return Path(__file__).resolve().parents[2] / "static"


def static_files(root: Path) -> list[tuple[str, Path]]:
    """``(url path, file)`` for every file under ``root``; ``index.html`` also serves ``/``."""
    if not root.is_dir():
        return []
    out: list[tuple[str, Path]] = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        out.append(("/" + rel, file))
        if rel == "index.html":
            out.append(("/", file))
    return out


def _media_type(file: Path) -> str:
    if file.suffix == ".js":
        return "text/javascript; charset=utf-8"
    media, _ = mimetypes.guess_type(file.name)
    media = media or "application/octet-stream"
    if media.startswith("text/") or media == "image/svg+xml":
        media += "; charset=utf-8"
    return media


def static_payloads(root: Path) -> dict[str, Payload]:
    """Every file under ``root`` as a Payload keyed by URL path (see ``static_files``)."""
    built: dict[Path, Payload] = {}
    out: dict[str, Payload] = {}
    for path, file in static_files(root):
        if file not in built:
            built[file] = Payload.build(
                file.read_bytes(),
                media_type=_media_type(file),
                last_modified=datetime.fromtimestamp(int(file.stat().st_mtime), tz=UTC),
                cache_control=STATIC_CACHE_CONTROL,
            )
        out[path] = built[file]
    return out


#: Fixed, so the built-in files' validators are the same on every replica and restart.
BUILTIN_MODIFIED = datetime(2024, 1, 1, tzinfo=UTC)
BUILTIN_PATHS = ("/robots.txt", "/favicon.ico")


def builtin_payloads() -> dict[str, Payload]:
    """robots.txt and favicon.ico."""
    return {
        "/robots.txt": Payload.build(
            ROBOTS,
            media_type="text/plain; charset=utf-8",
            last_modified=BUILTIN_MODIFIED,
            cache_control="public, max-age=86400",
        ),
        "/favicon.ico": Payload.build(
            FAVICON,
            media_type="image/png",
            last_modified=BUILTIN_MODIFIED,
            cache_control="public, max-age=86400",
        ),
    }
