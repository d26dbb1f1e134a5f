"""The write side's native routes (routes/queue.py) on a real app and a real SQLite store.

Requests go through httpx's ASGI transport into ``create_app``; API keys are created in the
app's own store.  The Hub check runs the real ``huggingface_hub.HfApi.model_info`` against
:class:`FakeHub`, a stand-in for the Hub's ``GET /api/models/{repo}[/revision/{rev}]`` on
127.0.0.1.  The durability test starts a real server process, kills it with SIGKILL in the
middle of a burst of writes and checks every acknowledged write on a restarted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from leaderboard_api.app import LeaderboardApp, create_app
from leaderboard_api.operational.records import Actor
from leaderboard_api.operational.repository import StateStore
from leaderboard_api.settings import Settings
from leaderboard_api.state import AppState
from tests.api_support import free_port, running, server_process, settings

KNOWN = "acme/acme-chat-7b"  # a model of the embedded sample's catalog
OTHER = "acme/embed-base-v1"
SUBMISSION_KEYS = {
    "id",
    "model",
    "revision",
    "precision",
    "modelType",
    "baseModel",
    "weightType",
    "status",
    "submitter",
    "claimedBy",
    "datasetVersion",
    "reason",
    "createdAt",
    "updatedAt",
}


def app_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings on a fresh SQLite store."""
    return settings(**{"state": f"sqlite:///{tmp_path}/state.db", **overrides})


class Client:
    """A started app, its store and an httpx client, with keys by name."""

    def __init__(self, app: LeaderboardApp, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http
        self.keys: dict[str, str] = {}

    @property
    def ops(self) -> StateStore:
        state: AppState = self.app.state.lb
        assert state.ops is not None
        return state.ops

    def key(self, name: str, *scopes: str) -> dict[str, str]:
        """Authorization headers of a new API key ``name`` with ``scopes``."""
        raw = self.ops.keys.create(name, list(scopes), by=Actor("test")).raw
        self.keys[name] = raw
        return {"Authorization": f"Bearer {raw}"}


@contextlib.asynccontextmanager
async def started(tmp_path: Path, **overrides: Any) -> AsyncIterator[Client]:
    app = create_app(app_settings(tmp_path, **overrides))
    async with running(app) as http:
        yield Client(app, http)


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- submissions ----------------------------------------------------------------------------


async def test_submit_list_and_get(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        alice = c.key("alice", "submit")
        body = {
            "model": KNOWN,
            "modelType": "chat",
            "baseModel": "acme/base",
            "weightType": "Original",
        }
        created = await c.http.post("/v1/submissions", json=body, headers=alice)
        assert created.status_code == 201, created.text
        got = created.json()
        assert set(got) == SUBMISSION_KEYS
        assert got["status"] == "pending"
        assert got["submitter"] == "alice"
        assert (got["revision"], got["precision"]) == ("main", "float16")  # the defaults
        assert (got["modelType"], got["baseModel"], got["weightType"]) == (
            "chat",
            "acme/base",
            "Original",
        )
        assert got["createdAt"] == got["updatedAt"]
        assert got["createdAt"].endswith("Z")
        assert created.headers["location"] == f"/v1/submissions/{got['id']}"
        assert created.headers["cache-control"] == "no-store"
        assert created.headers["ratelimit-policy"] == '"submissions";q=10;w=86400'
        # snake_case is taken too.
        other = await c.http.post(
            "/v1/submissions",
            json={"model": OTHER, "revision": "abc", "model_type": "x"},
            headers=alice,
        )
        assert other.status_code == 201, other.text

        listed = await c.http.get("/v1/submissions")
        assert listed.status_code == 200
        assert [s["id"] for s in listed.json()] == [got["id"], other.json()["id"]]
        assert listed.headers["cache-control"] == "no-cache"
        one = await c.http.get(f"/v1/submissions/{got['id']}")
        assert one.json() == got
        head = await c.http.head(f"/v1/submissions/{got['id']}")
        assert head.status_code == 200
        assert head.content == b""
        assert (await c.http.get("/v1/submissions?status=pending")).json() == listed.json()
        assert (await c.http.get("/v1/submissions?status=running")).json() == []

        problem_of(await c.http.get("/v1/submissions/999"), 404)
        problem_of(await c.http.get("/v1/submissions?status=bogus"), 422)
        problem_of(await c.http.get("/v1/submissions?statos=pending"), 422)
        problem_of(await c.http.post("/v1/submissions", json={"model": ""}, headers=alice), 422)
        refused = await c.http.post("/v1/submissions", json={"model": KNOWN, "x": 1}, headers=alice)
        problem_of(refused, 422)

        # Every write names its author and client address in the audit log.
        audit = [e for e in c.ops.audit() if e.action == "submission.create"]
        assert {(e.identity, e.address) for e in audit} == {("alice", "127.0.0.1")}


async def test_duplicates_are_409_naming_the_existing_one(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        alice = c.key("alice", "submit")
        evaluator = c.key("ev", "evaluate")
        first = (await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice)).json()
        again = await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice)
        body = problem_of(again, 409)
        assert body["existingId"] == first["id"]
        assert f"submission {first['id']} is pending" in body["detail"]
        # Another precision or revision is another submission.
        bf16 = {"model": KNOWN, "precision": "bfloat16"}
        assert (await c.http.post("/v1/submissions", json=bf16, headers=alice)).status_code == 201
        # Running and finished ones block a twin too; a failed one does not.
        claimed = (await c.http.post("/v1/submissions/claim", headers=evaluator)).json()
        assert claimed["id"] == first["id"]
        problem_of(await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice), 409)
        failed = await c.http.post(
            f"/v1/submissions/{first['id']}/status",
            json={"status": "failed", "reason": "out of memory"},
            headers=evaluator,
        )
        assert failed.json()["status"] == "failed"
        assert failed.json()["reason"] == "out of memory"
        resubmitted = await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice)
        assert resubmitted.status_code == 201
        # The failed one cannot be retried now that its twin is queued.
        retry = await c.http.post(
            f"/v1/submissions/{first['id']}/status", json={"status": "pending"}, headers=evaluator
        )
        problem_of(retry, 409)


async def test_scopes_and_credentials(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        voter = c.key("vera", "vote")
        submitter = c.key("sam", "submit")
        admin = c.key("root", "admin")
        anonymous = await c.http.post("/v1/submissions", json={"model": KNOWN})
        problem_of(anonymous, 401)
        assert "www-authenticate" in anonymous.headers
        bad = {"Authorization": "Bearer lbk_000000000000_nope"}
        problem_of(await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=bad), 401)
        wrong = await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=voter)
        assert problem_of(wrong, 403)["scope"] == "submit"
        assert (await c.http.post("/v1/submissions/claim", headers=submitter)).status_code == 403
        status = {"status": "failed", "reason": "x"}
        assert (
            await c.http.post("/v1/submissions/1/status", json=status, headers=voter)
        ).status_code == 403
        vote = {"vote": "up"}
        assert (
            await c.http.post(f"/v1/models/{KNOWN}/votes", json=vote, headers=submitter)
        ).status_code == 403
        assert (await c.http.delete(f"/v1/models/{KNOWN}/votes")).status_code == 401
        # X-API-Key works as well as Bearer; admin implies every scope.
        as_key = {"X-API-Key": c.keys["sam"]}
        assert (
            await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=as_key)
        ).status_code == 201
        assert (await c.http.post("/v1/submissions/claim", headers=admin)).status_code == 200
        # Reads are public (unless read_auth is on).
        assert (await c.http.get("/v1/submissions")).status_code == 200


async def test_rate_limits_answer_429(tmp_path: Path) -> None:
    async with started(
        tmp_path, rate_limit_submissions="2/minute", rate_limit_votes="2/minute"
    ) as c:
        alice = c.key("alice", "submit", "vote")
        for revision in ("r1", "r2"):
            ok = await c.http.post(
                "/v1/submissions", json={"model": KNOWN, "revision": revision}, headers=alice
            )
            assert ok.status_code == 201
        assert ok.headers["ratelimit"] == '"submissions";r=0;t=60'
        over = await c.http.post(
            "/v1/submissions", json={"model": KNOWN, "revision": "r3"}, headers=alice
        )
        body = problem_of(over, 429)
        assert body["violated-policies"] == ["submissions"]
        assert int(over.headers["retry-after"]) >= 1
        assert len(c.ops.submissions.list()) == 2  # the refused one never reached the store
        # Votes have their own policy (deleting counts too).
        votes = f"/v1/models/{KNOWN}/votes"
        assert (await c.http.post(votes, json={"vote": "up"}, headers=alice)).status_code == 200
        assert (await c.http.delete(votes, headers=alice)).status_code == 204
        problem_of(await c.http.post(votes, json={"vote": "up"}, headers=alice), 429)


async def test_claim_order_most_up_votes_then_oldest(tmp_path: Path) -> None:
    async with started(tmp_path, submission_allow=["org/*"]) as c:
        alice = c.key("alice", "submit", "vote")
        evaluator = c.key("ev", "evaluate")
        ids = {}
        for name in ("org/old", "org/liked", "org/newer", "org/disliked"):
            made = await c.http.post("/v1/submissions", json={"model": name}, headers=alice)
            ids[name] = made.json()["id"]
        for voter in ("v1", "v2"):
            headers = c.key(voter, "vote")
            await c.http.post("/v1/models/org/liked/votes", json={"vote": "up"}, headers=headers)
            await c.http.post(
                "/v1/models/org/disliked/votes", json={"vote": "down"}, headers=headers
            )
        await c.http.post("/v1/models/org/newer/votes", json={"vote": "up"}, headers=alice)
        order = []
        while (
            got := await c.http.post("/v1/submissions/claim", headers=evaluator)
        ).status_code == 200:
            claimed = got.json()
            assert claimed["status"] == "running"
            assert claimed["claimedBy"] == "ev"
            order.append(claimed["model"])
        assert got.status_code == 204
        assert got.content == b""
        assert order == ["org/liked", "org/newer", "org/old", "org/disliked"]
        listed = (await c.http.get("/v1/submissions?status=running")).json()
        assert sorted(s["id"] for s in listed) == sorted(ids.values())


async def test_status_transitions(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        alice = c.key("alice", "submit")
        ev1 = c.key("ev1", "evaluate")
        ev2 = c.key("ev2", "evaluate")
        admin = c.key("root", "admin")
        made = (await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice)).json()
        path = f"/v1/submissions/{made['id']}/status"

        async def move(body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            return await c.http.post(path, json=body, headers=headers)

        # pending: only a claim makes it running; it cannot finish.
        problem_of(await move({"status": "running"}, ev1), 409)
        problem_of(await move({"status": "finished", "datasetVersion": "v1"}, ev1), 409)
        await c.http.post("/v1/submissions/claim", headers=ev1)
        # running: finishing needs the dataset version and the evaluator holding it.
        problem_of(await move({"status": "finished"}, ev1), 422)
        problem_of(await move({"status": "finished", "datasetVersion": "v1"}, ev2), 409)
        problem_of(await move({"status": "failed"}, ev1), 422)  # a failure needs a reason
        problem_of(await move({"status": "bogus"}, ev1), 422)
        released = await move({"status": "pending"}, ev2)  # released back to the queue
        assert released.json()["status"] == "pending"
        assert released.json()["claimedBy"] is None
        await c.http.post("/v1/submissions/claim", headers=ev2)
        done = await move({"status": "finished", "datasetVersion": "abc123"}, ev2)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "finished"
        assert done.json()["datasetVersion"] == "abc123"
        assert done.headers["cache-control"] == "no-store"
        # finished is final.
        problem_of(await move({"status": "pending"}, admin), 409)
        problem_of(
            await c.http.post(
                "/v1/submissions/999/status", json={"status": "pending"}, headers=ev1
            ),
            404,
        )
        # An admin finishes what another evaluator holds.
        other = (await c.http.post("/v1/submissions", json={"model": OTHER}, headers=alice)).json()
        await c.http.post("/v1/submissions/claim", headers=ev1)
        forced = await c.http.post(
            f"/v1/submissions/{other['id']}/status",
            json={"status": "finished", "datasetVersion": "x"},
            headers=admin,
        )
        assert forced.json()["status"] == "finished"
        actions = [e.action for e in c.ops.audit(identity="ev2")]
        assert actions == ["submission.finished", "submission.claim", "submission.pending"]


# --- votes ----------------------------------------------------------------------------------


async def test_votes_replace_delete_and_count(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        alice = c.key("alice", "vote")
        bob = c.key("bob", "vote")
        path = f"/v1/models/{KNOWN}/votes"
        up = await c.http.post(path, json={"vote": "up"}, headers=alice)
        assert up.status_code == 200
        assert set(up.json()) == {"model", "user", "vote", "createdAt", "updatedAt"}
        assert (up.json()["model"], up.json()["user"], up.json()["vote"]) == (KNOWN, "alice", "up")
        await c.http.post(path, json={"vote": "up"}, headers=bob)
        assert (await c.http.get(path)).json() == {"total": 2, "up": 2, "down": 0}
        # A second vote replaces the first.
        down = await c.http.post(path, json={"vote": "down"}, headers=alice)
        assert down.json()["vote"] == "down"
        assert down.json()["createdAt"] == up.json()["createdAt"]
        assert (await c.http.get(path)).json() == {"total": 2, "up": 1, "down": 1}
        deleted = await c.http.delete(path, headers=bob)
        assert deleted.status_code == 204
        assert deleted.content == b""
        problem_of(await c.http.delete(path, headers=bob), 404)
        assert (await c.http.get(path)).json() == {"total": 1, "up": 0, "down": 1}
        assert (await c.http.get("/v1/models/nobody/votes")).json() == {
            "total": 0,
            "up": 0,
            "down": 0,
        }
        problem_of(await c.http.post(path, json={"vote": "sideways"}, headers=alice), 422)

        await c.http.post(f"/v1/models/{OTHER}/votes", json={"vote": "up"}, headers=alice)
        mine = (await c.http.get("/v1/votes", params={"user": "alice"})).json()
        assert [(v["model"], v["vote"]) for v in mine] == [(KNOWN, "down"), (OTHER, "up")]
        assert (await c.http.get("/v1/votes?user=bob")).json() == []
        problem_of(await c.http.get("/v1/votes"), 422)
        # The v1 model page is still v1's (the votes routes come first only for /votes).
        page = await c.http.get(f"/v1/models/{KNOWN}")
        assert page.status_code == 200
        assert page.json()["name"] == KNOWN


# --- reads: precomputed bytes keyed by the change counter -----------------------------------


@contextlib.contextmanager
def statements(store: StateStore) -> Iterator[list[str]]:
    """Every SQL statement the store's engine runs inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


async def test_reads_are_bytes_keyed_by_the_change_counter(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        alice = c.key("alice", "submit", "vote")
        await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice)
        await asyncio.sleep(1.1)  # the counter as last read is older than its 1 s
        with statements(c.ops) as seen:
            first = await c.http.get("/v1/submissions")
        assert first.status_code == 200
        assert any("FROM changes" in s for s in seen)
        assert any("FROM submissions" in s for s in seen)

        # The same read again: the counter was read less than a second ago, the bytes are
        # built; nothing reaches the database.
        with statements(c.ops) as seen:
            again = await c.http.get("/v1/submissions")
            revalidated = await c.http.get(
                "/v1/submissions", headers={"If-None-Match": first.headers["etag"]}
            )
            zipped = await c.http.get("/v1/submissions", headers={"Accept-Encoding": "gzip"})
        assert seen == []
        assert again.content == first.content
        assert again.headers["etag"] == first.headers["etag"]
        assert revalidated.status_code == 304
        assert revalidated.headers["etag"] == first.headers["etag"]
        assert zipped.json() == first.json()

        # A second later only the counter is asked (one single-row query): unchanged.
        await asyncio.sleep(1.1)
        with statements(c.ops) as seen:
            later = await c.http.get("/v1/submissions")
        queries = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        assert len(queries) == 1
        assert "FROM changes" in queries[0]
        assert later.headers["etag"] == first.headers["etag"]

        # This process's own write is seen at once (read your writes).
        await c.http.post("/v1/submissions", json={"model": OTHER}, headers=alice)
        after = await c.http.get("/v1/submissions")
        assert len(after.json()) == 2
        assert after.headers["etag"] != first.headers["etag"]
        stale = await c.http.get(
            "/v1/submissions", headers={"If-None-Match": first.headers["etag"]}
        )
        assert stale.status_code == 200

        # Another process's write (another store on the same file) shows within a second.
        with StateStore.open(f"sqlite:///{tmp_path}/state.db") as elsewhere:
            elsewhere.votes.cast(KNOWN, "up", by=Actor("replica-user"))
        await asyncio.sleep(1.1)
        counts = await c.http.get(f"/v1/models/{KNOWN}/votes")
        assert counts.json() == {"total": 1, "up": 1, "down": 0}

        # A 404 is remembered under the counter as well.
        await c.http.get("/v1/submissions/77")
        with statements(c.ops) as seen:
            problem_of(await c.http.get("/v1/submissions/77"), 404)
        assert seen == []


async def test_the_write_side_off_answers_503(tmp_path: Path) -> None:
    token = "t" * 24
    async with started(tmp_path, state="none", admin_token=token) as c:
        assert c.app.state.lb.ops is None
        problem_of(await c.http.get("/v1/submissions"), 503)
        headers = {"Authorization": f"Bearer {token}"}  # the admin token: every scope
        submitted = await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=headers)
        assert "no state store" in problem_of(submitted, 503)["detail"]
        problem_of(await c.http.get("/api/models/status"), 503)


async def test_routes_are_documented(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        doc = (await c.http.get("/openapi.json")).json()
    paths = doc["paths"]
    post = paths["/v1/submissions"]["post"]
    assert {"201", "401", "403", "409", "422", "429", "503"} <= set(post["responses"])
    assert "application/problem+json" in post["responses"]["409"]["content"]
    assert "404" in paths["/v1/submissions/{id}"]["get"]["responses"]
    assert "204" in paths["/v1/submissions/claim"]["post"]["responses"]
    assert set(paths["/v1/models/{name}/votes"]) == {"get", "head", "post", "delete"}
    assert "SubmissionOut" in doc["components"]["schemas"]


async def test_405_names_every_method_of_the_path(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        for path, allowed in (
            ("/v1/submissions", "GET, HEAD, POST"),
            (f"/v1/models/{KNOWN}/votes", "DELETE, GET, HEAD, POST"),
            ("/v1/submissions/claim", "POST"),
            ("/v1/submissions/3", "GET, HEAD"),
        ):
            refused = await c.http.request("PATCH", path)
            problem_of(refused, 405)
            assert refused.headers["allow"] == allowed, path
        # The OLL vote route's {model_id:path} also matches its reads' paths: not for POST.
        for path in ("/api/votes/model/org/name", "/api/votes/user/alice"):
            refused = await c.http.post(path)
            problem_of(refused, 405)
            assert refused.headers["allow"] == "GET, HEAD"
        # A model whose organization is "model" can still be voted on.
        assert (await c.http.post("/api/votes/model/x?vote_type=up&user_id=a")).status_code == 401


# --- the model check ------------------------------------------------------------------------


class FakeHub:
    """A stand-in for the Hub on 127.0.0.1: ``GET /api/models/{repo}`` and
    ``/api/models/{repo}/revision/{rev}``, answered as huggingface_hub's ``model_info``
    reads them (200 with ``id`` and ``sha``; 404 with ``X-Error-Code`` RepoNotFound or
    RevisionNotFound)."""

    def __init__(self) -> None:
        self.models: dict[str, set[str]] = {}
        self.seen: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.seen.append(self.path)
                prefix = "/api/models/"
                rest = self.path.split("?", 1)[0][len(prefix) :]
                repo, _, revision = rest.partition("/revision/")
                if not self.path.startswith(prefix) or repo not in hub.models:
                    self._answer(404, {"error": "Repository not found"}, code="RepoNotFound")
                elif revision and revision not in hub.models[repo]:
                    self._answer(404, {"error": "Invalid rev id"}, code="RevisionNotFound")
                else:
                    self._answer(200, {"id": repo, "modelId": repo, "sha": "0" * 40})

            def _answer(self, status: int, body: dict[str, Any], *, code: str = "") -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if code:
                    self.send_header("X-Error-Code", code)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_model_check_catalog_allow_list_and_hub(tmp_path: Path) -> None:
    submit = {"model": "newcomer/model-x"}
    async with started(tmp_path / "a", submission_allow=["trusted-org/*", "exact/name"]) as c:
        alice = c.key("alice", "submit")
        refused = await c.http.post("/v1/submissions", json=submit, headers=alice)
        assert "submission_allow" in problem_of(refused, 422)["detail"]
        for name in (KNOWN, "trusted-org/anything", "exact/name"):
            ok = await c.http.post("/v1/submissions", json={"model": name}, headers=alice)
            assert ok.status_code == 201, (name, ok.text)
        # fnmatch patterns match the whole name, case-sensitively.
        for name in ("Trusted-Org/x", "exact/name2"):
            no = await c.http.post("/v1/submissions", json={"model": name}, headers=alice)
            problem_of(no, 422)
        assert c.ops.audit(identity="alice")[0].action == "submission.create"

    with FakeHub() as hub:
        hub.models["newcomer/model-x"] = {"v2"}
        overrides = {"submission_check_hub": True, "hf_auth_endpoint": hub.endpoint}
        async with started(tmp_path / "b", **overrides) as c:
            alice = c.key("alice", "submit")
            on_hub = await c.http.post("/v1/submissions", json=submit, headers=alice)
            assert on_hub.status_code == 201, on_hub.text
            assert hub.seen == ["/api/models/newcomer/model-x"]
            # A catalog model is taken without asking the Hub.
            assert (
                await c.http.post("/v1/submissions", json={"model": KNOWN}, headers=alice)
            ).status_code == 201
            assert len(hub.seen) == 1
            at_rev = {**submit, "revision": "v2"}
            assert (
                await c.http.post("/v1/submissions", json=at_rev, headers=alice)
            ).status_code == 201
            assert hub.seen[-1] == "/api/models/newcomer/model-x/revision/v2"
            no_rev = await c.http.post(
                "/v1/submissions", json={**submit, "revision": "v9"}, headers=alice
            )
            assert "no revision 'v9'" in problem_of(no_rev, 422)["detail"]
            missing = await c.http.post(
                "/v1/submissions", json={"model": "ghost/none"}, headers=alice
            )
            assert "not a (public) model repository" in problem_of(missing, 422)["detail"]

    # The Hub down: 503 with Retry-After (the client may try again).
    dead = f"http://127.0.0.1:{free_port()}"
    overrides = {"submission_check_hub": True, "hf_auth_endpoint": dead}
    async with started(tmp_path / "c", **overrides) as c:
        alice = c.key("alice", "submit")
        down = await c.http.post("/v1/submissions", json=submit, headers=alice)
        problem_of(down, 503)
        assert down.headers["retry-after"] == "10"
        assert c.ops.submissions.list() == []


# --- durability -----------------------------------------------------------------------------


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with StateStore.open(url) as store:
        raw = store.keys.create("burst", ["submit", "vote"], by=Actor("test")).raw
    env = {
        "LEADERBOARD_STATE": url,
        "LEADERBOARD_RATE_LIMIT_SUBMISSIONS": "",
        "LEADERBOARD_RATE_LIMIT_VOTES": "",
        "LEADERBOARD_WARMUP": "false",
    }
    headers = {"Authorization": f"Bearer {raw}"}
    acknowledged_submissions: dict[int, str] = {}
    acknowledged_votes: dict[str, str] = {}
    total = 120

    async def burst(base: str, pid: int) -> int:
        killed = asyncio.Event()
        limit = asyncio.Semaphore(8)

        async def one(client: httpx.AsyncClient, i: int) -> None:
            async with limit:
                if killed.is_set():
                    return
                try:
                    if i % 2:
                        model = f"org/voted-{i}"
                        got = await client.post(
                            f"/v1/models/{model}/votes", json={"vote": "up" if i % 3 else "down"}
                        )
                        if got.status_code == 200:
                            acknowledged_votes[model] = got.json()["vote"]
                    else:
                        got = await client.post(
                            "/v1/submissions", json={"model": KNOWN, "revision": f"r{i}"}
                        )
                        if got.status_code == 201:
                            acknowledged_submissions[got.json()["id"]] = f"r{i}"
                except httpx.HTTPError:
                    return
                if len(acknowledged_submissions) + len(acknowledged_votes) == total // 3:
                    os.kill(pid, signal.SIGKILL)  # mid-burst: later writes are cut off
                    killed.set()

        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            await asyncio.gather(*(one(client, i) for i in range(total)))
        return len(acknowledged_submissions) + len(acknowledged_votes)

    with server_process(env=env, with_pid=True) as (base, pid):
        acknowledged = asyncio.run(burst(base, pid))
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base}/health", timeout=2)  # it is gone
    assert acknowledged >= total // 3
    assert acknowledged_submissions
    assert acknowledged_votes

    with server_process(env=env) as base:
        submissions = httpx.get(f"{base}/v1/submissions").json()
        votes = httpx.get(f"{base}/v1/votes", params={"user": "burst"}).json()
    found = {s["id"]: s["revision"] for s in submissions}
    for submission_id, revision in acknowledged_submissions.items():
        assert found.get(submission_id) == revision
    cast = {v["model"]: v["vote"] for v in votes}
    for model, direction in acknowledged_votes.items():
        assert cast.get(model) == direction
    assert len(found) + len(cast) < total  # the kill did cut the burst short


async def test_ready_reports_the_state_store(tmp_path: Path) -> None:
    async with started(tmp_path) as c:
        body = (await c.http.get("/ready")).json()
        assert body["status"] == "ready"
        assert body["stateStore"] == "ok"
    # With the write side off, /ready says nothing about a store.
    async with running(create_app(settings())) as http:
        assert (await http.get("/ready")).json()["stateStore"] is None
