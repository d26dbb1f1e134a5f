"""Ranking: Borda with ties, mean rank, mean, partial models, direction, Bradley–Terry."""

from __future__ import annotations

import math
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring import (
    BadParameter,
    benchmark_summary,
    bradley_terry,
    summary_ratings,
)
from leaderboard_api.scoring.ratings import BASE, SCALE
from tests.conftest import MakeSnapshot, bench, cell

TASKS = [{"name": "R1"}, {"name": "R2"}, {"name": "C1"}]


@pytest.fixture
def snap(make_snapshot: MakeSnapshot) -> Snapshot:
    rows = [
        cell("alpha", "R1", 0.8),
        cell("alpha", "R2", 0.6),
        cell("alpha", "C1", 0.9),
        cell("beta", "R1", 0.7),
        cell("beta", "R2", 0.7),
        cell("beta", "C1", 0.5),
        cell("gamma", "R1", 0.9),
        cell("gamma", "C1", 0.95),
    ]
    benchmarks = [
        bench("borda", ["R1", "R2", "C1"]),
        bench("borda-all", ["R1", "R2", "C1"], rank_partial_last=False),
        bench("mean-rank", ["R1", "R2", "C1"], rank_method="mean_rank"),
        bench("mean", ["R1", "R2", "C1"], rank_method="mean"),
    ]
    return make_snapshot(rows, tasks=TASKS, benchmarks=benchmarks)


def ranking(snapshot: Snapshot, name: str, **options: object) -> list[tuple[object, ...]]:
    summary = benchmark_summary(snapshot, name, **options)  # type: ignore[arg-type]
    return summary.frame.select("rank", "model").rows()


def test_borda_points_and_partial_models_last(snap: Snapshot) -> None:
    # R1: gamma 2, alpha 1, beta 0; R2: beta 1, alpha 0; C1: gamma 2, alpha 1, beta 0.
    summary = benchmark_summary(snap, "borda")
    assert dict(summary.frame.select("model", "points").iter_rows()) == {
        "alpha": 2.0,
        "beta": 1.0,
        "gamma": 4.0,
    }
    assert ranking(snap, "borda") == [(1, "alpha"), (2, "beta"), (3, "gamma")]


def test_everyone_ranked_together_when_configured(snap: Snapshot) -> None:
    assert ranking(snap, "borda-all") == [(1, "gamma"), (2, "alpha"), (3, "beta")]
    # The request can override the benchmark's option either way.
    assert ranking(snap, "borda", rank_partial_last=False) == ranking(snap, "borda-all")
    assert ranking(snap, "borda-all", rank_partial_last=True) == ranking(snap, "borda")


def test_mean_rank(snap: Snapshot) -> None:
    summary = benchmark_summary(snap, "mean-rank")
    assert dict(summary.frame.select("model", "mean_rank").iter_rows()) == pytest.approx(
        {"alpha": 2.0, "beta": 7 / 3, "gamma": 1.0}
    )
    assert ranking(snap, "mean-rank") == [(1, "alpha"), (2, "beta"), (3, "gamma")]
    assert ranking(snap, "mean-rank", rank_partial_last=False)[0] == (1, "gamma")


def test_mean(snap: Snapshot) -> None:
    assert benchmark_summary(snap, "mean").rank_method == "mean"
    assert ranking(snap, "mean") == [(1, "alpha"), (2, "beta"), (3, "gamma")]
    # Together, a partial model is ranked by the mean over the tasks it covers.
    assert ranking(snap, "mean", rank_partial_last=False)[0] == (1, "gamma")


def test_ties_share_the_best_rank(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("a", "X", 0.5),
        cell("b", "X", 0.5),
        cell("c", "X", 0.3),
        cell("a", "Y", 0.2),
        cell("b", "Y", 0.4),
        cell("c", "Y", 0.4),
        cell("d", "X", 0.1),
        cell("d", "Y", 0.1),
    ]
    summary = benchmark_summary(make_snapshot(rows, benchmarks=[bench("B", ["X", "Y"])]), "B")
    # X: a, b 1.5 points each (avg rank 1.5 of 4 -> 2.5 points), c 1, d 0.
    assert summary.frame.select("rank", "model", "points").rows() == [
        (1, "b", 5.0),
        (2, "a", 3.5),
        (2, "c", 3.5),
        (4, "d", 0.0),
    ]


def test_lower_is_better_ranks_the_lowest_first(make_snapshot: MakeSnapshot) -> None:
    rows = [cell("slow", "Lat", 200.0), cell("fast", "Lat", 50.0), cell("mid", "Lat", 100.0)]
    snap = make_snapshot(
        rows,
        tasks=[{"name": "Lat", "higher_is_better": False, "unit": "ms"}],
        benchmarks=[bench("B", ["Lat"]), bench("M", ["Lat"], rank_method="mean")],
    )
    expected = [(1, "fast"), (2, "mid"), (3, "slow")]
    assert ranking(snap, "B") == expected
    assert ranking(snap, "M") == expected
    assert ranking(snap, "B", rank_method="mean_rank") == expected


def test_mean_over_mixed_directions_falls_back_to_borda(make_snapshot: MakeSnapshot) -> None:
    rows = [
        cell("a", "Acc", 0.9),
        cell("a", "Lat", 300.0),
        cell("b", "Acc", 0.8),
        cell("b", "Lat", 10.0),
        cell("c", "Acc", 0.7),
        cell("c", "Lat", 20.0),
    ]
    snap = make_snapshot(
        rows,
        tasks=[{"name": "Lat", "higher_is_better": False}],
        benchmarks=[bench("B", ["Acc", "Lat"], rank_method="mean")],
    )
    summary = benchmark_summary(snap, "B")
    assert summary.rank_method == "borda"
    # Acc: a 2, b 1, c 0; Lat: b 2, c 1, a 0 -> b 3, a 2, c 1.
    assert summary.frame.select("rank", "model").rows() == [(1, "b"), (2, "a"), (3, "c")]


def test_unknown_rank_method(snap: Snapshot) -> None:
    with pytest.raises(BadParameter, match="'elo'"):
        benchmark_summary(snap, "borda", rank_method="elo")


# --- Bradley–Terry -------------------------------------------------------------------


def scores_frame(table: dict[str, dict[str, float]]) -> pl.DataFrame:
    rows = [(m, t, s) for t, by_model in table.items() for m, s in by_model.items()]
    return pl.DataFrame(rows, schema=["model", "task", "score"], orient="row")


DOMINANCE = {
    f"t{k}": {"a": 0.9 + k / 100, "b": 0.7, "c": 0.5 - k / 100, "d": 0.1} for k in range(6)
}


def test_bt_dominance_orders_and_stays_finite() -> None:
    ratings = bradley_terry(scores_frame(DOMINANCE), {}, samples=50, seed=3)
    frame = ratings.frame
    assert frame.get_column("model").to_list() == ["a", "b", "c", "d"]
    values = frame.get_column("rating").to_list()
    assert all(math.isfinite(v) for v in values)
    assert values[0] > values[1] > values[2] > values[3]
    assert sum(values) / 4 == pytest.approx(BASE, abs=1e-9)
    # a wins every task of every bootstrap sample: always first.
    assert frame.row(0, named=True)["rank_low"] == 1
    assert frame.row(0, named=True)["rank_high"] == 1
    # Every replicate has the same outcomes: intervals collapse onto the point estimate
    # (up to the replicates' looser fit tolerance).
    for row in frame.iter_rows(named=True):
        assert row["rating_low"] == pytest.approx(row["rating"], abs=1e-3)
        assert row["rating_high"] == pytest.approx(row["rating"], abs=1e-3)
    assert ratings.converged


def test_bt_is_deterministic_for_a_seed() -> None:
    rng = random.Random(7)
    table = {f"t{k}": {f"m{i}": rng.random() for i in range(8)} for k in range(5)}
    first = bradley_terry(scores_frame(table), {}, samples=40, seed=11)
    again = bradley_terry(scores_frame(table), {}, samples=40, seed=11)
    other = bradley_terry(scores_frame(table), {}, samples=40, seed=12)
    assert first.frame.equals(again.frame)
    assert first.frame.get_column("rating").equals(other.frame.get_column("rating"))
    assert not first.frame.equals(other.frame)


def test_bt_even_split_gives_equal_ratings() -> None:
    table = {"t1": {"x": 1.0, "y": 0.0}, "t2": {"x": 0.0, "y": 1.0}}
    frame = bradley_terry(scores_frame(table), {}, samples=0).frame
    assert frame.get_column("rating").to_list() == pytest.approx([BASE, BASE])


def test_bt_direction_and_ties() -> None:
    table = {"lat": {"fast": 1.0, "slow": 9.0}, "acc": {"fast": 0.5, "slow": 0.5}}
    frame = bradley_terry(scores_frame(table), {"lat": False}, samples=0).frame
    assert frame.get_column("model").to_list() == ["fast", "slow"]
    # fast wins 1.5 of 2 games (+ the prior's ½ of ½ each): p / (p + q) = 1.75 / 2.5.
    diff = (frame.item(0, "rating") - frame.item(1, "rating")) / SCALE
    assert 1 / (1 + math.exp(-diff)) == pytest.approx(1.75 / 2.5)


def reference_mm(table: dict[str, dict[str, float]], prior: float) -> dict[str, float]:
    """Plain minorization-maximization on the same likelihood, to tight convergence."""
    models = sorted({m for by_model in table.values() for m in by_model})
    wins = dict.fromkeys(models, prior * (len(models) - 1) / 2)
    games = {(i, j): prior for i in models for j in models if i != j}
    for by_model in table.values():
        for i, si in by_model.items():
            for j, sj in by_model.items():
                if i != j:
                    games[(i, j)] += 1
                    wins[i] += 1.0 if si > sj else 0.5 if si == sj else 0.0
    p = dict.fromkeys(models, 1.0)
    for _ in range(20000):
        new = {
            i: wins[i] / sum(games[(i, j)] / (p[i] + p[j]) for j in models if j != i)
            for i in models
        }
        mean = sum(math.log(v) for v in new.values()) / len(models)
        new = {i: math.exp(math.log(v) - mean) for i, v in new.items()}
        done = max(abs(math.log(new[i] / p[i])) for i in models) < 1e-13
        p = new
        if done:
            break
    return {i: BASE + SCALE * math.log(p[i]) for i in models}


def test_bt_point_estimate_matches_plain_mm_with_partial_models() -> None:
    rng = random.Random(5)
    table = {f"t{k}": {f"m{i}": round(rng.random(), 1) for i in range(7)} for k in range(6)}
    del table["t0"]["m6"], table["t1"]["m6"], table["t2"]["m5"]  # partial models
    table["t3"] = {"m0": 0.3, "m6": 0.9}
    got = dict(
        bradley_terry(scores_frame(table), {}, samples=0)
        .frame.select("model", "rating")
        .iter_rows()
    )
    expected = reference_mm(table, prior=0.5)
    assert got == pytest.approx(expected, abs=1e-6)


def test_bt_edge_cases() -> None:
    single = bradley_terry(scores_frame({"t": {"only": 0.3}}), {}, samples=5).frame
    assert single.row(0) == ("only", BASE, BASE, BASE, 1, 1, 1)
    empty = bradley_terry(scores_frame({}), {}, samples=5)
    assert empty.frame.height == 0
    with pytest.raises(BadParameter, match="samples"):
        bradley_terry(scores_frame(DOMINANCE), {}, samples=-1)
    with pytest.raises(BadParameter, match="prior"):
        bradley_terry(scores_frame(DOMINANCE), {}, prior=0.0)


def test_summary_with_ratings(snap: Snapshot) -> None:
    summary = benchmark_summary(snap, "borda")
    rated = summary.with_ratings(summary_ratings(summary, samples=20, seed=1))
    assert rated.ratings is not None
    assert rated.frame.select("rank", "model").equals(summary.frame.select("rank", "model"))
    rows = rated.to_rows()
    complete = [r for r in rows if r["complete"]]
    assert complete
    assert all(isinstance(r["rating"], float) for r in complete)
    assert all(r["rank_low"] <= r["rank_high"] for r in complete)
    # Partial models are ranked after complete ones here, so they are not rated: the
    # intervals speak of the positions among complete models that the table shows.
    assert all(r["rating"] is None for r in rows if not r["complete"])


def test_rank_intervals_bracket_the_shown_rank_of_a_clear_leader(
    make_snapshot: MakeSnapshot,
) -> None:
    rows = [
        cell(model, f"t{t}", score)
        for t in range(6)
        for model, score in (("best", 0.9), ("mid", 0.5 + t * 0.01), ("low", 0.1))
    ]
    rows.append(cell("partial", "t0", 0.99))
    snap = make_snapshot(rows, benchmarks=[bench("b", [f"t{t}" for t in range(6)])])
    summary = benchmark_summary(snap, "b")
    rated = summary.with_ratings(summary_ratings(summary, samples=30, seed=3))
    by_model = {r["model"]["name"]: r for r in rated.to_rows()}
    assert by_model["best"]["rank"] == by_model["best"]["rank_low"] == 1
    assert by_model["low"]["rank_high"] == 3
    assert by_model["partial"]["rank_low"] is None


@settings(max_examples=25, deadline=None)
@given(
    grid=st.lists(
        st.lists(st.sampled_from([None, 0.0, 0.2, 0.5, 0.5, 0.9]), min_size=4, max_size=4),
        min_size=2,
        max_size=7,
    ),
    lower=st.booleans(),
)
def test_bt_fit_agrees_with_plain_mm_on_random_partial_data(
    grid: list[list[float | None]], lower: bool
) -> None:
    table: dict[str, dict[str, float]] = {}
    for i, values in enumerate(grid):
        for k, value in enumerate(values):
            if value is not None:
                table.setdefault(f"t{k}", {})[f"m{i}"] = value
    if not table:
        return
    directions = {"t0": not lower}
    ratings = bradley_terry(scores_frame(table), directions, samples=5, seed=0)
    assert ratings.converged
    got = dict(ratings.frame.select("model", "rating").iter_rows())
    assert sum(got.values()) / len(got) == pytest.approx(BASE)
    if len(got) == 1:
        return
    flipped = {
        t: ({m: -s for m, s in by.items()} if not directions.get(t, True) else by)
        for t, by in table.items()
    }
    assert got == pytest.approx(reference_mm(flipped, prior=0.5), abs=1e-6)
