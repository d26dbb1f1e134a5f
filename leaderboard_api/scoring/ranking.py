"""Ranking a benchmark's models: Borda count, mean rank, or mean score, partial models last.

Per-task ranks are direction-aware (a lower-is-better task ranks its lowest score first) and
give tied scores their average rank.  From them:

* ``borda``: a model earns ``n_t - rank_t`` points in task ``t`` (``n_t`` = models with a
  score for it) and is ranked by total points, most first.
* ``mean_rank``: ranked by the mean of its per-task ranks over the tasks it covers, lowest first.
* ``mean``: ranked by its mean score over the tasks it covers: highest first when every task
  is higher-is-better, lowest first when every task is lower-is-better.  A mean of scores
  that point in opposite directions orders nothing, so a benchmark mixing directions falls
  back to ``borda`` (the summary reports the method it used).

Final ranks use the ``min`` method (ties share the best rank, the next rank skips).  With
``rank_partial_last`` every complete model ranks before every partial one; otherwise all
rank together.  Models with no task score at all rank last in their group.
"""

from __future__ import annotations

import polars as pl

from leaderboard_api.scoring.errors import BadParameter

RANK_METHODS = ("borda", "mean_rank", "mean")


def check_method(method: str) -> str:
    """``method`` if it is a known rank method; raises BadParameter otherwise."""
    if method not in RANK_METHODS:
        raise BadParameter("rank_method", method, f"expected one of {', '.join(RANK_METHODS)}")
    return method


def effective_method(method: str, table: pl.DataFrame) -> str:
    """The method actually used: ``mean`` over tasks of mixed directions becomes ``borda``."""
    check_method(method)
    if method == "mean" and table.get_column("higher_is_better").n_unique() > 1:
        return "borda"
    return method


def per_task_ranks(scores: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Add ``task_rank`` (1 = best, average ties), ``n_ranked`` and Borda ``points`` per task.

    ``scores`` is a task-score frame (``model, task, score``); ``table`` a ``task_table``.
    """
    hib = pl.col("higher_is_better")
    key = pl.when(hib).then(pl.col("score")).otherwise(-pl.col("score"))
    return (
        scores.join(table.select("task", "higher_is_better"), on="task")
        .with_columns(
            key.rank("average", descending=True).over("task").cast(pl.Float64).alias("task_rank"),
            pl.len().over("task").alias("n_ranked"),
        )
        .with_columns((pl.col("n_ranked") - pl.col("task_rank")).alias("points"))
        .drop("higher_is_better")
    )


def rank_statistics(scores: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Per model: ``points`` (Borda), ``mean_rank`` and ``mean_covered`` (mean score over the
    tasks it covers), from the task scores of the models that have any."""
    ranked = per_task_ranks(scores, table)
    return ranked.group_by("model").agg(
        pl.col("points").sort().sum(),
        pl.col("task_rank").sort().mean().alias("mean_rank"),
        pl.col("score").sort().mean().alias("mean_covered"),
    )


def field_points(partial: pl.DataFrame, table: pl.DataFrame, *, n_models: int) -> pl.DataFrame:
    """MTEB's Borda points per model: ``n_models - rank_t`` summed over the tasks it has.

    ``partial`` holds ``model, task, score`` where ``score`` is the mean of whatever cells
    of the task the model has (complete or not); ranks are direction-aware with average
    ties, among the models having the task.  Returns ``model, points``.
    """
    hib = pl.col("higher_is_better")
    key = pl.when(hib).then(pl.col("score")).otherwise(-pl.col("score"))
    return (
        partial.join(table.select("task", "higher_is_better"), on="task")
        .with_columns(key.rank("average", descending=True).over("task").alias("__rank"))
        .group_by("model")
        .agg((n_models - pl.col("__rank")).sort().sum().cast(pl.Float64).alias("points"))
    )


def rank_by_columns(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``rank`` as the position after sorting by ``columns`` (highest first, nulls last),
    ties broken by model name."""
    ordered = frame.sort(
        [*columns, "model"],
        descending=[True] * len(columns) + [False],
        nulls_last=True,
    )
    return ordered.with_columns(pl.int_range(1, ordered.height + 1, dtype=pl.Int64).alias("rank"))


def assign_ranks(
    frame: pl.DataFrame, *, method: str, all_higher: bool, partial_last: bool
) -> pl.DataFrame:
    """Add ``rank`` to a per-model frame holding ``complete`` and the method's statistic.

    ``method`` must already be effective (see ``effective_method``); ``all_higher`` tells
    the direction of ``mean``.
    """
    if method == "borda":
        key = -pl.col("points")
    elif method == "mean_rank":
        key = pl.col("mean_rank")
    elif method == "mean":
        key = -pl.col("mean_covered") if all_higher else pl.col("mean_covered")
    else:
        check_method(method)
        raise AssertionError(method)  # pragma: no cover - check_method raised
    group = (
        pl.when(pl.lit(partial_last) & ~pl.col("complete")).then(1).otherwise(0).alias("__group")
    )
    frame = frame.with_columns(group, key.fill_null(float("inf")).alias("__key"))
    firsts = frame.filter(pl.col("__group") == 0).height
    rank = pl.col("__key").rank("min").over("__group").cast(pl.Int64)
    offset = pl.when(pl.col("__group") == 1).then(firsts).otherwise(0)
    return frame.with_columns((rank + offset).alias("rank")).drop("__group", "__key")
