"""Benchmark summaries: means, coverage, zero-shot, metadata, row shape and invariances."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring import (
    BadParameter,
    BenchmarkSummary,
    UnknownBenchmark,
    benchmark_summary,
    build_index,
    summary_ratings,
)
from tests.conftest import MakeSnapshot, bench, cell, write_dataset

TASKS: list[dict[str, Any]] = [
    {"name": "R1", "type": "Retrieval"},
    {"name": "R2", "type": "Retrieval"},
    {"name": "C1", "type": "Classification", "is_public": False},
]
MODELS: list[dict[str, Any]] = [
    {
        "name": "alpha",
        "training_datasets": ["R1", "Other"],
        "n_parameters": 1.5e9,
        "n_active_parameters": 1e9,
        "embed_dim": 1024,
        "max_tokens": 512,
        "license": "mit",
        "open_weights": True,
        "model_type": "dense",
        "revision": "r1",
    },
    {"name": "beta", "training_datasets": []},
]


@pytest.fixture
def snap(make_snapshot: MakeSnapshot) -> Snapshot:
    rows = [
        cell("alpha", "R1", 0.8),
        cell("alpha", "R2", 0.6),
        cell("alpha", "C1", 0.9),
        cell("beta", "R1", 0.7, model_revision="b-rev"),
        cell("beta", "R2", 0.7, model_revision="b-rev"),
        cell("beta", "C1", 0.5, model_revision="b-rev"),
        cell("gamma", "R1", 0.9),
        cell("gamma", "C1", 0.95),
    ]
    return make_snapshot(
        rows, tasks=TASKS, models=MODELS, benchmarks=[bench("B", ["R1", "R2", "C1"])]
    )


def by_model(summary: BenchmarkSummary) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in summary.frame.iter_rows(named=True)}


def test_means_over_tasks_types_public_and_private(snap: Snapshot) -> None:
    rows = by_model(benchmark_summary(snap, "B"))
    alpha, beta, gamma = rows["alpha"], rows["beta"], rows["gamma"]
    assert alpha["mean_task"] == pytest.approx((0.8 + 0.6 + 0.9) / 3)
    assert alpha["mean_task_type"] == pytest.approx((0.7 + 0.9) / 2)
    assert alpha["mean_public"] == pytest.approx(0.7)
    assert alpha["mean_private"] == pytest.approx(0.9)
    assert beta["mean_task_type"] == pytest.approx((0.7 + 0.5) / 2)
    # gamma misses R2: no task mean, no Retrieval mean, no type mean, no public mean.
    assert gamma["mean_task"] is None
    assert gamma["mean_task_type"] is None
    assert gamma["mean_public"] is None
    assert gamma["mean_private"] == pytest.approx(0.95)
    assert (gamma["tasks_covered"], gamma["complete"]) == (2, False)
    assert (alpha["tasks_covered"], alpha["complete"]) == (3, True)


def test_type_scores_only_for_complete_types(snap: Snapshot) -> None:
    summary = benchmark_summary(snap, "B")
    assert summary.task_types == ("Classification", "Retrieval")
    got = {(m, t): s for m, t, s in summary.type_scores.iter_rows()}
    assert got[("alpha", "Retrieval")] == pytest.approx(0.7)
    assert ("gamma", "Retrieval") not in got
    assert got[("gamma", "Classification")] == pytest.approx(0.95)


def test_zero_shot_and_metadata(snap: Snapshot) -> None:
    rows = by_model(benchmark_summary(snap, "B"))
    assert rows["alpha"]["zero_shot_pct"] == pytest.approx(100 - 100 / 3)
    assert rows["alpha"]["trained_on_tasks"] == ["R1"]
    assert rows["beta"]["zero_shot_pct"] == 100.0
    # Unknown training data (gamma is not in models.jsonl) gives no zero-shot figure.
    assert rows["gamma"]["zero_shot_pct"] is None
    assert rows["gamma"]["trained_on_tasks"] is None
    alpha = rows["alpha"]
    assert alpha["model_type"] == ["dense"]
    assert (alpha["n_parameters"], alpha["embed_dim"], alpha["license"]) == (1.5e9, 1024, "mit")
    assert alpha["revision"] == "r1"
    assert rows["beta"]["revision"] == "b-rev"


def test_rows_are_ranked_with_partial_models_last(snap: Snapshot) -> None:
    summary = benchmark_summary(snap, "B")
    assert summary.rank_method == "borda"
    assert summary.frame.select("rank", "model", "points").rows() == [
        (1, "alpha", 2.0),
        (2, "beta", 1.0),
        (3, "gamma", 4.0),
    ]


def test_to_rows_shape(snap: Snapshot) -> None:
    rows = benchmark_summary(snap, "B").to_rows()
    first = rows[0]
    assert first["model"]["name"] == "alpha"
    assert first["model"]["model_type"] == ["dense"]
    assert first["total_params_b"] == pytest.approx(1.5)
    assert first["active_params_b"] == pytest.approx(1.0)
    assert (first["embedding_dim"], first["max_tokens"]) == (1024, 512)
    assert list(first["scores_by_task"]) == ["R1", "R2", "C1"]
    assert list(first["scores_by_task_type"]) == ["Classification", "Retrieval"]
    assert first["raw_scores_by_task"] is None
    assert first["rating"] is None
    gamma = rows[2]
    assert gamma["scores_by_task"] == {"R1": 0.9, "R2": None, "C1": 0.95}
    assert gamma["scores_by_task_type"]["Retrieval"] is None
    for row in rows:
        for value in _leaves(row):
            assert not (isinstance(value, float) and math.isnan(value))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_wide_frame_has_one_column_per_task(snap: Snapshot) -> None:
    wide = benchmark_summary(snap, "B").wide()
    assert wide.columns == ["model", "R1", "R2", "C1"]
    assert wide.row(2) == ("gamma", 0.9, None, 0.95)


def test_model_without_any_complete_task_still_has_a_row(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("full", "T", 0.5),
        cell("full", "T", 0.6, subset="b"),
        cell("half", "T", 0.9),
    ]
    summary = benchmark_summary(make_snapshot(rows, benchmarks=[bench("B", ["T"])]), "B")
    assert summary.frame.select("rank", "model", "tasks_covered", "points").rows() == [
        (1, "full", 1, 0.0),
        (2, "half", 0, None),
    ]


def test_normalized_summary_keeps_raw_scores(make_snapshot: MakeSnapshot) -> None:
    snap = make_snapshot(
        [cell("m", "T", 0.625)],
        tasks=[{"name": "T", "random_baseline": 0.25}],
        benchmarks=[bench("B", ["T"], normalize=True)],
    )
    (row,) = benchmark_summary(snap, "B").to_rows()
    assert row["scores_by_task"] == {"T": pytest.approx(50.0)}
    assert row["raw_scores_by_task"] == {"T": 0.625}
    assert row["mean_task"] == pytest.approx(50.0)


def test_unknown_benchmark(snap: Snapshot) -> None:
    with pytest.raises(UnknownBenchmark, match="'nope'"):
        benchmark_summary(snap, "nope")


# --- properties ------------------------------------------------------------------------

SCORES = st.sampled_from([None, 0.0, 0.1, 0.25, 0.5, 0.5, 0.7, 1 / 3, 0.9, 1.0])
CELLS = [("T0", "default"), ("T1", "default"), ("T1", "b"), ("T2", "default"), ("T3", "x")]
DATA = st.lists(
    st.lists(st.one_of(st.none(), SCORES), min_size=len(CELLS), max_size=len(CELLS)),
    min_size=1,
    max_size=6,
)
BENCHMARKS = [
    bench("B", ["T0", "T1", "T2", "T3"]),
    bench("Partial", ["T1", "T2"], rank_partial_last=False, rank_method="mean_rank"),
]
LOWER = [{"name": "T2", "higher_is_better": False}]
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def to_cells(grid: list[list[float | None]], *, skip_missing: bool = True) -> list[dict[str, Any]]:
    rows = []
    for index, values in enumerate(grid):
        for (task, subset), value in zip(CELLS, values, strict=True):
            if value is None and skip_missing:
                continue
            rows.append(cell(f"m{index}", task, value, subset=subset))
    return rows


def summaries(snap: Snapshot) -> list[BenchmarkSummary]:
    return [benchmark_summary(snap, b["name"]) for b in BENCHMARKS]


def assert_same(left: list[BenchmarkSummary], right: list[BenchmarkSummary]) -> None:
    for a, b in zip(left, right, strict=True):
        assert a.frame.equals(b.frame)
        assert a.task_scores.equals(b.task_scores)
        assert a.to_rows() == b.to_rows()


@SETTINGS
@given(grid=DATA, seed=st.integers(0, 2**16), files=st.integers(1, 3))
def test_results_do_not_depend_on_row_order(
    make_snapshot: MakeSnapshot, grid: list[list[float | None]], seed: int, files: int
) -> None:
    rows = to_cells(grid)
    if not rows:
        return
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    first = make_snapshot(rows, tasks=LOWER, benchmarks=BENCHMARKS)
    second = make_snapshot(shuffled, tasks=LOWER, benchmarks=BENCHMARKS, files=files)
    assert_same(summaries(first), summaries(second))


@SETTINGS
@given(grid=DATA)
def test_a_model_sharing_no_task_changes_nothing(
    make_snapshot: MakeSnapshot, grid: list[list[float | None]]
) -> None:
    rows = to_cells(grid)
    if not rows:
        return
    outsider = [cell("zz-outsider", "Elsewhere", 0.99), cell("zz-outsider", "T9", 0.1)]
    plain = make_snapshot(rows, tasks=LOWER, benchmarks=BENCHMARKS)
    more = make_snapshot(rows + outsider, tasks=LOWER, benchmarks=BENCHMARKS)
    assert_same(summaries(plain), summaries(more))


@SETTINGS
@given(grid=DATA, pick=st.integers(0, 5))
def test_a_task_score_does_not_depend_on_other_models(
    make_snapshot: MakeSnapshot, grid: list[list[float | None]], pick: int
) -> None:
    # A witness covering every cell fixes the set of cells that exist in both datasets.
    witness = [cell("witness", task, 0.5, subset=subset) for task, subset in CELLS]
    chosen = f"m{pick % len(grid)}"
    rows = to_cells(grid)
    alone = [r for r in rows if r["model_name"] == chosen]
    full = benchmark_summary(make_snapshot(rows + witness, benchmarks=BENCHMARKS), "B")
    solo = benchmark_summary(make_snapshot(alone + witness, benchmarks=BENCHMARKS), "B")
    mine = full.task_scores.filter(full.task_scores["model"] == chosen)
    assert mine.equals(solo.task_scores.filter(solo.task_scores["model"] == chosen))


def test_flat_rows_for_the_api_row_schema(snap: Snapshot) -> None:
    summary = benchmark_summary(snap, "B")
    assert (summary.num_models, summary.num_ranked) == (3, 3)
    rows = summary.rows()
    assert [r["model"] for r in rows] == ["alpha", "beta", "gamma"]
    assert isinstance(rows[0]["model"], str)
    for key in ("scores_by_task", "points", "mean_rank", "raw_scores_by_task"):
        assert rows[0][key] == summary.to_rows()[0][key]
    # Unknown training data: an empty list here, None in the MTEB-shaped rows.
    assert rows[2]["trained_on_tasks"] == []
    assert rows[2]["zero_shot_pct"] is None
    assert summary.row_for("beta") == rows[1]
    assert summary.row_for("nobody") is None


def test_index_gives_identical_summaries(snap: Snapshot, make_snapshot: MakeSnapshot) -> None:
    index = build_index(snap)
    plain = benchmark_summary(snap, "B")
    fast = benchmark_summary(snap, "B", index=index)
    assert fast.frame.equals(plain.frame)
    assert fast.to_rows() == plain.to_rows()
    other = make_snapshot([cell("x", "R1", 0.1)], benchmarks=[bench("B", ["R1"])])
    with pytest.raises(BadParameter, match="index"):
        benchmark_summary(other, "B", index=index)


DIGEST = """
import hashlib, json, sys
from tests.conftest import load
from leaderboard_api.scoring import benchmark_summary, summary_ratings
snap = load(__import__("pathlib").Path(sys.argv[1]))
summary = benchmark_summary(snap, "B")
rated = summary.with_ratings(summary_ratings(summary, samples=8, seed=2))
print(hashlib.sha256(json.dumps(rated.to_rows()).encode()).hexdigest())
"""


def test_same_bytes_whatever_the_thread_count(tmp_path: Path) -> None:
    rng = random.Random(4)
    rows = [
        cell(f"m{i:02d}", f"T{t}", rng.choice([None, rng.random()]), subset=f"s{k}")
        for i in range(40)
        for t in range(12)
        for k in range(6)
    ]
    write_dataset(tmp_path, rows, benchmarks=[bench("B", [f"T{t}" for t in range(12)])])
    digests = set()
    for threads in ("1", "4"):
        env = {**os.environ, "POLARS_MAX_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", DIGEST, str(tmp_path)],
            env=env,
            cwd=Path(__file__).parents[1],
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_benchmark_without_results_is_empty(make_snapshot: MakeSnapshot) -> None:
    snap = make_snapshot([cell("m", "T", 0.5)], benchmarks=[bench("Ghosts", ["G1", "G2"])])
    summary = benchmark_summary(snap, "Ghosts")
    assert (summary.tasks, summary.missing_tasks) == ((), ("G1", "G2"))
    assert summary.num_models == 0
    assert summary.to_rows() == []
    assert summary.wide().columns == ["model"]
    assert summary_ratings(summary, samples=3).frame.height == 0
