"""Standings beyond a benchmark's summary: per-language scores, size-bucket leaders, one
task's ranking, and how many models each task has.

* Per-language: a model's score in a language is the mean of its scores over the benchmark's
  counted cells in that language (the union of the tags of a cell's rows, else its task's
  languages), over the cells it has: no coverage requirement, ``n_cells`` says how many.
* Leaders: the best-ranked complete model in each parameter-size bucket
  (``min <= params / 1e6 < max``; ``max`` None is open-ended).
* Task view: a task's score per model over all its cells (or a benchmark's cells), ranked
  direction-aware with ``min`` ties; models without every cell have no score and no rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring.errors import BadParameter
from leaderboard_api.scoring.languages import normalize_languages
from leaderboard_api.scoring.summary import BenchmarkSummary, no_nan
from leaderboard_api.scoring.tasks import (
    ScoringIndex,
    benchmark_tasks,
    cell_scores,
    get_benchmark,
    get_task,
    select_cells,
)

__all__ = [
    "DEFAULT_SIZE_BUCKETS",
    "LanguageScores",
    "Leaders",
    "TaskView",
    "check_buckets",
    "language_scores",
    "leaders",
    "task_model_counts",
    "task_view",
]

#: Default size buckets in millions of parameters.
DEFAULT_SIZE_BUCKETS: tuple[tuple[float, float | None], ...] = (
    (0, 100),
    (100, 500),
    (500, 1000),
    (1000, 5000),
    (5000, None),
)


@dataclass(frozen=True, slots=True)
class LanguageScores:
    """``frame``: ``model, language, score, n_cells``, sorted by model then language."""

    benchmark: str
    languages: tuple[str, ...]
    frame: pl.DataFrame

    def rows(self) -> list[tuple[str, dict[str, float]]]:
        """``(model, {language: score})`` pairs, by model name."""
        out: dict[str, dict[str, float]] = {}
        for model, language, score in self.frame.select("model", "language", "score").iter_rows():
            out.setdefault(model, {})[language] = score
        return list(out.items())


def language_scores(
    snapshot: Snapshot,
    benchmark: str,
    *,
    languages: Iterable[str] = (),
    index: ScoringIndex | None = None,
) -> LanguageScores:
    """Mean score per (model, language) over the benchmark's counted cells in that language.

    ``languages`` limits the view to those languages; by default every language of the
    benchmark's cells appears.
    """
    info = get_benchmark(snapshot, benchmark)
    wanted = normalize_languages(languages)
    cells = select_cells(snapshot, info, languages=wanted, with_languages=True, index=index)
    exploded = cells.rows.select(
        pl.col("model_name").cast(pl.String).alias("model"),
        pl.col("cell_languages").alias("language"),
        "score",
    ).explode("language")
    if wanted:
        exploded = exploded.filter(pl.col("language").is_in(list(wanted)))
    frame = (
        exploded.drop_nulls("language")
        .group_by("model", "language")
        .agg(pl.col("score").sort().mean(), pl.len().alias("n_cells"))
        .sort("model", "language")
    )
    found = tuple(sorted(set(frame.get_column("language").to_list())))
    return LanguageScores(benchmark=info.name, languages=found, frame=frame)


@dataclass(frozen=True, slots=True)
class Leaders:
    """Per bucket, the leader (``rank, model, model_type, mean_task, total_params_b``; the
    model by name) or None.  Iterating gives ``(min, max, leader)`` triples."""

    benchmark: str
    buckets: tuple[tuple[float, float | None], ...]
    leaders: tuple[dict[str, Any] | None, ...]

    def __iter__(self) -> Iterator[tuple[float, float | None, dict[str, Any] | None]]:
        for (lo, hi), leader in zip(self.buckets, self.leaders, strict=True):
            yield lo, hi, leader


def check_buckets(
    buckets: Iterable[Sequence[float | None]],
) -> tuple[tuple[float, float | None], ...]:
    """Validated ``(min, max|None)`` buckets in millions of parameters; raises BadParameter."""
    out: list[tuple[float, float | None]] = []
    for bucket in buckets:
        if len(bucket) != 2 or bucket[0] is None:
            raise BadParameter("buckets", list(bucket), "each bucket is [min, max or null]")
        lo, hi = float(bucket[0]), None if bucket[1] is None else float(bucket[1])
        if lo < 0 or (hi is not None and hi <= lo):
            raise BadParameter("buckets", list(bucket), "need 0 <= min < max")
        out.append((lo, hi))
    return tuple(out)


def leaders(
    summary: BenchmarkSummary,
    buckets: Iterable[Sequence[float | None]] = DEFAULT_SIZE_BUCKETS,
) -> Leaders:
    """The best-ranked complete model of each parameter-size bucket (ties: model name)."""
    checked = check_buckets(buckets)
    rows = summary.frame.filter(pl.col("complete") & pl.col("n_parameters").is_not_null())
    found: list[dict[str, Any] | None] = []
    millions = pl.col("n_parameters") / 1e6
    for lo, hi in checked:
        inside = millions >= lo if hi is None else (millions >= lo) & (millions < hi)
        best = rows.filter(inside).sort("rank", "model").head(1)
        if best.height == 0:
            found.append(None)
            continue
        row = best.row(0, named=True)
        found.append(
            {
                "rank": row["rank"],
                "model": row["model"],
                "model_type": row["model_type"],
                "mean_task": no_nan(row["mean_task"]),
                "total_params_b": row["n_parameters"] / 1e9,
            }
        )
    return Leaders(benchmark=summary.benchmark, buckets=checked, leaders=tuple(found))


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task: ``frame`` (``rank, model, score``, ranked first) and ``cells``
    (``model, split, subset, score``); ``benchmarks_of`` maps a model to the benchmarks
    containing the task whose cells it covers."""

    task: str
    higher_is_better: bool
    unit: str | None
    benchmarks: tuple[str, ...]
    splits: tuple[str, ...]
    subsets: tuple[str, ...]
    frame: pl.DataFrame
    cells: pl.DataFrame
    benchmarks_of: Mapping[str, tuple[str, ...]]

    def rows(self) -> list[dict[str, Any]]:
        """``rank, model (name), score, subset_scores, benchmarks`` per model, ranked first."""
        nested: dict[str, dict[str, dict[str, float]]] = {}
        for model, split, subset, score in self.cells.iter_rows():
            nested.setdefault(model, {}).setdefault(subset, {})[split] = score
        return [
            {
                "rank": rank,
                "model": model,
                "score": score,
                "subset_scores": nested.get(model, {}),
                "benchmarks": list(self.benchmarks_of.get(model, ())),
            }
            for rank, model, score in self.frame.select("rank", "model", "score").iter_rows()
        ]


def _scored(cells: pl.DataFrame, *, higher_is_better: bool = True) -> pl.DataFrame:
    """``model, score``: the mean over subsets of each subset's best split (MTEB's task-page
    rule), for models that have every (split, subset) cell any model has."""
    need = cells.select("split", "subset").unique().height
    complete = cells.group_by("model").agg(pl.len().alias("__n")).filter(pl.col("__n") == need)
    best = (
        cells.join(complete.select("model"), on="model", how="semi")
        .group_by("model", "subset")
        .agg(pl.col("score").max() if higher_is_better else pl.col("score").min())
    )
    return best.group_by("model").agg(pl.col("score").sort().mean())


def task_view(
    snapshot: Snapshot,
    task: str,
    *,
    benchmark: str | None = None,
    index: ScoringIndex | None = None,
    metric_cells: pl.DataFrame | None = None,
) -> TaskView:
    """Scores of one task per model, with per-split/subset cells and the benchmarks using it.

    ``benchmark`` counts only that benchmark's splits/subsets of the task; ``metric_cells``
    (``model, split, subset, score``) scores another metric than the main one (the
    benchmarks a model counts in still follow the main metric).  Raises UnknownTask,
    UnknownBenchmark.
    """
    info = get_task(snapshot, task)
    containing = {
        name: entry
        for name, bench in snapshot.benchmarks.items()
        for entry in benchmark_tasks(bench)
        if entry.task == task
    }
    entry = None
    if benchmark is not None:
        get_benchmark(snapshot, benchmark)
        entry = containing.get(benchmark)
        if entry is None:
            raise BadParameter("benchmark", benchmark, f"does not contain task {task!r}")
    main_cells = cell_scores(snapshot, task, entry=entry, index=index)
    cells = main_cells if metric_cells is None else metric_cells
    scored = _scored(cells, higher_is_better=info.higher_is_better)
    key = pl.col("score") if info.higher_is_better else -pl.col("score")
    models = cells.select("model").unique()
    frame = (
        models.join(scored, on="model", how="left")
        .sort(key, "model", descending=[True, False], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("rank"))
        .select("rank", "model", "score")
    )
    benchmarks_of: dict[str, list[str]] = {}
    for name, spec in containing.items():
        have = _scored(
            main_cells if spec is entry else cell_scores(snapshot, task, entry=spec, index=index),
            higher_is_better=info.higher_is_better,
        )
        for model in have.get_column("model").to_list():
            benchmarks_of.setdefault(model, []).append(name)
    return TaskView(
        task=info.name,
        higher_is_better=info.higher_is_better,
        unit=info.unit,
        benchmarks=tuple(containing),
        splits=tuple(sorted(set(cells.get_column("split").to_list()))),
        subsets=tuple(sorted(set(cells.get_column("subset").to_list()))),
        frame=frame,
        cells=cells,
        benchmarks_of={m: tuple(sorted(b)) for m, b in benchmarks_of.items()},
    )


def task_model_counts(snapshot: Snapshot) -> dict[str, int]:
    """Task name -> number of models with at least one non-null score in it (sorted by task)."""
    counts = (
        snapshot.results.lazy()
        .filter(pl.col("score").is_not_null())
        .group_by("task_name")
        .agg(pl.col("model_name").n_unique().alias("n"))
        .select(pl.col("task_name").cast(pl.String), "n")
        .collect()
    )
    found = dict(counts.iter_rows())
    return {name: int(found.get(name, 0)) for name in snapshot.tasks}
