"""One request against a fresh app in this process: ``leaderboard-api get PATH``."""

from __future__ import annotations

import asyncio

import httpx

from leaderboard_api.app import create_app
from leaderboard_api.settings import Settings


async def get(
    settings: Settings, path: str, *, headers: list[str] | None = None, timeout: float = 120.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Start the app (lifespan included), wait until it is ready, run one GET, stop it."""
    app = create_app(settings.model_copy(update={"warmup": False}))
    state = app.state.lb
    request_headers = {
        name.strip(): value.strip()
        for name, value in (h.split(":", 1) for h in headers or [] if ":" in h)
    }
    async with app.router.lifespan_context(app):
        deadline = asyncio.get_running_loop().time() + timeout
        while not state.ready and state.last_error is None:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            response = await client.get(path, headers=request_headers)
    return response.status_code, list(response.headers.items()), response.content
