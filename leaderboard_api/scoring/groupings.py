"""Custom groupings: named sets of labelled task groups a benchmark scores separately (MIEB).

A benchmark declares them among its ``aggregations`` as
``{"custom_grouping": NAME, "groups": [{"label", "description", "tasks": [entry, ...]}]}``,
each entry ``{"task", "splits", "subsets"}`` like a benchmark task.  A group's score is the
mean of its entries' scores, missing when any entry is; an entry's score is the mean of the
model's cells of that task within the entry's splits and subsets (where the entry names
none, the benchmark's own entry for the task decides), missing unless the model has every
such cell that the dataset has for any model.  An entry counting every split and
subset of its task (as the task's catalog ``eval_splits`` / ``hf_subsets`` name them, or with
no restriction) is a *whole-task* member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from leaderboard_api.dataset.contract import BenchmarkInfo, BenchmarkTask, TaskInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring.tasks import ScoringIndex, select_cells

#: Columns of a group-score frame.
GROUP_SCORE_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "grouping": pl.String(),
    "label": pl.String(),
    "score": pl.Float64(),
}


@dataclass(frozen=True, slots=True)
class CustomGroup:
    label: str
    description: str | None
    entries: tuple[BenchmarkTask, ...]
    #: Tasks counted whole (every split and subset).
    whole_tasks: tuple[str, ...]
    #: False when some entry counts only part of its task.
    complete: bool


@dataclass(frozen=True, slots=True)
class CustomGrouping:
    name: str
    groups: tuple[CustomGroup, ...]


def _whole(entry: BenchmarkTask, task: TaskInfo | None) -> bool:
    if entry.splits is None and entry.subsets is None:
        return True
    more = task.extras() if task is not None else {}
    splits, subsets = more.get("eval_splits"), more.get("hf_subsets")
    same_splits = entry.splits is None or (
        isinstance(splits, list) and set(entry.splits) == set(splits)
    )
    same_subsets = entry.subsets is None or (
        isinstance(subsets, list) and set(entry.subsets) == set(subsets)
    )
    return same_splits and same_subsets


def custom_groupings(
    bench: BenchmarkInfo, tasks: Mapping[str, TaskInfo] | None = None
) -> tuple[CustomGrouping, ...]:
    """The custom groupings ``bench`` declares (malformed declarations are skipped)."""
    out = []
    for item in bench.extras().get("aggregations") or []:
        if not isinstance(item, dict) or not isinstance(item.get("custom_grouping"), str):
            continue
        groups = []
        for raw in item.get("groups") or []:
            if not isinstance(raw, dict) or not isinstance(raw.get("label"), str):
                continue
            entries = tuple(_entries(raw.get("tasks")))
            whole = [e.task for e in entries if _whole(e, (tasks or {}).get(e.task))]
            groups.append(
                CustomGroup(
                    label=raw["label"],
                    description=raw.get("description"),
                    entries=entries,
                    whole_tasks=tuple(dict.fromkeys(whole)),
                    complete=len(whole) == len(entries),
                )
            )
        out.append(CustomGrouping(name=item["custom_grouping"], groups=tuple(groups)))
    return tuple(out)


def _entries(raw: Any) -> list[BenchmarkTask]:
    out = []
    for item in raw or []:
        if isinstance(item, str):
            out.append(BenchmarkTask(task=item))
        elif isinstance(item, dict) and isinstance(item.get("task"), str):
            out.append(BenchmarkTask.model_validate(item))
    return out


def group_scores(
    snapshot: Snapshot,
    bench: BenchmarkInfo,
    *,
    languages: tuple[str, ...] = (),
    index: ScoringIndex | None = None,
) -> pl.DataFrame:
    """``model, grouping, label, score`` for every complete group score, sorted."""
    frames = []
    counted = {t.task: t for t in bench.tasks}
    for grouping in custom_groupings(bench, snapshot.tasks):
        for group in grouping.groups:
            per_entry: list[pl.DataFrame] = []
            for n, entry in enumerate(group.entries):
                # What an entry leaves open, the benchmark's own entry for the task decides.
                own = counted.get(entry.task)
                spec = BenchmarkTask(
                    task=entry.task,
                    splits=entry.splits if entry.splits is not None or own is None else own.splits,
                    subsets=(
                        entry.subsets if entry.subsets is not None or own is None else own.subsets
                    ),
                )
                part = BenchmarkInfo(name=bench.name, tasks=[spec], scoring=bench.scoring)
                cells = select_cells(snapshot, part, languages=languages, index=index)
                if not cells.tasks:
                    per_entry = []
                    break
                need = cells.rows.select("split", "subset").unique().height
                scored = (
                    cells.rows.group_by("model_name")
                    .agg(pl.col("score").sort().sum().alias("__sum"), pl.len().alias("__n"))
                    .filter(pl.col("__n") == need)
                    .select(
                        pl.col("model_name").cast(pl.String).alias("model"),
                        (pl.col("__sum") / pl.col("__n")).alias("score"),
                        pl.lit(n).alias("__entry"),
                    )
                )
                per_entry.append(scored)
            if not per_entry:
                continue
            frames.append(
                pl.concat(per_entry)
                .group_by("model")
                .agg(pl.col("score").sort().sum().alias("__sum"), pl.len().alias("__n"))
                .filter(pl.col("__n") == len(per_entry))
                .select(
                    "model",
                    pl.lit(grouping.name).alias("grouping"),
                    pl.lit(group.label).alias("label"),
                    (pl.col("__sum") / pl.col("__n")).alias("score"),
                )
            )
    if not frames:
        return pl.DataFrame(schema=GROUP_SCORE_SCHEMA)
    return pl.concat(frames).sort("model", "grouping", "label")
