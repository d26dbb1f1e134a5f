"""Standings: languages (normalization, filter, per-language), leaders, task view, counts;
the model page's standing rows."""

from __future__ import annotations

from typing import Any

import pytest

from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.resources import Views
from leaderboard_api.scoring import (
    BadParameter,
    UnknownLanguage,
    UnknownModel,
    UnknownTask,
    available_languages,
    benchmark_summary,
    build_index,
    language_label,
    language_scores,
    leaders,
    normalize_languages,
    task_model_counts,
    task_view,
)
from tests.conftest import MakeSnapshot, bench, cell

# --- language normalization ---------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [["English"], ["eng"], ["eng-Latn"], ["en"], [" ENGLISH "], ["eng_Latn", "English", "en"]],
)
def test_equivalent_spellings_give_one_key(values: list[str]) -> None:
    assert normalize_languages(values) == ("eng",)


def test_normalized_languages_are_sorted_and_unique() -> None:
    assert normalize_languages(["fr", "English", "fra-Latn", "pt-BR"]) == ("eng", "fra", "por")
    assert normalize_languages([]) == ()
    assert language_label("deu") == "German"
    assert language_label("xyz") == "xyz"


@pytest.mark.parametrize("value", ["Klingon", "zz", "e", "", "eng latn"])
def test_unknown_language_names_the_value(value: str) -> None:
    with pytest.raises(UnknownLanguage) as info:
        normalize_languages(["eng", value])
    assert repr(value) in str(info.value)
    assert isinstance(info.value, BadParameter)
    assert isinstance(info.value, ValueError)


def test_codes_outside_the_table_are_checked_against_known() -> None:
    assert normalize_languages(["gsw-Latn"]) == ("gsw",)
    known = available_languages([["gsw-Latn", "eng-Latn"]])
    assert known == {"gsw", "eng"}
    assert normalize_languages(["gsw"], known=known) == ("gsw",)
    with pytest.raises(UnknownLanguage, match="'xyz'"):
        normalize_languages(["xyz"], known=known)


# --- language filter and per-language view ------------------------------------------------


@pytest.fixture
def multilingual(make_snapshot: MakeSnapshot) -> Snapshot:
    rows = [
        cell("a", "Multi", 0.8, subset="en", languages=["eng-Latn"]),
        cell("a", "Multi", 0.6, subset="de", languages=["deu-Latn"]),
        cell("a", "EnOnly", 0.4),
        cell("a", "DeOnly", 0.2),
        cell("a", "Zh", 0.5),
        cell("b", "Multi", 0.7, subset="en", languages=["eng-Latn"]),
        cell("b", "EnOnly", 0.6),
    ]
    tasks: list[dict[str, Any]] = [
        {"name": "Multi", "languages": ["eng-Latn", "deu-Latn"]},
        {"name": "EnOnly", "languages": ["eng-Latn"]},
        {"name": "DeOnly", "languages": ["deu-Latn"]},
        {"name": "Zh", "languages": ["cmn-Hans"]},
    ]
    return make_snapshot(
        rows, tasks=tasks, benchmarks=[bench("B", ["Multi", "EnOnly", "DeOnly", "Zh"])]
    )


def test_language_filter_recomputes_over_matching_cells(multilingual: Snapshot) -> None:
    summary = benchmark_summary(multilingual, "B", languages=["English"])
    assert summary.tasks == ("Multi", "EnOnly")
    assert summary.languages == ("eng",)
    means = dict(summary.frame.select("model", "mean_task").iter_rows())
    assert means == pytest.approx({"a": (0.8 + 0.4) / 2, "b": (0.7 + 0.6) / 2})
    # Unfiltered, b misses the German cell of Multi and the other tasks.
    full = dict(benchmark_summary(multilingual, "B").frame.select("model", "mean_task").iter_rows())
    assert full["b"] is None


def test_equivalent_language_filters_give_the_same_summary(multilingual: Snapshot) -> None:
    a = benchmark_summary(multilingual, "B", languages=["eng-Latn"])
    b = benchmark_summary(multilingual, "B", languages=["en", "English"])
    assert a.frame.equals(b.frame)
    assert a.to_rows() == b.to_rows()


def test_macrolanguage_filter_matches_its_members(multilingual: Snapshot) -> None:
    summary = benchmark_summary(multilingual, "B", languages=["Chinese"])
    assert summary.tasks == ("Zh",)
    assert summary.models == ["a"]


def test_per_language_means_over_the_cells_a_model_has(multilingual: Snapshot) -> None:
    view = language_scores(multilingual, "B")
    assert view.languages == ("cmn", "deu", "eng")
    got = {(m, lang): (s, n) for m, lang, s, n in view.frame.iter_rows()}
    assert got[("a", "eng")] == pytest.approx(((0.8 + 0.4) / 2, 2))
    assert got[("a", "deu")] == pytest.approx(((0.6 + 0.2) / 2, 2))
    assert got[("b", "eng")] == pytest.approx(((0.7 + 0.6) / 2, 2))
    assert ("b", "deu") not in got
    name, by_language = view.rows()[1]
    assert name == "b"
    assert by_language == {"eng": pytest.approx(0.65)}
    only = language_scores(multilingual, "B", languages=["deu"])
    assert only.languages == ("deu",)


# --- leaders ----------------------------------------------------------------------------------


@pytest.fixture
def sized(make_snapshot: MakeSnapshot) -> Snapshot:
    scores = {"tiny": 0.6, "small": 0.7, "partial": 0.99, "big": 0.5, "nameless": 0.9}
    rows = [cell(m, t, s) for m, s in scores.items() for t in ("T1", "T2") if m != "partial"]
    rows.append(cell("partial", "T1", 0.99))
    models = [
        {"name": "tiny", "n_parameters": 5e7, "model_type": ["dense"]},
        {"name": "small", "n_parameters": 8e7},
        {"name": "partial", "n_parameters": 3e8},
        {"name": "big", "n_parameters": 2e9},
    ]
    return make_snapshot(rows, models=models, benchmarks=[bench("B", ["T1", "T2"])])


def test_leaders_by_size_bucket(sized: Snapshot) -> None:
    found = list(leaders(benchmark_summary(sized, "B")))
    assert [(low, high) for low, high, _ in found] == [
        (0, 100),
        (100, 500),
        (500, 1000),
        (1000, 5000),
        (5000, None),
    ]
    assert found[0][2] == {
        "rank": 2,
        "model": "small",
        "model_type": None,
        "mean_task": pytest.approx(0.7),
        "total_params_b": pytest.approx(0.08),
    }
    # The partial 300M model is not a leader; nameless (no size) is in no bucket.
    assert found[1][2] is None
    assert found[3][2] is not None
    assert found[3][2]["model"] == "big"
    assert found[4][2] is None


def test_custom_and_bad_buckets(sized: Snapshot) -> None:
    summary = benchmark_summary(sized, "B")
    ((_, _, only),) = leaders(summary, buckets=[(0, None)])
    assert only is not None
    assert only["model"] == "small"
    ((_, _, small),) = leaders(summary, buckets=[(0, 60)])
    assert small is not None
    assert (small["model"], small["model_type"]) == ("tiny", ["dense"])
    for bad in ([(10, 5)], [(-1, None)], [(None, 3)], [(1,)]):
        with pytest.raises(BadParameter):
            leaders(summary, buckets=bad)


# --- task view --------------------------------------------------------------------------------


@pytest.fixture
def task_snapshot(make_snapshot: MakeSnapshot) -> Snapshot:
    rows = [
        cell("a", "T", 0.2),
        cell("a", "T", 0.4, subset="x"),
        cell("a", "T", 0.9, split="dev"),
        cell("b", "T", 0.1),
        cell("b", "T", 0.3, subset="x"),
        cell("c", "T", 0.05),
        cell("fast", "Lat", 3.0),
        cell("slow", "Lat", 30.0),
    ]
    tasks: list[dict[str, Any]] = [
        {"name": "T", "type": "Retrieval"},
        {"name": "Lat", "higher_is_better": False},
    ]
    benchmarks = [
        bench("All", ["T"]),
        bench("TestOnly", [{"task": "T", "splits": ["test"]}]),
        bench("Speed", ["Lat"]),
    ]
    return make_snapshot(rows, tasks=tasks, benchmarks=benchmarks)


def test_task_view_rows_cells_and_benchmarks(task_snapshot: Snapshot) -> None:
    view = task_view(task_snapshot, "T")
    assert view.benchmarks == ("All", "TestOnly")
    assert (view.splits, view.subsets) == (("dev", "test"), ("default", "x"))
    rows = view.rows()
    # Ranks are positions (missing scores last, by name); a subset counts its best split.
    assert [(r["rank"], r["model"]) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    assert [r["score"] for r in rows[1:]] == [None, None]
    assert rows[0]["score"] == pytest.approx((0.9 + 0.4) / 2)
    assert rows[0]["subset_scores"] == {"default": {"dev": 0.9, "test": 0.2}, "x": {"test": 0.4}}
    assert rows[0]["benchmarks"] == ["All", "TestOnly"]
    assert rows[1]["benchmarks"] == ["TestOnly"]
    assert rows[2]["benchmarks"] == []


def test_task_view_within_a_benchmark(task_snapshot: Snapshot) -> None:
    rows = task_view(task_snapshot, "T", benchmark="TestOnly").rows()
    assert [(r["rank"], r["model"]) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    assert rows[2]["score"] is None
    assert rows[1]["score"] == pytest.approx(0.2)
    with pytest.raises(BadParameter, match="'Speed'"):
        task_view(task_snapshot, "T", benchmark="Speed")


def test_task_view_direction_and_unknown(task_snapshot: Snapshot) -> None:
    view = task_view(task_snapshot, "Lat")
    assert not view.higher_is_better
    assert [r["model"] for r in view.rows()] == ["fast", "slow"]
    with pytest.raises(UnknownTask, match="'Nope'"):
        task_view(task_snapshot, "Nope")


# --- the model page's standing rows and catalog numbers --------------------------------------


def test_model_scores_rows(task_snapshot: Snapshot) -> None:
    views = Views(task_snapshot)
    rows = views.model_scores("b").rows
    assert [r.benchmark_name for r in rows] == ["All", "TestOnly"]
    all_row, test_row = rows
    assert (all_row.rank, all_row.total_models, all_row.complete) == (2, 3, False)
    assert all_row.mean_task is None
    assert (test_row.rank, test_row.total_models) == (2, 3)
    assert test_row.scores_by_task_type == {"Retrieval": pytest.approx(0.2)}
    assert test_row.task_types == ["Retrieval"]
    assert views.model_scores("fast").rows[0].rank == 1
    with pytest.raises(UnknownModel, match="'ghost'"):
        views.model_scores("ghost")


def test_catalog_numbers(make_snapshot: MakeSnapshot) -> None:
    rows = [cell("a", "T", 0.2), cell("b", "T", None), cell("b", "U", 0.3)]
    snap = make_snapshot(
        rows,
        tasks=[{"name": "T", "type": "STS"}, {"name": "U", "type": "Retrieval"}],
        benchmarks=[
            bench("One", ["T"]),
            bench("Two", ["T", "U", "Ghost"]),
            {"name": "Secret", "hidden": True, "tasks": [{"task": "U"}]},
        ],
    )
    assert task_model_counts(snap) == {"T": 1, "U": 1}
    views = Views(snap)
    listed = {b.name: b for b in views.benchmarks(include_hidden=True)}
    assert {n: b.num_models for n, b in listed.items()} == {"One": 1, "Secret": 1, "Two": 2}
    assert [b.name for b in views.benchmarks()] == ["One", "Two"]
    assert listed["Two"].task_types == ["Retrieval", "STS", "Unknown"]
    assert views.task("T").num_models == 1


def test_with_the_scoring_index(sized: Snapshot, multilingual: Snapshot) -> None:
    summary = benchmark_summary(sized, "B", index=build_index(sized))
    assert summary.frame.equals(benchmark_summary(sized, "B").frame)
    triples = list(leaders(summary, ((0, 100), (5000, None))))
    assert triples[0][:2] == (0, 100)
    assert triples[0][2] is not None
    assert triples[0][2]["model"] == "small"
    assert triples[1] == (5000, None, None)
    table = language_scores(multilingual, "B", index=build_index(multilingual))
    name, by_language = table.rows()[1]
    assert name == "b"
    assert by_language["eng"] == pytest.approx(0.65)
    view = task_view(sized, "T1", index=build_index(sized))
    assert view.rows() == task_view(sized, "T1").rows()
