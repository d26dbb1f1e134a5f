"""POST /admin/reload: check the source now (scope ``admin``: an API key or the admin token)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from leaderboard_api.auth import AUTH_RESPONSES, require
from leaderboard_api.auth.scopes import Identity
from leaderboard_api.problems import problem
from leaderboard_api.state import State

router = APIRouter(tags=["admin"])
Admin = Annotated[Identity, Depends(require("admin"))]


@router.post("/admin/reload", responses={**AUTH_RESPONSES, 422: {}, 503: {}})
async def admin_reload(request: Request, state: State, identity: Admin) -> Response:
    """Check for a new dataset version now and swap it in when it changed."""
    path = request.url.path
    if state.reload is None:
        return problem(503, detail="the service is still starting", instance=path)
    outcome = await state.reload()
    if outcome.result == "error":
        return problem(
            422,
            detail=f"reload failed; still serving {outcome.previous}: {outcome.error}",
            instance=path,
        )
    body = {
        "result": outcome.result,
        "snapshot": outcome.snapshot,
        "previous": outcome.previous,
        "seconds": round(outcome.seconds, 3),
        "reused": outcome.reused,
        "built": outcome.built,
    }
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"cache-control": "no-store"}
    )
