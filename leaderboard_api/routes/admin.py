"""POST /admin/reload: check the source now; bearer token from settings, disabled without one."""

from __future__ import annotations

import hmac

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from leaderboard_api.problems import problem
from leaderboard_api.state import State

router = APIRouter(tags=["admin"])
CHALLENGE = {"www-authenticate": 'Bearer realm="leaderboard-api"'}


@router.post("/admin/reload", responses={401: {}, 403: {}, 404: {}, 422: {}})
async def admin_reload(request: Request, state: State) -> Response:
    """Check for a new dataset version now and swap it in when it changed."""
    path = request.url.path
    secret = state.settings.admin_token
    if secret is None:  # settings refuse blank and short tokens; unset means disabled
        return problem(404, detail="the admin API is disabled (no admin token set)", instance=path)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return problem(401, detail="a bearer token is required", instance=path, headers=CHALLENGE)
    # Constant time: the comparison must not reveal how much of the token matched.
    if not hmac.compare_digest(given.strip().encode(), secret.get_secret_value().encode()):
        return problem(403, detail="the bearer token is not valid", instance=path)
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
