"""Every field the official MTEB frontend reads has the JSON type it declares.

Run over the embedded sample and over the real MTEB results sample imported with the MTEB
catalog, so a regression fails here without the frontend.  Also pins the routes and query
names the frontend uses: benchmark aliases, descriptive statistics, list filters, and the
422 an unknown query parameter gets.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from leaderboard_api.dataset.importers.mteb import import_mteb
from tests import frontend_contract as fc
from tests.api_support import SHARED, client_for

MTEB = SHARED / "mteb"
ENG = "TEB(eng, v1)"
MULTI = "TEB(multi, v1)"


def q(name: str) -> str:
    return quote(name, safe="")


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, (path, response.text[:300])
    return response.json()


async def assert_contract(client: httpx.AsyncClient, benchmarks: list[str]) -> None:
    """Check the list routes and every page the frontend opens for ``benchmarks``."""
    problems: list[str] = []
    listed = await get(client, "/v1/benchmarks", include_hidden="true")
    problems += fc.check(listed, [fc.BENCHMARK], "/v1/benchmarks")
    menu = await get(client, "/v1/benchmarks/menu")
    problems += fc.check(menu, [{"name": "str", "children": ["any"]}], "/v1/benchmarks/menu")
    tasks = await get(client, "/v1/tasks")
    problems += fc.check(tasks, [fc.TASK_META], "/v1/tasks")
    models = await get(client, "/v1/models")
    problems += fc.check(models, [fc.MODEL_DETAIL], "/v1/models")
    for name in benchmarks:
        base = f"/v1/benchmarks/{q(name)}"
        problems += fc.check(await get(client, base), fc.BENCHMARK, base)
        summary = await get(client, f"{base}/scores")
        problems += fc.check(summary, fc.SUMMARY, f"{base}/scores")
        per_language = await get(client, f"{base}/per-language")
        problems += fc.check(per_language, fc.PER_LANGUAGE, f"{base}/per-language")
        # The frontend keys table rows by model name: a repeated name breaks the page.
        names = [r["model"]["name"] for r in summary["rows"]]
        if len(names) != len(set(names)):
            problems.append(f"{base}/scores: repeated model names")
        language_names = [r["modelName"] for r in per_language["rows"]]
        if len(language_names) != len(set(language_names)) or not set(language_names) <= set(names):
            problems.append(f"{base}/per-language: names repeat or are not the summary's")
        leaders = await get(client, f"{base}/leaders", buckets="[[0,500],[500,null]]")
        problems += fc.check(leaders, fc.LEADERS, f"{base}/leaders")
        for bucket in leaders["buckets"]:
            if bucket["leader"] is not None:
                problems += fc.check(bucket["leader"], fc.LEADER_ROW, f"{base}/leaders")
        for row in summary["rows"][:3]:
            model = row["model"]["name"]
            path = f"/v1/models/{q(model)}/scores"
            problems += fc.check(await get(client, path), fc.MODEL_SCORES, path)
        for task in summary["tasks"][:3]:
            path = f"/v1/tasks/{q(task)}/scores"
            task_scores = await get(client, path)
            problems += fc.check(task_scores, fc.TASK_SCORES, path)
            rows = [r["model"]["name"] for r in task_scores["rows"]]
            if len(rows) != len(set(rows)):
                problems.append(f"{path}: repeated model names")
    assert problems == [], "\n".join(problems[:40])


# --- the embedded sample -------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for() as c:
        yield c


async def test_sample_serves_the_declared_types(client: httpx.AsyncClient) -> None:
    names = [b["name"] for b in await get(client, "/v1/benchmarks", include_hidden="true")]
    await assert_contract(client, names)


async def test_aliases_serve_the_canonical_payload(client: httpx.AsyncClient) -> None:
    for suffix in ("", "/scores", "/per-language", "/leaders", "/scores.csv"):
        canonical = await client.get(f"/v1/benchmarks/{q(ENG)}{suffix}")
        for alias in ("TEB(eng)", "TEB"):
            aliased = await client.get(f"/v1/benchmarks/{q(alias)}{suffix}")
            assert aliased.status_code == 200, (alias, suffix)
            assert aliased.headers["etag"] == canonical.headers["etag"]
            assert aliased.content == canonical.content
    detail = await get(client, f"/v1/benchmarks/{q('TEB')}")
    assert detail["name"] == ENG
    assert detail["aliases"] == ["TEB(eng)", "TEB"]
    missing = await client.get("/v1/benchmarks/TEB(nope)/scores")
    assert missing.status_code == 404


async def test_summary_rows_follow_the_frontend_rules(client: httpx.AsyncClient) -> None:
    summary = await get(client, f"/v1/benchmarks/{q(ENG)}/scores")
    rows = summary["rows"]
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    # A missing score is an absent key: partial models have fewer keys, never a null.
    partial = [r for r in rows if len(r["scoresByTask"]) < len(summary["tasks"])]
    assert partial, "the sample has partial models"
    assert all(r["meanTask"] is None for r in partial)
    unknown = [r for r in rows if r["zeroShotPct"] == -1]
    known = [r for r in rows if r["zeroShotPct"] >= 0]
    assert unknown
    assert known
    assert all(r["model"]["zeroShotPct"] == r["zeroShotPct"] for r in rows)
    # The declared custom grouping: complete groups only, keyed grouping -> label.
    grouped = [r for r in rows if r["scoresByCustomGroup"]]
    assert grouped
    for row in grouped:
        domain = row["scoresByCustomGroup"]["Domain"]
        if "Retrieval" in domain:
            want = (
                row["scoresByTask"]["ClaimCheckRetrieval"]
                + row["scoresByTask"]["RecipeQARetrieval"]
            ) / 2
            assert domain["Retrieval"] == pytest.approx(want)
    (grouping,) = summary["customGroupings"]
    labels = {g["label"]: g for g in grouping["groups"]}
    assert labels["Retrieval"]["tasksComplete"] is True
    # An entry naming splits the catalog does not declare as the task's every split is
    # partial: the group is incomplete and lists only its whole-task member.
    assert labels["Forums"]["tasksComplete"] is False
    assert labels["Forums"]["tasks"] == ["ForumThreadClustering"]
    assert "custom_groups" in summary["aggregations"]
    meta = {t["name"]: t for t in summary["tasksMeta"]}
    assert meta["NewsHeadlineSTS"]["simplifiedType"] == "semantic-similarity"
    assert meta["NewsHeadlineSTS"]["splits"] == ["test"]


async def test_language_view_uses_the_per_language_keys(client: httpx.AsyncClient) -> None:
    bench = await get(client, f"/v1/benchmarks/{q(MULTI)}")
    assert bench["languageView"] == ["deu", "eng", "fra"]
    per_language = await get(client, f"/v1/benchmarks/{q(MULTI)}/per-language")
    keys = {k for row in per_language["rows"] for k in row["scoresByLanguage"]}
    assert set(bench["languageView"]) <= keys
    eng = await get(client, f"/v1/benchmarks/{q(ENG)}")
    assert eng["languageView"] is None
    old = await get(client, f"/v1/benchmarks/{q('TEB(eng, v0)')}")
    assert old["newVersion"] == [ENG]


async def test_descriptive_statistics(client: httpx.AsyncClient) -> None:
    stats = await client.get("/v1/tasks/NewsHeadlineSTS/descriptive_statistics")
    assert stats.status_code == 200
    assert stats.json()["test"]["num_samples"] == 1200
    assert "etag" in stats.headers
    again = await client.get(
        "/v1/tasks/NewsHeadlineSTS/descriptive_statistics",
        headers={"if-none-match": stats.headers["etag"]},
    )
    assert again.status_code == 304
    none = await client.get("/v1/tasks/ForumParaphraseSTS/descriptive_statistics")
    assert none.status_code == 404
    assert none.headers["content-type"].startswith("application/problem+json")
    assert "descriptive statistics" in none.json()["detail"]
    unknown = await client.get("/v1/tasks/Nope/descriptive_statistics")
    assert unknown.status_code == 404


async def test_list_filters_take_the_frontend_names(client: httpx.AsyncClient) -> None:
    every = await get(client, "/v1/tasks")
    sts = await get(client, "/v1/tasks", types="STS")
    assert sts
    assert {t["type"] for t in sts} == {"STS"}
    two = await client.get("/v1/tasks?types=STS&types=Clustering")
    assert {t["type"] for t in two.json()} == {"STS", "Clustering"}
    assert await get(client, "/v1/tasks", types="STS,Clustering") == two.json()
    french = await get(client, "/v1/tasks", languages="fra")
    assert french
    assert all(any(x.startswith("fra") for x in t["languages"]) for t in french)
    assert len(french) < len(every)
    models = await get(client, "/v1/models")
    tuned = await get(client, "/v1/models", model_types="instruction-tuned")
    assert tuned
    assert all("instruction-tuned" in m["modelTypes"] for m in tuned)
    assert all(m["modelType"] == m["modelTypes"][0] for m in tuned)
    open_ = await get(client, "/v1/models", open_weights="true")
    assert open_
    assert all(m["openWeights"] for m in open_)
    assert len(open_) < len(models)
    for path in ("/v1/tasks?typo=1", "/v1/models?modelType=dense", "/v1/benchmarks?hidden=1"):
        refused = await client.get(path)
        assert refused.status_code == 422, path
        problem = refused.json()
        assert problem["status"] == 422
        name = path.split("?")[1].split("=")[0]
        assert name in problem["detail"]
    scores = await client.get(f"/v1/benchmarks/{q(ENG)}/scores?language=fra")
    assert scores.status_code == 422


async def test_other_metrics_on_demand(client: httpx.AsyncClient) -> None:
    main = await get(client, "/v1/tasks/ClaimCheckRetrieval/scores")
    refused = await client.get("/v1/tasks/ClaimCheckRetrieval/scores?metric=nope")
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "metric" in detail
    assert "available" in detail
    other = detail.split("available: ")[1].rstrip(")").split(", ")[0]
    alt = await get(client, "/v1/tasks/ClaimCheckRetrieval/scores", metric=other)
    assert {r["model"]["name"] for r in alt["rows"]} <= {r["model"]["name"] for r in main["rows"]}
    assert [r["score"] for r in alt["rows"]] != [r["score"] for r in main["rows"]]


# --- the real MTEB results sample ----------------------------------------------------------


@pytest.fixture(scope="module")
def mteb_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (MTEB / "results-sample").is_dir():
        pytest.skip("real MTEB data not available")
    out = tmp_path_factory.mktemp("mteb-contract")
    import_mteb(MTEB / "results-sample", out=out, catalog=MTEB / "catalog")
    return out


async def test_mteb_sample_serves_the_declared_types(mteb_dataset: Path) -> None:
    async with client_for(data=str(mteb_dataset)) as c:
        listed = await get(c, "/v1/benchmarks", include_hidden="true")
        with_rows = [b["name"] for b in listed if b["numModels"] > 0]
        assert {"MTEB(eng, v2)", "MTEB(eng, v1)"} <= set(with_rows)
        await assert_contract(c, ["MTEB(eng, v2)", "MTEB(eng, v1)"])
        models = {m["name"]: m for m in await get(c, "/v1/models")}
        e5 = models["intfloat/multilingual-e5-large"]
        assert e5["modelType"] == "dense"
        assert isinstance(e5["opennessScore"], int)
        alias = await c.get(f"/v1/benchmarks/{q('MTEB(eng)')}/scores")
        canonical = await c.get(f"/v1/benchmarks/{q('MTEB(eng, v2)')}/scores")
        assert alias.headers["etag"] == canonical.headers["etag"]
        sts = await get(c, "/v1/tasks/STS12/scores")
        flags = {r["trainedOn"] for r in sts["rows"]}
        assert flags <= {True, False, None}
        assert len(flags) > 1


async def test_variant_rows_have_names_of_their_own(tmp_path: Path) -> None:
    """An ``experiments/`` folder of a real model becomes a row of its own, named as MTEB's
    registry names variants and carrying its settings; its name opens the model's page."""
    if not (MTEB / "results-sample").is_dir():
        pytest.skip("real MTEB data not available")
    root = tmp_path / "src" / "results"
    shutil.copytree(MTEB / "results-sample" / "results" / "BAAI__bge-m3", root / "BAAI__bge-m3")
    rev = next(p for p in (root / "BAAI__bge-m3").iterdir() if p.is_dir())
    exp = rev / "experiments" / "use_instructions_False"
    exp.mkdir(parents=True)
    for path in sorted(p for p in rev.glob("*.json") if p.name != "model_meta.json"):
        shutil.copyfile(path, exp / path.name)
    meta = {"name": "BAAI/bge-m3", "experiment_kwargs": {"use_instructions": False}}
    (exp / "model_meta.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    import_mteb(root.parent, out=out, catalog=MTEB / "catalog")
    async with client_for(data=str(out)) as c:
        summary = await get(c, f"/v1/benchmarks/{q('MTEB(eng, v2)')}/scores")
        rows = {r["model"]["name"]: r for r in summary["rows"]}
        assert set(rows) == {"BAAI/bge-m3", "BAAI/bge-m3 (use_instructions=False)"}
        variant = rows["BAAI/bge-m3 (use_instructions=False)"]
        assert variant["experiments"] == {"use_instructions": False}
        assert variant["model"]["variantOf"] == "BAAI/bge-m3"
        assert rows["BAAI/bge-m3"]["experiments"] is None
        assert variant["scoresByTask"] == rows["BAAI/bge-m3"]["scoresByTask"]
        page = await get(c, f"/v1/models/{q('BAAI/bge-m3 (use_instructions=False)')}")
        assert page["name"] == "BAAI/bge-m3"
        await assert_contract(c, ["MTEB(eng, v2)"])
