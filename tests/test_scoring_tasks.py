"""Per-task scores: counted cells, coverage, null scores, direction and normalization."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest

from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring import UnknownBenchmark, UnknownTask, select_cells
from leaderboard_api.scoring.tasks import get_task, task_scores, task_table
from tests.conftest import MakeSnapshot, bench, cell


def scores_of(snapshot: Snapshot, benchmark: str) -> dict[tuple[str, str], tuple[float, float]]:
    info = snapshot.benchmarks[benchmark]
    cells = select_cells(snapshot, info)
    table = task_table(snapshot, cells.tasks)
    frame = task_scores(cells, table, normalize=info.scoring.normalize)
    return {(m, t): (raw, score) for m, t, raw, score in frame.iter_rows()}


@pytest.fixture
def split_snapshot(make_snapshot: MakeSnapshot) -> Snapshot:
    rows = [
        cell("a", "T1", 0.5),
        cell("a", "T1", 0.7, subset="extra"),
        cell("a", "T1", 0.1, split="dev"),
        cell("b", "T1", 0.4),
        cell("c", "T1", 0.9),
        cell("c", "T1", None, subset="extra"),
        # T2: the "x" cell has only a null score, so it does not exist.
        cell("a", "T2", 0.3),
        cell("a", "T2", None, subset="x"),
    ]
    benchmarks = [
        bench("test-only", [{"task": "T1", "splits": ["test"]}]),
        bench("everything", ["T1", "T2", "Ghost"]),
        bench("default-subset", [{"task": "T1", "subsets": ["default"]}]),
        bench("both", [{"task": "T1", "splits": ["dev", "nope"], "subsets": ["default"]}]),
    ]
    return make_snapshot(rows, benchmarks=benchmarks)


def test_task_score_is_the_mean_over_the_counted_cells(split_snapshot: Snapshot) -> None:
    got = scores_of(split_snapshot, "test-only")
    assert got == {("a", "T1"): pytest.approx((0.6, 0.6))}


def test_all_splits_and_subsets_count_when_the_benchmark_names_none(
    split_snapshot: Snapshot,
) -> None:
    got = scores_of(split_snapshot, "everything")
    assert got[("a", "T1")][0] == pytest.approx((0.5 + 0.7 + 0.1) / 3)
    # A model missing a cell gets no score, never the mean of a part; a null score is missing.
    assert ("b", "T1") not in got
    assert ("c", "T1") not in got


def test_a_cell_with_only_null_scores_does_not_exist(split_snapshot: Snapshot) -> None:
    assert scores_of(split_snapshot, "everything")[("a", "T2")] == (0.3, 0.3)


def test_subset_restriction_keeps_every_split(split_snapshot: Snapshot) -> None:
    got = scores_of(split_snapshot, "default-subset")
    assert got == {("a", "T1"): pytest.approx((0.3, 0.3))}


def test_named_cells_absent_from_the_data_are_not_required(split_snapshot: Snapshot) -> None:
    # "nope" is named but has no results anywhere: only dev/default counts.
    assert scores_of(split_snapshot, "both") == {("a", "T1"): (0.1, 0.1)}


def test_tasks_without_any_result_are_left_out(split_snapshot: Snapshot) -> None:
    cells = select_cells(split_snapshot, split_snapshot.benchmarks["everything"])
    assert cells.tasks == ("T1", "T2")
    assert cells.missing_tasks == ("Ghost",)
    assert dict(cells.required.iter_rows()) == {"T1": 3, "T2": 1}


def test_cells_hold_only_non_null_scores(split_snapshot: Snapshot) -> None:
    cells = select_cells(split_snapshot, split_snapshot.benchmarks["everything"])
    assert cells.rows.get_column("score").null_count() == 0
    assert cells.rows.height == 6


@pytest.fixture
def normalized_snapshot(make_snapshot: MakeSnapshot) -> Snapshot:
    rows = [
        cell("good", "Quarter", 0.625),
        cell("bad", "Quarter", 0.2),
        cell("good", "NoBaseline", 0.42),
        cell("good", "Latency", 3.5),
    ]
    tasks: list[dict[str, Any]] = [
        {"name": "Quarter", "random_baseline": 0.25},
        {"name": "NoBaseline"},
        {"name": "Latency", "higher_is_better": False, "random_baseline": 0.5, "unit": "s"},
    ]
    benchmarks = [
        bench("norm", ["Quarter", "NoBaseline", "Latency"], normalize=True),
        bench("plain", ["Quarter", "NoBaseline", "Latency"]),
    ]
    return make_snapshot(rows, tasks=tasks, benchmarks=benchmarks)


def test_normalization_follows_the_open_llm_rule(normalized_snapshot: Snapshot) -> None:
    got = scores_of(normalized_snapshot, "norm")
    assert got[("good", "Quarter")] == pytest.approx((0.625, 50.0))
    # Below the random baseline clips at zero; the raw value stays available.
    assert got[("bad", "Quarter")] == pytest.approx((0.2, 0.0))
    # No baseline means 0: the score is just scaled to percent.
    assert got[("good", "NoBaseline")] == pytest.approx((0.42, 42.0))
    # A lower-is-better measurement is not a probability of success: left as it is.
    assert got[("good", "Latency")] == (3.5, 3.5)


def test_without_normalize_score_is_raw(normalized_snapshot: Snapshot) -> None:
    got = scores_of(normalized_snapshot, "plain")
    assert all(raw == score for raw, score in got.values())


def test_task_table_carries_direction_and_unit(normalized_snapshot: Snapshot) -> None:
    table = task_table(normalized_snapshot, ["Latency", "Quarter"])
    assert table.select("task", "order", "higher_is_better", "unit").rows() == [
        ("Latency", 0, False, "s"),
        ("Quarter", 1, True, None),
    ]


def test_task_scores_are_sorted_by_task_order_then_model(make_snapshot: MakeSnapshot) -> None:
    rows = [cell(m, t, 0.5) for t in ("Z", "A") for m in ("m2", "m1")]
    snap = make_snapshot(rows, benchmarks=[bench("b", ["Z", "A"])])
    cells = select_cells(snap, snap.benchmarks["b"])
    frame = task_scores(cells, task_table(snap, cells.tasks))
    assert frame.select("task", "model").rows() == [
        ("Z", "m1"),
        ("Z", "m2"),
        ("A", "m1"),
        ("A", "m2"),
    ]
    assert frame.schema["model"] == pl.String


def test_mean_matches_a_plain_sum_of_the_cells(make_snapshot: MakeSnapshot) -> None:
    values = [0.1, 0.7, 0.2, 1e-9, 0.3333333333333333]
    rows = [cell("m", "T", v, subset=f"s{i}") for i, v in enumerate(values)]
    snap = make_snapshot(rows, benchmarks=[bench("b", ["T"])])
    ((raw, _),) = scores_of(snap, "b").values()
    total = 0.0
    for v in sorted(values):
        total += v
    assert math.isclose(raw, total / len(values), rel_tol=0, abs_tol=1e-15)


def test_unknown_names_raise_domain_errors(split_snapshot: Snapshot) -> None:
    from leaderboard_api.scoring.tasks import get_benchmark

    with pytest.raises(UnknownBenchmark, match="'nope'"):
        get_benchmark(split_snapshot, "nope")
    with pytest.raises(UnknownTask, match="'Nope'") as info:
        get_task(split_snapshot, "Nope")
    assert isinstance(info.value, LookupError)
    assert info.value.value == "Nope"
