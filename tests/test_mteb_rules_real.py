"""MTEB's leaderboard rules pinned on the real results sample: per-task revisions of models
with several revision folders, and a custom grouping scored from real task scores."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import polars as pl
import pytest

from leaderboard_api.dataset.importers.mteb import import_mteb
from leaderboard_api.dataset.loader import load_snapshot
from leaderboard_api.dataset.revisions import PLACEHOLDER_REVISIONS, version_key
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import resolve
from tests.api_support import SHARED, client_for

MTEB = SHARED / "mteb"
RESULTS = MTEB / "results-sample" / "results"
pytestmark = pytest.mark.skipif(not RESULTS.is_dir(), reason="real MTEB data not available")
#: Models of the sample with results in several revision folders.
SEVERAL = ("intfloat__multilingual-e5-large", "Alibaba-NLP__gte-Qwen1.5-7B-instruct")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mteb-real")
    import_mteb(MTEB / "results-sample", out=out, catalog=MTEB / "catalog")
    return out


@pytest.fixture(scope="module")
def snapshot(dataset: Path) -> Snapshot:
    return load_snapshot(resolve(str(dataset)))


def _expected_revisions(folder: str, main: str | None) -> dict[str, str]:
    """Task -> revision folder, by MTEB's priorities, computed from the raw files alone."""
    candidates: dict[str, list[tuple[tuple[Any, ...], str]]] = {}
    for rev in sorted(p for p in (RESULTS / folder).iterdir() if p.is_dir()):
        for path in sorted(rev.glob("*.json")):
            if path.name == "model_meta.json":
                continue
            doc = json.loads(path.read_text())
            task = doc.get("task_name") or doc.get("mteb_dataset_name")
            version = doc.get("mteb_version")
            key = (
                rev.name == main,
                version is not None,
                rev.name not in PLACEHOLDER_REVISIONS,
                version_key(version) if version else ((), 0, ""),
            )
            candidates.setdefault(task, []).append((key, rev.name))
    return {task: max(found)[1] for task, found in candidates.items() if found}


@pytest.mark.parametrize("folder", SEVERAL)
def test_each_task_comes_from_its_best_revision(snapshot: Snapshot, folder: str) -> None:
    name = folder.replace("__", "/")
    main = snapshot.models[name].revision
    want = _expected_revisions(folder, main)
    rows = snapshot.results.filter(pl.col("model_name") == name)
    got = dict(
        rows.select(pl.col("task_name").cast(pl.String), pl.col("model_revision").cast(pl.String))
        .unique()
        .iter_rows()
    )
    counted = {t: r for t, r in want.items() if t in got}
    assert counted, name
    assert got == counted
    # Several folders really contribute: the rule is per task, not per model.
    assert len(set(got.values())) > 1, name


@pytest.fixture
async def grouped(dataset: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The imported sample with one more benchmark declaring a custom grouping."""
    lines = (dataset / "benchmarks.jsonl").read_text().splitlines()
    eng = next(json.loads(line) for line in lines if json.loads(line)["name"] == "MTEB(eng, v2)")
    tasks = [t["task"] for t in eng["tasks"]][:4]
    sts = next(t for t in eng["tasks"] if t["task"] == "STS17")
    grouping = {
        "custom_grouping": "Sample groups",
        "groups": [
            {"label": "First two", "tasks": [{"task": t} for t in tasks[:2]]},
            {"label": "STS17 en-de", "tasks": [{"task": "STS17", "subsets": ["en-de"]}]},
        ],
    }
    extra = {
        **eng,
        "name": "Grouped",
        "aliases": [],
        "tasks": [*[t for t in eng["tasks"] if t["task"] in tasks], sts],
        "aggregations": ["mean_task", grouping],
    }
    copy = tmp_path / "grouped"
    shutil.copytree(dataset, copy)
    (copy / "benchmarks.jsonl").write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    async with client_for(data=str(copy)) as client:
        yield client


async def test_custom_grouping_on_real_scores(grouped: httpx.AsyncClient) -> None:
    summary = (await grouped.get(f"/v1/benchmarks/{quote('Grouped', safe='')}/scores")).json()
    first_two = summary["tasks"][:2]
    checked = 0
    for row in summary["rows"]:
        groups = row["scoresByCustomGroup"].get("Sample groups", {})
        scores = row["scoresByTask"]
        if all(t in scores for t in first_two):
            want = sum(scores[t] for t in first_two) / 2
            assert groups["First two"] == pytest.approx(want, abs=1e-12)
            checked += 1
        else:
            assert "First two" not in groups
    assert checked > 5
    task = (await grouped.get("/v1/tasks/STS17/scores")).json()
    en_de = {
        r["model"]["name"]: r["subsetScores"]["en-de"]["test"]
        for r in task["rows"]
        if "en-de" in r["subsetScores"] and "test" in r["subsetScores"]["en-de"]
    }
    subset = [
        r
        for r in summary["rows"]
        if "STS17 en-de" in r["scoresByCustomGroup"].get("Sample groups", {})
    ]
    assert subset
    for row in subset:
        value = row["scoresByCustomGroup"]["Sample groups"]["STS17 en-de"]
        assert value == pytest.approx(en_de[row["model"]["name"]], abs=1e-12)
    (declared,) = summary["customGroupings"]
    labels = {g["label"]: g for g in declared["groups"]}
    assert labels["First two"]["tasksComplete"] is True
    assert labels["STS17 en-de"]["tasksComplete"] is False
