"""Scoring on the full real MTEB results (1.2M rows) with the converted MTEB catalog."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from leaderboard_api.dataset.importers.mteb import convert_mteb_catalog
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring import (
    benchmark_summary,
    build_index,
    language_scores,
    leaders,
    summary_ratings,
    task_view,
)
from tests.conftest import load

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mteb"
RESULTS = DATA / "full" / "results.parquet"
CATALOG = DATA / "catalog"
ENG = "MTEB(eng, v2)"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    if not RESULTS.is_file() or not CATALOG.is_dir():
        pytest.skip("the real MTEB data is not in ../shared/data")
    root = tmp_path_factory.mktemp("mteb-full")
    (root / "results").mkdir()
    (root / "results" / "results.parquet").symlink_to(RESULTS)
    convert_mteb_catalog(CATALOG, out=root)
    return load(root)


def straightforward_means(snapshot: Snapshot, benchmark: str) -> dict[str, float]:
    """Mean over tasks of every model covering every counted cell, in plain Python."""
    spec = {e.task: (e.splits, e.subsets) for e in snapshot.benchmarks[benchmark].tasks}
    rows = snapshot.results.filter(pl.col("task_name").is_in(list(spec))).select(
        pl.col("model_name", "task_name", "split", "subset").cast(pl.String), "score"
    )
    cells: dict[str, set[tuple[str, str]]] = defaultdict(set)
    mine: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    for model, task, split, subset, score in rows.iter_rows():
        splits, subsets = spec[task]
        if score is None or (splits is not None and split not in splits):
            continue
        if subsets is not None and subset not in subsets:
            continue
        cells[task].add((split, subset))
        mine[(model, task)][(split, subset)] = score
    tasks = [t for t in spec if cells[t]]
    out = {}
    for model in {m for m, _ in mine}:
        per_task = []
        for task in tasks:
            got = mine.get((model, task), {})
            if set(got) != cells[task]:
                break
            per_task.append(sum(got.values()) / len(got))
        else:
            out[model] = sum(per_task) / len(per_task)
    return out


def test_eng_v2_means_match_a_straightforward_computation(real: Snapshot) -> None:
    summary = benchmark_summary(real, ENG)
    expected = straightforward_means(real, ENG)
    complete = summary.frame.filter(pl.col("complete"))
    got = dict(complete.select("model", "mean_task").iter_rows())
    assert len(got) > 50
    assert set(got) == set(expected)
    for model, mean in got.items():
        assert math.isclose(mean, expected[model], rel_tol=0, abs_tol=1e-12), model


def test_eng_v2_summary_shape(real: Snapshot) -> None:
    summary = benchmark_summary(real, ENG)
    assert len(summary.tasks) == 41
    ranks = summary.frame.get_column("rank").to_list()
    assert ranks == sorted(ranks)
    assert ranks[0] == 1
    # MTEB ranks everyone together by its Borda count over the whole field: points
    # never increase down the table, and partial models may rank above complete ones.
    assert summary.rank_partial_last is False
    points = summary.frame.get_column("points").to_list()
    assert points == sorted(points, reverse=True)
    complete = summary.frame.get_column("complete").to_list()
    assert complete != sorted(complete, reverse=True)
    rows = summary.to_rows()
    assert len(rows[0]["scores_by_task"]) == 41
    assert all(not _has_nan(r) for r in rows)


def _has_nan(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return isinstance(value, float) and math.isnan(value)


def test_every_benchmark_builds_the_same_with_the_index(real: Snapshot) -> None:
    index = build_index(real)
    for name in real.benchmarks:
        summary = benchmark_summary(real, name)
        assert summary.frame.height == summary.frame.get_column("model").n_unique(), name
        assert benchmark_summary(real, name, index=index).frame.equals(summary.frame), name


def test_views_on_real_data(real: Snapshot) -> None:
    summary = benchmark_summary(real, ENG)
    assert any(leader is not None for _, _, leader in leaders(summary))
    view = task_view(real, "ArguAna")
    assert ENG in view.benchmarks
    assert view.rows()[0]["rank"] == 1
    europe = language_scores(real, "MTEB(Europe, v1)", languages=["deu", "fra"])
    assert europe.languages == ("deu", "fra")
    german = benchmark_summary(real, "MTEB(Multilingual, v2)", languages=["German"])
    assert 0 < len(german.tasks) < 131


def test_bradley_terry_on_real_data(real: Snapshot) -> None:
    summary = benchmark_summary(real, ENG)
    ratings = summary_ratings(summary, samples=10, seed=0)
    assert ratings.converged
    frame = ratings.frame
    # Everyone ranks together in MTEB's tables, so everyone with a task score is rated.
    assert frame.height == summary.frame.filter(pl.col("tasks_covered") > 0).height
    assert frame.get_column("rating").mean() == pytest.approx(1000.0)
    # Ratings agree with the mean score about who is far ahead of whom.
    means = dict(summary.frame.select("model", "mean_task").iter_rows())
    top = frame.get_column("model").head(10).to_list()
    bottom = frame.get_column("model").tail(10).to_list()
    top_means = [means[m] for m in top if means[m] is not None]
    bottom_means = [means[m] for m in bottom if means[m] is not None]
    assert min(top_means) > max(bottom_means)
