"""Payloads keyed by what they read: a new snapshot reuses the untouched ones, rebuilds the rest.

Every check compares against a fresh app started on the same files, so a fingerprint that
missed a dependency (and would serve stale bytes) fails here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from leaderboard_api.app import LeaderboardApp, create_app
from tests.api_support import copy_sample, running, settings
from tests.test_live_reload import write_big_version

TOKEN = "correct horse battery staple"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SERVING = "serving.parquet"
Routes = dict[str, tuple[str, bytes]]


async def served(app: LeaderboardApp) -> Routes:
    """Every unparameterized route as the app serves it over HTTP: path -> (ETag, body)."""
    import httpx

    state = app.state.lb
    await asyncio.wait_for(state.warm_event.wait(), timeout=60)
    paths = sorted(state.built_routes())
    out: Routes = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path in paths:
            response = await client.get(path, headers={"accept-encoding": "identity"})
            assert response.status_code == 200, (path, response.text[:200])
            out[path] = (response.headers["etag"], response.content)
    return out


async def fresh(data: Path) -> Routes:
    """The routes of a new app on ``data`` (nothing reused from anywhere)."""
    app = create_app(settings(data=str(data)))
    async with running(app):
        return await served(app)


def add_serving_model(data: Path) -> None:
    """One new model's results for the serving benchmark's tasks only."""
    frame = pl.read_parquet(data / "results" / SERVING)
    model = frame.get_column("model_name").unique().sort()[0]
    added = frame.filter(pl.col("model_name") == model).with_columns(
        pl.lit("newco/fast-serve-1").alias("model_name"), pl.col("score") * 0.9
    )
    added.write_parquet(data / "results" / "newco.parquet")


def edit_model_entry(data: Path) -> None:
    """A catalog edit of one embedding model (its license)."""
    path = data / "models.jsonl"
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        entry = json.loads(line)
        if entry["name"] == "acme/embed-large-v2":
            entry["license"] = "apache-2.0-edited"
            lines[index] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")


def drop_llm_model(data: Path) -> None:
    file = data / "results" / "llm.parquet"
    frame = pl.read_parquet(file)
    victim = frame.get_column("model_name").unique().sort()[0]
    frame.filter(pl.col("model_name") != victim).write_parquet(file)


def edit_task_catalog(data: Path) -> None:
    """A task catalog change (every page reads the catalogs: all rebuilt)."""
    path = data / "tasks.jsonl"
    lines = path.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["description"] = (entry.get("description") or "") + " (edited)"
    lines[0] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")


CHANGES: list[Callable[[Path], None]] = [
    add_serving_model,
    edit_model_entry,
    drop_llm_model,
    edit_task_catalog,
]


async def test_reused_payloads_equal_a_fresh_build_after_each_kind_of_change(
    tmp_path: Path,
) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data), admin_token=TOKEN))
    async with running(app) as client:
        before = await served(app)
        for change in CHANGES:
            change(data)
            response = await client.post("/admin/reload", headers=AUTH)
            assert response.status_code == 200, response.text
            outcome = response.json()
            assert outcome["result"] == "swapped", change.__name__
            after = await served(app)
            assert after == await fresh(data), change.__name__
            if change is not edit_task_catalog:
                assert outcome["reused"] > 0, change.__name__
                unchanged = [p for p in after if before.get(p) == after[p]]
                assert unchanged, change.__name__
            before = after


async def test_a_reload_swaps_before_building_and_serves_changed_pages_on_request(
    tmp_path: Path,
) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data), admin_token=TOKEN))
    async with running(app) as client:
        state = app.state.lb
        add_serving_model(data)
        response = await client.post("/admin/reload", headers=AUTH)
        outcome = response.json()
        assert outcome["result"] == "swapped"
        assert outcome["built"] == 0  # nothing was built before the swap
        touched = [
            name
            for name in state.loaded.views.benchmark_names()
            if b"newco/fast-serve-1" in (await client.get(f"/v1/benchmarks/{name}/scores")).content
        ]
        # The new numbers are served at once (built on request, ahead of the warmup).
        assert touched
        assert await served(app) == await fresh(data)


async def test_a_new_model_on_one_benchmark_keeps_every_other_etag(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data), admin_token=TOKEN))
    async with running(app) as client:
        state = app.state.lb
        before = await served(app)
        views = state.loaded.views
        serving_tasks = set(pl.read_parquet(data / "results" / SERVING)["task_name"].unique())
        touched = {
            name
            for name, bench in state.loaded.snapshot.benchmarks.items()
            if {t.task for t in bench.tasks} & serving_tasks
        }
        untouched = [n for n in views.benchmark_names() if n not in touched]
        assert touched
        assert untouched
        add_serving_model(data)
        assert (await client.post("/admin/reload", headers=AUTH)).json()["result"] == "swapped"
        after = await served(app)
    for name in untouched:
        base = f"/v1/benchmarks/{name}"
        pages = {p: v for p, v in before.items() if p == base or p.startswith(base + "/")}
        assert len(pages) >= 5, name
        for path, value in pages.items():
            assert after[path] == value, path
    for task in sorted(set(views.task_names()) - serving_tasks):
        assert after[f"/v1/tasks/{task}"] == before[f"/v1/tasks/{task}"]
        assert after[f"/v1/tasks/{task}/scores"] == before[f"/v1/tasks/{task}/scores"]
    embedding_model = "/v1/models/acme/embed-large-v2/scores"
    assert after[embedding_model] == before[embedding_model]
    for name in touched:
        assert after[f"/v1/benchmarks/{name}/scores"] != before[f"/v1/benchmarks/{name}/scores"]
    assert "/v1/models/newco/fast-serve-1" in after
    assert after["/v1/models"] != before["/v1/models"]


async def test_a_restart_with_the_store_serves_without_building(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    cache = tmp_path / "cache"
    first = create_app(settings(data=str(data), cache_dir=str(cache)))
    async with running(first):
        before = await served(first)
    second = create_app(settings(data=str(data), cache_dir=str(cache)))
    async with running(second):
        state = second.state.lb
        assert state.store is not None
        after = await served(second)
        stats = state.store.stats()
    assert after == before
    assert stats.puts == 0  # nothing built, so nothing new written
    assert stats.hits > 0


@pytest.mark.timeout(120)
async def test_a_newer_snapshot_supersedes_the_background_warmup(tmp_path: Path) -> None:
    data = tmp_path / "big"
    write_big_version(data, version=1)
    app = create_app(settings(data=str(data), admin_token=TOKEN, warmup_concurrency=1))
    async with app.router.lifespan_context(app):
        state = app.state.lb
        await asyncio.wait_for(state.ready_event.wait(), timeout=60)
        warming = state.background
        assert warming is not None
        assert not warming.done()
        write_big_version(data, version=2)
        outcome = await state.reload()
        assert outcome.result == "swapped"
        assert warming.cancelled()
        # Two changes in quick succession: the newest is what ends up served.
        write_big_version(data, version=3)
        first = asyncio.ensure_future(state.reload())
        write_big_version(data, version=4)
        second = asyncio.ensure_future(state.reload())
        await asyncio.gather(first, second)
        await asyncio.wait_for(state.warm_event.wait(), timeout=90)
        newest = await served(app)
    assert newest == await fresh(data)
