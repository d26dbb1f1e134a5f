"""Every /v1 route on the embedded sample: shapes, names that need encoding, errors, HEAD."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from tests.api_support import client_for

ENG = "TEB(eng, v1)"
MODEL = "acme/embed-large-v2"
TASK = "NewsHeadlineSTS"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for() as c:
        yield c


async def test_benchmark_list_and_menu(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/benchmarks")).json()
    names = [b["name"] for b in listed]
    assert ENG in names
    assert "TEB(eng, v0)" not in names  # hidden
    hidden = (await client.get("/v1/benchmarks", params={"include_hidden": "true"})).json()
    assert "TEB(eng, v0)" in [b["name"] for b in hidden]
    first = listed[0]
    for key in (
        "name",
        "displayName",
        "icon",
        "description",
        "reference",
        "citation",
        "languages",
        "taskTypes",
        "tasks",
        "domains",
        "modalities",
        "displayOnLeaderboard",
        "aggregations",
        "showZeroShot",
        "numModels",
    ):
        assert key in first, key
    menu = (await client.get("/v1/benchmarks/menu")).json()
    assert menu
    assert {"name", "description", "open", "children"} <= set(menu[0])

    def leaves(entries: list[dict[str, object]]) -> list[str]:
        out: list[str] = []
        for entry in entries:
            children = entry.get("children")
            if isinstance(children, list):
                out += leaves(children)
            else:
                out.append(str(entry["name"]))
        return out

    assert set(leaves(menu)) <= {b["name"] for b in hidden}


@pytest.mark.parametrize("encode", [False, True])
async def test_scores_with_names_that_need_encoding(
    client: httpx.AsyncClient, *, encode: bool
) -> None:
    path = quote(ENG) if encode else ENG
    response = await client.get(f"/v1/benchmarks/{path}/scores")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["benchmarkName"] == ENG
    for key in ("taskTypes", "tasks", "tasksMeta", "rows", "aggregations", "showZeroShot"):
        assert key in body
    row = body["rows"][0]
    for key in (
        "rank",
        "model",
        "zeroShotPct",
        "activeParamsB",
        "totalParamsB",
        "embeddingDim",
        "maxTokens",
        "meanTask",
        "meanTaskType",
        "meanPublic",
        "meanPrivate",
        "scoresByTaskType",
        "scoresByTask",
        "trainedOnTasks",
        "complete",
    ):
        assert key in row, key
    summary = await client.get(f"/v1/benchmarks/{path}/summary")
    assert summary.content == response.content
    assert summary.headers["etag"] == response.headers["etag"]


async def test_model_names_with_slashes(client: httpx.AsyncClient) -> None:
    plain = await client.get(f"/v1/models/{MODEL}")
    encoded = await client.get(f"/v1/models/{quote(MODEL, safe='')}")
    assert plain.status_code == encoded.status_code == 200
    assert plain.json()["name"] == MODEL
    assert plain.content == encoded.content
    scores = (await client.get(f"/v1/models/{MODEL}/scores")).json()
    assert scores["model"]["name"] == MODEL
    assert any(r["benchmarkName"] == ENG for r in scores["rows"])
    for row in scores["rows"]:
        assert row["rank"] is None or 1 <= row["rank"] <= row["totalModels"]


async def test_task_routes(client: httpx.AsyncClient) -> None:
    task = (await client.get(f"/v1/tasks/{TASK}")).json()
    assert task["name"] == TASK
    assert task["type"] == "STS"
    scores = (await client.get(f"/v1/tasks/{TASK}/scores")).json()
    assert {"task", "benchmarks", "subsets", "splits", "rows"} <= set(scores)
    assert scores["rows"]
    assert all("subsetScores" in r for r in scores["rows"])
    ranked = [r["rank"] for r in scores["rows"] if r["rank"] is not None]
    assert ranked == sorted(ranked)


async def test_list_filters(client: httpx.AsyncClient) -> None:
    tasks = (await client.get("/v1/tasks", params={"type": "STS"})).json()
    assert tasks
    assert all(t["type"] == "STS" for t in tasks)
    named = (await client.get("/v1/tasks", params={"name": "latency"})).json()
    assert named
    assert all("latency" in t["name"].lower() for t in named)
    everything = (await client.get("/v1/tasks")).json()
    assert [t["name"] for t in everything] == sorted(t["name"] for t in everything)
    models = (await client.get("/v1/models", params={"open_weights": "false"})).json()
    assert models
    assert all(m["openWeights"] is False for m in models)
    sized = (await client.get("/v1/models", params={"min_params_b": 1, "max_params_b": 10})).json()
    assert sized
    assert all(1 <= m["totalParamsB"] <= 10 for m in sized)
    acme = (await client.get("/v1/models", params={"name": "ACME"})).json()
    assert acme
    assert all("acme" in m["name"] for m in acme)


async def test_csv_matches_json(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"/v1/benchmarks/{ENG}/scores")).json()
    response = await client.get(f"/v1/benchmarks/{ENG}/scores.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["model"] for r in rows] == [r["model"]["name"] for r in body["rows"]]
    for parsed, row in zip(rows, body["rows"], strict=True):
        expected = row["meanTask"]
        assert (parsed["mean_task"] == "") == (expected is None)
        if expected is not None:
            assert float(parsed["mean_task"]) == expected


async def test_per_language_and_leaders(client: httpx.AsyncClient) -> None:
    per = (await client.get("/v1/benchmarks/TEB(multi, v1)/per-language")).json()
    assert per["benchmarkName"] == "TEB(multi, v1)"
    assert per["rows"]
    assert all("scoresByLanguage" in r for r in per["rows"])
    leaders = (
        await client.get(
            f"/v1/benchmarks/{ENG}/leaders", params={"buckets": "[[0,200],[200,null]]"}
        )
    ).json()
    assert [(b["min"], b["max"]) for b in leaders["buckets"]] == [(0, 200), (200, None)]
    for bucket in leaders["buckets"]:
        lead = bucket["leader"]
        if lead is not None and lead["totalParamsB"] is not None:
            millions = lead["totalParamsB"] * 1000
            assert bucket["min"] <= millions
            assert bucket["max"] is None or millions < bucket["max"]


async def test_language_filter_is_normalized(client: httpx.AsyncClient) -> None:
    name = "TEB(multi, v1)"
    by_code = await client.get(f"/v1/benchmarks/{name}/scores", params={"languages": "fra"})
    by_script = await client.get(f"/v1/benchmarks/{name}/scores", params={"languages": "fra-Latn"})
    by_name = await client.get(f"/v1/benchmarks/{name}/scores", params={"languages": "French"})
    assert by_code.status_code == 200, by_code.text
    assert by_code.content == by_script.content == by_name.content
    everything = await client.get(f"/v1/benchmarks/{name}/scores")
    assert by_code.content != everything.content


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/benchmarks/NoSuchBench/scores", 404),
        ("/v1/models/nobody/nothing", 404),
        ("/v1/tasks/NoSuchTask/scores", 404),
        ("/v1/nowhere", 404),
        ("/v1/benchmarks?include_hidden=maybe", 422),
        (f"/v1/benchmarks/{ENG}/leaders?buckets=[[0,1]," + ",".join(["[1,2]"] * 8) + "]", 422),
        (f"/v1/benchmarks/{ENG}/leaders?buckets=notjson", 422),
        (f"/v1/benchmarks/{ENG}/scores?languages=Klingonese", 422),
        ("/v1/models?min_params_b=-1", 422),
    ],
)
async def test_errors_are_problem_json(client: httpx.AsyncClient, path: str, status: int) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/benchmarks")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.json()) >= PROBLEM_KEYS


async def test_head_matches_get_on_every_kind_of_route(client: httpx.AsyncClient) -> None:
    for path in (
        "/v1/benchmarks",
        f"/v1/benchmarks/{ENG}/scores",
        f"/v1/benchmarks/{ENG}/scores.csv",
        f"/v1/models/{MODEL}",
        f"/v1/benchmarks/{ENG}/scores?languages=eng",
        "/health",
        "/ready",
        "/",
    ):
        get = await client.get(path, headers={"accept-encoding": "gzip"})
        head = await client.head(path, headers={"accept-encoding": "gzip"})
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        for name in ("content-type", "content-length", "etag", "content-encoding", "vary"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
