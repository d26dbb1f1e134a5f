"""POST /v1/results (routes/results.py) on a real app, a real SQLite store and real datasets.

Requests go through httpx's ASGI transport into ``create_app`` serving a writable copy of the
embedded sample (a plain directory, or a git work tree made with the git CLI); API keys are
created in the app's own store.  One test runs a real ``leaderboard-api serve`` process and
ingests over TCP with the admin token.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import polars as pl
import pytest

from leaderboard_api.app import LeaderboardApp, create_app
from leaderboard_api.dataset.writer import INGEST_DIR
from leaderboard_api.operational.records import Actor
from leaderboard_api.operational.repository import StateStore
from leaderboard_api.state import AppState
from tests.api_support import copy_sample, running, server_process, settings

TASK = "ClaimCheckRetrieval"
KNOWN_MODEL = "acme/embed-base-v1"
PROBLEM = "application/problem+json"


class Client:
    """A started app, its store and an httpx client."""

    def __init__(self, app: LeaderboardApp, http: httpx.AsyncClient) -> None:
        self.app = app
        self.http = http

    @property
    def ops(self) -> StateStore:
        state: AppState = self.app.state.lb
        assert state.ops is not None
        return state.ops

    def key(self, name: str, *scopes: str) -> dict[str, str]:
        raw = self.ops.keys.create(name, list(scopes), by=Actor("test")).raw
        return {"Authorization": f"Bearer {raw}"}


@contextlib.asynccontextmanager
async def started(tmp_path: Path, data: Path | None, **overrides: Any) -> AsyncIterator[Client]:
    config = settings(
        state=f"sqlite:///{tmp_path}/state.db",
        data=str(data) if data is not None else None,
        **overrides,
    )
    app = create_app(config)
    async with running(app) as http:
        yield Client(app, http)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def rows_doc(model: str, score: float, *, entry: bool = True) -> dict[str, Any]:
    # The task's catalog entry evaluates two splits: a score needs both.
    doc: dict[str, Any] = {
        "rows": [
            {"model_name": model, "task_name": TASK, "split": split, "score": score}
            for split in ("dev", "test")
        ]
    }
    if entry:
        doc["models"] = [{"name": model, "n_parameters": 2.5e8, "license": "mit"}]
    return doc


async def task_scores(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get(f"/v1/tasks/{TASK}/scores")
    assert response.status_code == 200, response.text
    return {row["model"]["name"]: row["score"] for row in response.json()["rows"]}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "dataset")


def make_repo(root: Path) -> Path:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "dataset"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env, capture_output=True)
    return root


async def test_post_rows_then_the_new_model_is_served(tmp_path: Path, dataset: Path) -> None:
    async with started(tmp_path, dataset) as c:
        assert "new/model" not in await task_scores(c.http)
        headers = c.key("loader", "ingest")
        response = await c.http.post(
            "/v1/results", json=rows_doc("new/model", 0.99), headers=headers
        )
        assert response.status_code == 201, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["file"].startswith(f"{INGEST_DIR}/")
        assert (body["rows"], body["models"], body["tasks"]) == (2, ["new/model"], [])
        assert body["created"] is True
        assert body["served"] == body["version"]  # the reload swapped the new version in
        assert (dataset / body["file"]).is_file()
        # The next snapshot serves it: the model page, the task's scores, the benchmark.
        model = await c.http.get("/v1/models/new/model")
        assert model.status_code == 200, model.text
        assert model.json()["license"] == "mit"
        assert (await task_scores(c.http))["new/model"] == pytest.approx(0.99)
        state: AppState = c.app.state.lb
        assert state.loaded is not None
        assert state.loaded.snapshot.id == body["version"]
        # The same batch again: nothing written, 200, same file.
        again = await c.http.post("/v1/results", json=rows_doc("new/model", 0.99), headers=headers)
        assert again.status_code == 200, again.text
        assert (again.json()["created"], again.json()["file"]) == (False, body["file"])
        audit = [e for e in c.ops.audit() if e.action == "results.ingest"]
        assert [e.target for e in audit] == [body["file"], body["file"]]
        assert audit[-1].identity == "loader"
        assert audit[-1].detail["models"] == ["new/model"]


async def test_parquet_body(tmp_path: Path, dataset: Path) -> None:
    frame = pl.DataFrame(
        {
            "model_name": ["pq/model", "pq/model"],
            "task_name": [TASK, TASK],
            "split": ["dev", "test"],
            "metric": ["ndcg_at_10", "ndcg_at_10"],
            "score": [0.7, 0.7],
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    async with started(tmp_path, dataset) as c:
        headers = {**c.key("loader", "ingest"), "content-type": "application/vnd.apache.parquet"}
        response = await c.http.post("/v1/results", content=buffer.getvalue(), headers=headers)
        assert response.status_code == 201, response.text
        assert (await task_scores(c.http))["pq/model"] == pytest.approx(0.7)
        headers["content-type"] = "application/octet-stream"
        broken = await c.http.post("/v1/results", content=b"PAR1 truncated", headers=headers)
        body = problem_of(broken, 422)
        assert body["file"] == "request body"
        assert "cannot read parquet" in body["detail"]


async def test_credentials_and_scope(tmp_path: Path, dataset: Path) -> None:
    before = tree(dataset)
    async with started(tmp_path, dataset) as c:
        anonymous = await c.http.post("/v1/results", json=rows_doc("x/m", 0.1))
        problem_of(anonymous, 401)
        assert "www-authenticate" in anonymous.headers
        submitter = c.key("submitter", "submit", "vote")
        refused = await c.http.post("/v1/results", json=rows_doc("x/m", 0.1), headers=submitter)
        assert problem_of(refused, 403)["scope"] == "ingest"
        admin = c.key("root", "admin")  # admin implies every scope
        allowed = await c.http.post("/v1/results", json=rows_doc("x/m", 0.1), headers=admin)
        assert allowed.status_code == 201, allowed.text
    assert set(tree(dataset)) - set(before) == {allowed.json()["file"]}


@pytest.mark.parametrize(
    ("doc", "column", "text"),
    [
        ({"rows": [{"model_name": "m", "score": 0.5}]}, "task_name", "missing required column"),
        (
            {"rows": [{"model_name": "m", "task_name": TASK, "score": "great"}]},
            "score",
            "wrong type",
        ),
        (
            {"rows": [{"model_name": None, "task_name": TASK, "score": 0.5}]},
            "model_name",
            "empty or null",
        ),
        (
            {"rows": rows_doc("m", 0.5)["rows"], "models": [{"name": "m", "open_weights": "?"}]},
            "open_weights",
            "models[0]",
        ),
    ],
)
async def test_refused_bodies_name_the_column_and_write_nothing(
    tmp_path: Path, dataset: Path, doc: dict[str, Any], column: str, text: str
) -> None:
    before = tree(dataset)
    async with started(tmp_path, dataset) as c:
        state: AppState = c.app.state.lb
        assert state.loaded is not None
        served = state.loaded.snapshot.id
        response = await c.http.post("/v1/results", json=doc, headers=c.key("k", "ingest"))
        body = problem_of(response, 422)
        assert body["column"] == column
        assert body["file"] == "request body"
        assert text in body["detail"]
        assert body["errors"][0]["parameter"] == column
        assert state.loaded.snapshot.id == served
        assert not [e for e in c.ops.audit() if e.action == "results.ingest"]
    assert tree(dataset) == before


async def test_a_differing_catalog_entry_is_a_conflict(tmp_path: Path, dataset: Path) -> None:
    before = tree(dataset)
    doc = {"rows": rows_doc(KNOWN_MODEL, 0.5)["rows"], "models": [{"name": KNOWN_MODEL}]}
    async with started(tmp_path, dataset) as c:
        response = await c.http.post("/v1/results", json=doc, headers=c.key("k", "ingest"))
        body = problem_of(response, 409)
        assert body["file"] == "models.jsonl"
        assert KNOWN_MODEL in body["detail"]
    assert tree(dataset) == before


async def test_bodies_the_route_does_not_take(tmp_path: Path, dataset: Path) -> None:
    before = tree(dataset)
    async with started(tmp_path, dataset, ingest_max_bytes=200) as c:
        headers = c.key("k", "ingest")
        big = {"rows": [rows_doc("m", 0.5)["rows"][0]] * 20}
        problem_of(await c.http.post("/v1/results", json=big, headers=headers), 413)
        text = {**headers, "content-type": "text/csv"}
        body = problem_of(await c.http.post("/v1/results", content=b"a,b", headers=text), 415)
        assert "text/csv" in body["detail"]
        json_type = {**headers, "content-type": "application/json"}
        problem_of(await c.http.post("/v1/results", content=b"{nope", headers=json_type), 400)
        shape = await c.http.post("/v1/results", json={"rows": {}}, headers=headers)
        assert problem_of(shape, 422)["column"] == "rows"

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b'{"rows": [', b" " * 300, b"]}"):
                yield part

        streamed = await c.http.post("/v1/results", content=chunks(), headers=json_type)
        problem_of(streamed, 413)  # no Content-Length: counted while read
    assert tree(dataset) == before


async def test_read_only_sources_answer_409(tmp_path: Path) -> None:
    async with started(tmp_path, None) as c:  # the embedded sample
        response = await c.http.post(
            "/v1/results", json=rows_doc("m", 0.5), headers=c.key("k", "ingest")
        )
        assert "read-only" in problem_of(response, 409)["detail"]


async def test_a_git_dataset_answers_with_the_commit(tmp_path: Path, dataset: Path) -> None:
    make_repo(dataset)
    async with started(tmp_path, dataset, ingest_git_author_name="Results Bot") as c:
        response = await c.http.post(
            "/v1/results", json=rows_doc("git/model", 0.42), headers=c.key("bot", "ingest")
        )
        assert response.status_code == 201, response.text
        body = response.json()
        head = subprocess.run(
            ["git", "-C", str(dataset), "log", "-1", "--format=%H %an%n%B"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert head.startswith(f"{body['commit']} Results Bot")
        assert "Ingested-by: bot" in head
        assert body["version"] == body["commit"] == body["served"]
        assert (await task_scores(c.http))["git/model"] == pytest.approx(0.42)


async def test_a_failed_commit_answers_503_and_changes_nothing(
    tmp_path: Path, dataset: Path
) -> None:
    make_repo(dataset)
    hook = dataset / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    before = tree(dataset)
    async with started(tmp_path, dataset) as c:
        state: AppState = c.app.state.lb
        assert state.loaded is not None
        served = state.loaded.snapshot.id
        response = await c.http.post(
            "/v1/results", json=rows_doc("git/model", 0.42), headers=c.key("bot", "ingest")
        )
        assert "retry-after" in response.headers
        assert "commit" in problem_of(response, 503)["detail"]
        assert state.loaded.snapshot.id == served
        assert "git/model" not in await task_scores(c.http)
    assert tree(dataset) == before


async def test_openapi_documents_the_route(tmp_path: Path, dataset: Path) -> None:
    async with started(tmp_path, dataset) as c:
        doc = (await c.http.get("/openapi.json")).json()
    operation = doc["paths"]["/v1/results"]["post"]
    assert set(operation["requestBody"]["content"]) >= {
        "application/json",
        "application/vnd.apache.parquet",
    }
    for status in ("200", "201", "400", "401", "403", "409", "413", "415", "422", "503"):
        assert status in operation["responses"], status
    assert PROBLEM in operation["responses"]["409"]["content"]
    assert operation["security"]


def test_a_real_server_serves_what_it_ingested(tmp_path: Path, dataset: Path) -> None:
    token = "t" * 24
    env = {
        "LEADERBOARD_STATE": f"sqlite:///{tmp_path}/state.db",
        "LEADERBOARD_ADMIN_TOKEN": token,
    }
    with server_process("--data", str(dataset), env=env) as base:
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.post(
            f"{base}/v1/results", json=rows_doc("tcp/model", 0.88), headers=headers, timeout=30
        )
        assert response.status_code == 201, response.text
        assert response.json()["served"] == response.json()["version"]
        model = httpx.get(f"{base}/v1/models/{quote('tcp/model')}", timeout=30)
        assert model.status_code == 200, model.text
        scores = httpx.get(f"{base}/v1/tasks/{TASK}/scores", timeout=30).json()
        by_name = {row["model"]["name"]: row["score"] for row in scores["rows"]}
        assert by_name["tcp/model"] == pytest.approx(0.88)
