"""Benchmark summary tables: task scores, means, coverage, zero-shot, metadata and rank.

One row per model with any counted cell in the benchmark.  Means (over tasks, per task
type, over public and over private tasks) are missing as soon as one task they cover is
missing; the type mean is the mean of the per-type means.  Task columns keep the
benchmark's order; task types are sorted by name.  Rows are ordered by rank, then model name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from leaderboard_api.dataset.contract import ModelInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring.groupings import GROUP_SCORE_SCHEMA, group_scores
from leaderboard_api.scoring.languages import normalize_languages
from leaderboard_api.scoring.ranking import (
    assign_ranks,
    check_method,
    effective_method,
    field_points,
    rank_by_columns,
    rank_statistics,
)
from leaderboard_api.scoring.ratings import Ratings, bradley_terry
from leaderboard_api.scoring.rowkeys import split_key
from leaderboard_api.scoring.tasks import (
    BenchmarkCells,
    ScoringIndex,
    get_benchmark,
    select_cells,
    task_scores,
    task_table,
)
from leaderboard_api.scoring.training import widened_training

#: Model metadata columns of a summary: name -> dtype.
METADATA_SCHEMA: dict[str, pl.DataType] = {
    "revision": pl.String(),
    "reference": pl.String(),
    "license": pl.String(),
    "open_weights": pl.Boolean(),
    "model_type": pl.List(pl.String()),
    "release_date": pl.String(),
    "n_parameters": pl.Float64(),
    "n_active_parameters": pl.Float64(),
    "memory_usage_mb": pl.Float64(),
    "embed_dim": pl.Int64(),
    "max_tokens": pl.Float64(),
    "zero_shot_pct": pl.Float64(),
    "trained_on_tasks": pl.List(pl.String()),
}
_RATING_COLUMNS = ("rating", "rating_low", "rating_high", "rank_low", "rank_high")


@dataclass(frozen=True, slots=True)
class BenchmarkSummary:
    """A benchmark's leaderboard; frames hold Strings, never Categoricals.

    ``frame``: one row per model, by rank then name: ``rank, model, complete, tasks_covered,
    mean_task, mean_task_type, mean_public, mean_private, points, mean_rank, mean_covered``,
    the ``METADATA_SCHEMA`` columns, then ``rating ... rank_high`` once ratings are attached.
    ``task_scores``: ``model, task, raw, score`` (see ``tasks.task_scores``).
    ``type_scores``: ``model, type, score`` for the types a model covers completely.
    """

    benchmark: str
    display_name: str | None
    tasks: tuple[str, ...]
    missing_tasks: tuple[str, ...]
    task_types: tuple[str, ...]
    task_info: pl.DataFrame
    frame: pl.DataFrame
    task_scores: pl.DataFrame
    type_scores: pl.DataFrame
    rank_method: str
    rank_partial_last: bool
    normalized: bool
    languages: tuple[str, ...] = ()
    ratings: Ratings | None = None
    #: ``model, grouping, label, score`` of the benchmark's custom groupings (``groupings``).
    group_scores: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=GROUP_SCORE_SCHEMA)
    )

    @property
    def models(self) -> list[str]:
        return self.frame.get_column("model").to_list()

    @property
    def num_models(self) -> int:
        return self.frame.height

    @property
    def num_ranked(self) -> int:
        """Models with a rank: every row (partial models rank after complete ones)."""
        return self.frame.height - self.frame.get_column("rank").null_count()

    @property
    def higher_is_better(self) -> dict[str, bool]:
        info = self.task_info
        return dict(zip(info["task"].to_list(), info["higher_is_better"].to_list(), strict=True))

    def with_ratings(self, ratings: Ratings) -> BenchmarkSummary:
        """A copy whose rows carry the Bradley–Terry columns of ``ratings``."""
        rated = ratings.frame.select("model", *_RATING_COLUMNS)
        frame = self.frame.drop([c for c in _RATING_COLUMNS if c in self.frame.columns])
        return replace(self, frame=frame.join(rated, on="model", how="left"), ratings=ratings)

    def to_rows(self) -> list[dict[str, Any]]:
        """MTEB-leaderboard-shaped rows (snake_case keys; task and type names as given).

        ``model`` is the model's metadata; ``trained_on_tasks`` is None when the model's
        training data is unknown; extras: ``points, mean_rank, raw_scores_by_task``.
        """
        return self._dicts(self.frame, nested=True)

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows for the API's row schema: ``model`` is the name, no extras, and
        ``trained_on_tasks`` is ``[]`` when unknown (``zero_shot_pct`` None tells that)."""
        return self._dicts(self.frame, nested=False)

    def row_for(self, model: str) -> dict[str, Any] | None:
        """The flat row (see ``rows``) of one model, or None when it has no row."""
        found = self._dicts(self.frame.filter(pl.col("model") == model), nested=False)
        return found[0] if found else None

    def _dicts(self, frame: pl.DataFrame, *, nested: bool) -> list[dict[str, Any]]:
        names = frame.get_column("model")
        scores = self.task_scores.filter(pl.col("model").is_in(names.implode()))
        by_task = _nested(scores, "task", "score")
        raw_by_task = _nested(scores, "task", "raw") if self.normalized else None
        by_type = _nested(self.type_scores, "type", "score")
        by_group: dict[str, dict[str, dict[str, float]]] = {}
        for model, grouping, label, value in self.group_scores.iter_rows():
            by_group.setdefault(model, {}).setdefault(grouping, {})[label] = value
        out = []
        for row in frame.iter_rows(named=True):
            name = row["model"]
            mine, types = by_task.get(name, {}), by_type.get(name, {})
            item: dict[str, Any] = {
                "rank": row["rank"],
                "model": name,
                "zero_shot_pct": no_nan(row["zero_shot_pct"]),
                "active_params_b": _billions(row["n_active_parameters"]),
                "total_params_b": _billions(row["n_parameters"]),
                "embedding_dim": row["embed_dim"],
                "max_tokens": no_nan(row["max_tokens"]),
                "mean_task": no_nan(row["mean_task"]),
                "mean_task_type": no_nan(row["mean_task_type"]),
                "mean_public": no_nan(row["mean_public"]),
                "mean_private": no_nan(row["mean_private"]),
                "mean_subset": no_nan(row["mean_subset"]),
                "scores_by_task_type": {t: no_nan(types.get(t)) for t in self.task_types},
                "scores_by_task": {t: no_nan(mine.get(t)) for t in self.tasks},
                "scores_by_custom_group": by_group.get(name, {}),
                "trained_on_tasks": row["trained_on_tasks"],
                "complete": row["complete"],
                "tasks_covered": row["tasks_covered"],
                **{c: no_nan(row.get(c)) for c in _RATING_COLUMNS},
                "points": no_nan(row["points"]),
                "mean_rank": no_nan(row["mean_rank"]),
                "raw_scores_by_task": (
                    None
                    if raw_by_task is None
                    else {t: no_nan(raw_by_task.get(name, {}).get(t)) for t in self.tasks}
                ),
            }
            if nested:
                item["model"] = _clean({"name": name, **{k: row[k] for k in _MODEL_KEYS}})
            elif item["trained_on_tasks"] is None:
                item["trained_on_tasks"] = []
            out.append(item)
        return out

    def wide(self) -> pl.DataFrame:
        """``model`` plus one score column per task (benchmark order), rows in rank order."""
        if not self.tasks:
            return self.frame.select("model")
        wide = self.task_scores.pivot(on="task", index="model", values="score")
        missing = [t for t in self.tasks if t not in wide.columns]
        wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(t) for t in missing)
        return (
            self.frame.select("model")
            .join(wide, on="model", how="left")
            .select("model", *self.tasks)
        )


_MODEL_KEYS = (
    "revision",
    "reference",
    "license",
    "open_weights",
    "model_type",
    "release_date",
    "n_parameters",
    "n_active_parameters",
    "memory_usage_mb",
    "embed_dim",
    "max_tokens",
)


def no_nan(value: Any) -> Any:
    """None for NaN (JSON has no NaN); anything else unchanged."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: no_nan(v) for k, v in values.items()}


def _billions(value: float | None) -> float | None:
    """A parameter count in billions, to the nearest million (as MTEB shows it)."""
    value = no_nan(value)
    return None if value is None else round(value / 1e9, 3)


def _nested(frame: pl.DataFrame, key: str, value: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for model, k, v in frame.select("model", key, value).iter_rows():
        out.setdefault(model, {})[k] = v
    return out


def benchmark_summary(
    snapshot: Snapshot,
    benchmark: str,
    *,
    languages: Iterable[str] = (),
    rank_method: str | None = None,
    rank_partial_last: bool | None = None,
    index: ScoringIndex | None = None,
) -> BenchmarkSummary:
    """The summary table of ``benchmark``.

    ``languages`` (any spelling ``normalize_languages`` accepts) restricts every score to
    the cells in those languages.  ``rank_method`` and ``rank_partial_last`` override the
    benchmark's ``scoring`` options; ``index`` (``build_index``) only makes it faster.
    Raises UnknownBenchmark, UnknownLanguage, BadParameter.
    """
    info = get_benchmark(snapshot, benchmark)
    wanted = normalize_languages(languages)
    method = check_method(rank_method or info.scoring.rank_method)
    partial_last = (
        info.scoring.rank_partial_last if rank_partial_last is None else rank_partial_last
    )
    cells = select_cells(snapshot, info, languages=wanted, index=index)
    table = task_table(snapshot, cells.tasks)
    scores = task_scores(cells, table, normalize=info.scoring.normalize)
    used = effective_method(method, table)
    models = (
        cells.rows.select(pl.col("model_name").cast(pl.String).alias("model"), "model_revision")
        .unique("model")
        .sort("model")
    )
    means, type_scores = _means(scores, table, models.get_column("model"))
    stats = rank_statistics(scores, table)
    if info.scoring.borda == "field":
        points = field_points(_partial_scores(cells), table, n_models=models.height)
        stats = stats.drop("points").join(points, on="model", how="full", coalesce=True)
    frame = means.join(stats, on="model", how="left").join(
        _mean_subset(cells), on="model", how="left"
    )
    frame = assign_ranks(
        frame,
        method=used,
        all_higher=bool(table.get_column("higher_is_better").all()),
        partial_last=partial_last,
    )
    if info.scoring.hide_uncovered:
        # Hidden rows leave no gaps: the shown ones are ranked again among themselves.
        frame = assign_ranks(
            frame.filter(pl.col("tasks_covered") > 0).drop("rank"),
            method=used,
            all_higher=bool(table.get_column("higher_is_better").all()),
            partial_last=partial_last,
        )
    if info.scoring.rank_by:
        frame = rank_by_columns(frame, list(info.scoring.rank_by))
    revisions = dict(models.select("model", pl.col("model_revision").cast(pl.String)).iter_rows())
    meta = metadata_frame(
        snapshot.models,
        frame.get_column("model").to_list(),
        cells.tasks,
        revisions,
        training=widened_training(snapshot),
    )
    frame = frame.join(meta, on="model", how="left").sort("rank", "model")
    types = tuple(sorted(set(table.get_column("type").to_list())))
    groups = group_scores(snapshot, info, languages=wanted, index=index)
    return BenchmarkSummary(
        benchmark=info.name,
        display_name=info.display_name,
        tasks=cells.tasks,
        missing_tasks=cells.missing_tasks,
        task_types=types,
        task_info=table,
        frame=frame,
        task_scores=scores,
        type_scores=type_scores,
        rank_method=used,
        rank_partial_last=partial_last,
        normalized=info.scoring.normalize,
        languages=wanted,
        group_scores=groups,
    )


def _partial_scores(cells: BenchmarkCells) -> pl.DataFrame:
    """``model, task, score``: the mean of whatever cells of a task a model has."""
    return (
        cells.rows.group_by("model_name", "task_name")
        .agg(pl.col("score").sort().mean())
        .select(
            pl.col("model_name").cast(pl.String).alias("model"),
            pl.col("task_name").cast(pl.String).alias("task"),
            "score",
        )
    )


def _mean_subset(cells: BenchmarkCells) -> pl.DataFrame:
    """``model, mean_subset``: the mean over (task, subset) pairs of each pair's mean over its
    splits; missing unless the model has every split of every pair (MTEB's Mean (Subset))."""
    rows = cells.rows.select(
        pl.col("model_name").cast(pl.String).alias("model"),
        pl.col("task_name").cast(pl.String),
        pl.col("subset").cast(pl.String),
        pl.col("split").cast(pl.String),
        "score",
    )
    need = rows.group_by("task_name", "subset").agg(pl.col("split").n_unique().alias("__need"))
    pairs = (
        rows.group_by("model", "task_name", "subset")
        .agg(pl.col("score").sort().sum().alias("__sum"), pl.len().alias("__n"))
        .join(need, on=["task_name", "subset"])
        .filter(pl.col("__n") == pl.col("__need"))
        .with_columns((pl.col("__sum") / pl.col("__n")).alias("__mean"))
    )
    return pairs.group_by("model").agg(
        _group_mean(pl.col("__mean"), pl.len(), pl.lit(need.height)).alias("mean_subset")
    )


def summary_ratings(summary: BenchmarkSummary, *, samples: int = 200, seed: int = 0) -> Ratings:
    """Bradley–Terry ratings of a summary's models (slow: build it off the request path).

    When partial models are ranked after complete ones, only complete models are rated:
    their rank intervals then speak of the same positions the table shows (partial models
    get none).  When everyone is ranked together, everyone is rated.
    """
    scores = summary.task_scores
    if summary.rank_partial_last:
        complete = summary.frame.filter(pl.col("complete")).get_column("model")
        scores = scores.filter(pl.col("model").is_in(complete.implode()))
    return bradley_terry(scores, summary.higher_is_better, samples=samples, seed=seed)


def _group_mean(values: pl.Expr, count: pl.Expr, needed: pl.Expr) -> pl.Expr:
    """Mean of sorted values, or null unless ``count`` reaches ``needed`` (and is above 0)."""
    return pl.when((count == needed) & (count > 0)).then(values.sort().sum() / count)


def _means(
    scores: pl.DataFrame, table: pl.DataFrame, models: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-model coverage and means, and the per-(model, type) means of complete types."""
    n_tasks = table.height
    tagged = scores.join(table.select("task", "type", "is_public"), on="task")
    per_type = table.group_by("type").agg(pl.len().alias("__need"))
    types = (
        tagged.group_by("model", "type")
        .agg(pl.col("score").sort().sum().alias("__sum"), pl.len().alias("__n"))
        .join(per_type, on="type")
        .filter(pl.col("__n") == pl.col("__need"))
        .with_columns((pl.col("__sum") / pl.col("__n")).alias("score"))
        .select("model", "type", "score")
        .sort("model", "type")
    )
    n_types = per_type.height
    n_public = int(table.get_column("is_public").sum())
    public = pl.col("is_public")
    by_model = tagged.group_by("model").agg(
        pl.len().alias("tasks_covered"),
        _group_mean(pl.col("score"), pl.len(), pl.lit(n_tasks)).alias("mean_task"),
        _group_mean(pl.col("score").filter(public), public.sum(), pl.lit(n_public)).alias(
            "mean_public"
        ),
        _group_mean(
            pl.col("score").filter(~public), (~public).sum(), pl.lit(n_tasks - n_public)
        ).alias("mean_private"),
    )
    by_type = types.group_by("model").agg(
        _group_mean(pl.col("score"), pl.len(), pl.lit(n_types)).alias("mean_task_type")
    )
    frame = (
        pl.DataFrame({"model": models})
        .join(by_model, on="model", how="left")
        .join(by_type, on="model", how="left")
        .with_columns(pl.col("tasks_covered").fill_null(0).cast(pl.Int64))
        .with_columns(((pl.col("tasks_covered") == n_tasks) & (n_tasks > 0)).alias("complete"))
        .select(
            "model",
            "complete",
            "tasks_covered",
            "mean_task",
            "mean_task_type",
            "mean_public",
            "mean_private",
        )
    )
    return frame, types


def _model_types(info: ModelInfo) -> list[str] | None:
    value = info.model_type
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def metadata_frame(
    models: Mapping[str, ModelInfo],
    names: Sequence[str],
    tasks: Sequence[str],
    revisions: Mapping[str, str | None],
    *,
    training: Mapping[str, frozenset[str] | None] | None = None,
) -> pl.DataFrame:
    """Model metadata columns (``METADATA_SCHEMA``) for ``names``, with the zero-shot figure.

    ``zero_shot_pct = 100 - 100 * |training tasks among tasks| / |tasks|``; unknown (null)
    when the model's training data is unknown or there are no tasks.  ``training`` gives
    each model's (widened, see ``training.py``) training tasks; by default the catalog's.
    """
    columns: dict[str, list[Any]] = {"model": list(names)}
    for key in METADATA_SCHEMA:
        columns[key] = []
    counted = set(tasks)
    for name in names:
        base, _ = split_key(name)
        info = models.get(base) or ModelInfo(name=base)
        trained = info.training_datasets if training is None else training.get(base)
        known = None if trained is None else set(trained)
        overlap = None if known is None else [t for t in tasks if t in known]
        zero_shot = (
            None if overlap is None or not counted else 100.0 - 100.0 * len(overlap) / len(counted)
        )
        values: dict[str, Any] = {
            "revision": info.revision or revisions.get(name),
            "reference": info.reference,
            "license": info.license,
            "open_weights": info.open_weights,
            "model_type": _model_types(info),
            "release_date": None if info.release_date is None else str(info.release_date),
            "n_parameters": info.n_parameters,
            "n_active_parameters": info.n_active_parameters,
            "memory_usage_mb": info.memory_usage_mb,
            "embed_dim": info.embed_dim,
            "max_tokens": info.max_tokens,
            "zero_shot_pct": zero_shot,
            "trained_on_tasks": overlap,
        }
        for key, value in values.items():
            columns[key].append(value)
    schema: dict[str, pl.DataType] = {"model": pl.String(), **METADATA_SCHEMA}
    return pl.DataFrame(columns, schema=schema)
