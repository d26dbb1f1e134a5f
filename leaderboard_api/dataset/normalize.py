"""Turn validated rows and catalogs into a Snapshot: main metric, duplicates, revisions, catalogs.

Everything here is global (it looks at every file's rows at once) and cheap next to reading
the files: on the whole MTEB data (1.29M candidate rows) the steps take well under a second,
so an incremental load reruns them all on the assembled rows rather than patching results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from leaderboard_api.dataset.contract import (
    BENCHMARKS_FILE,
    DATASET_FILE,
    DEFAULT_BENCHMARK,
    MODELS_FILES,
    RESULT_COLUMNS,
    RESULT_KEY,
    RESULTS_DIR,
    STATS_DIR,
    BenchmarkInfo,
    BenchmarkTask,
    DatasetWarning,
    LoadStats,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.metric_store import MetricStore
from leaderboard_api.dataset.revisions import key_hash, resolve_revisions
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource
from leaderboard_api.dataset.validate import Catalogs

if TYPE_CHECKING:
    from leaderboard_api.dataset.file_index import FileIndex

__all__ = [
    "FileTotals",
    "choose_main_metric",
    "drop_duplicates",
    "main_candidates",
    "normalize",
    "registered_only",
    "stats_files",
]

_ORDER = "__order"


@dataclass(frozen=True, slots=True)
class FileTotals:
    """What the results files add up to before normalization."""

    files: int
    rows_read: int
    nan_scores: int


def main_candidates(frame: pl.DataFrame, main: Mapping[str, str]) -> pl.DataFrame:
    """The rows that may be a task's main metric: a null metric, the catalog's main metric,
    or any metric of a task whose catalog names none (decided once every file is read)."""
    lookup = pl.DataFrame(
        {"task_name": list(main), "__main": list(main.values())},
        schema={"task_name": pl.String, "__main": pl.String},
    ).with_columns(pl.all().cast(pl.Categorical))
    keep = (
        pl.col("metric").is_null()
        | pl.col("__main").is_null()
        | (pl.col("metric") == pl.col("__main"))
    )
    joined = frame.join(lookup, on="task_name", how="left", maintain_order="left")
    return joined.filter(keep).drop("__main")


def drop_duplicates(frame: pl.DataFrame, *, key: list[str]) -> pl.DataFrame:
    """Collapse rows with equal keys; the later one wins (newest evaluated_at, later file, row).

    Row position is file order (files are concatenated in sorted path order).  A 64-bit
    hash of the key finds candidate duplicates cheaply; only those rows go through the
    exact comparison, so clean data costs one hash pass and one sort of 8-byte values.
    """
    hashes = frame.select(key_hash(key, frame.schema)).to_series()
    # Sorting hashes and comparing neighbours needs far less memory than a hash table
    # over every row (is_duplicated), and clean data stops right here.
    ordered = hashes.sort()
    repeated = ordered.filter(ordered == ordered.shift(1))
    if repeated.is_empty():
        return frame
    hashed = hashes.is_in(repeated.unique().implode())
    # Only the suspect rows get a position column; the full frame is filtered once.
    positions = hashed.arg_true().alias(_ORDER)
    order = ["evaluated_at", _ORDER] if "evaluated_at" in frame.columns else [_ORDER]
    kept = (
        frame.filter(hashed)
        .with_columns(positions)
        .sort(order, nulls_last=False)
        .unique(subset=key, keep="last")
        .get_column(_ORDER)
    )
    dropped = positions.filter(~positions.is_in(kept.implode()))
    mask = ~pl.int_range(frame.height, dtype=pl.UInt32, eager=True).is_in(dropped.implode())
    return frame.filter(mask)


def choose_main_metric(
    results: pl.DataFrame,
    tasks: Mapping[str, TaskInfo],
    warnings: list[DatasetWarning],
    names: Mapping[str, tuple[str, ...]],
) -> pl.DataFrame:
    """Keep, per task, the rows of its main metric (rows with a null metric count as main);
    ``names`` holds every metric each task has (``MetricStore.names``)."""
    main = {name: t.main_metric for name, t in tasks.items() if t.main_metric}
    for task, found in sorted(names.items()):
        metrics = list(found)
        if not metrics:
            continue
        if task in main and main[task] not in metrics:
            warnings.append(
                DatasetWarning(
                    f"task {task!r}: main metric {main[task]!r} absent from results "
                    f"(have {', '.join(metrics[:5])}); its other metrics are ignored"
                )
            )
        if task not in main:
            main[task] = metrics[0]
            if len(metrics) > 1:
                warnings.append(
                    DatasetWarning(
                        f"task {task!r} has no main_metric in tasks.jsonl; using {metrics[0]!r}"
                    )
                )
    lookup = pl.DataFrame(
        {"task_name": list(main), "__main": list(main.values())},
        schema={"task_name": pl.String, "__main": pl.String},
    )
    lookup = lookup.with_columns(pl.all().cast(pl.Categorical))
    joined = results.join(lookup, on="task_name", how="left", maintain_order="left")
    keep = pl.col("metric").is_null() | (pl.col("metric") == pl.col("__main"))
    kept = joined.filter(keep).drop("__main", "metric")
    # A null metric means "the main one": such a row and a main-metric row are one cell.
    key = [c for c in RESULT_KEY if c != "metric" and c in kept.columns]
    return drop_duplicates(kept, key=key)


def registered_only(
    results: pl.DataFrame, models: dict[str, ModelInfo]
) -> tuple[pl.DataFrame, dict[str, ModelInfo], int]:
    """Only the rows and catalog entries of models marked ``registered: true``."""
    kept = {n: m for n, m in models.items() if m.extras().get("registered") is True}
    names = pl.Series("model_name", sorted(kept), dtype=pl.String)
    rows = results.filter(pl.col("model_name").is_in(names.implode()))
    return rows, kept, results.height - rows.height


def stats_files(root: Path, tasks: Iterable[str]) -> dict[str, str]:
    """Task name -> ``descriptive_stats/<task>.json`` for the tasks that have one."""
    folder = root / STATS_DIR
    if not folder.is_dir():
        return {}
    present = {p.stem for p in folder.glob("*.json") if p.is_file()}
    return {t: f"{STATS_DIR}/{t}.json" for t in sorted(present.intersection(tasks))}


def normalize(
    source: ResolvedSource,
    catalogs: Catalogs,
    candidates: pl.DataFrame,
    *,
    metrics: MetricStore | None,
    totals: FileTotals,
    file_index: FileIndex | None = None,
) -> Snapshot:
    """The Snapshot of ``candidates`` (every file's main-candidate rows, in file order)."""
    root = source.path
    warnings: list[DatasetWarning] = []
    models = dict(catalogs.models)
    tasks = dict(catalogs.tasks)
    benchmarks = dict(catalogs.benchmarks)
    dataset = catalogs.dataset

    results = candidates
    kept = results.height
    if metrics is not None and "metric" not in results.columns:
        results = results.with_columns(pl.lit(None, dtype=pl.Categorical).alias("metric"))
    key = [c for c in RESULT_KEY if c in results.columns]
    results = drop_duplicates(results, key=key)
    duplicates = kept - results.height
    if metrics is not None:
        results = choose_main_metric(results, tasks, warnings, metrics.names)
    unregistered = 0
    if dataset.scoring.registered_only:
        results, models, unregistered = registered_only(results, models)
        if unregistered:
            warnings.append(
                DatasetWarning(
                    f"{unregistered} result row(s) of models not registered in "
                    f"{MODELS_FILES[0]} left out (dataset.json scoring.registered_only)",
                    file=DATASET_FILE,
                )
            )
    rule = dataset.scoring.revisions
    others = {b.scoring.revisions for b in benchmarks.values()} - {None, rule}
    all_revisions = results if others else None
    results, dropped = resolve_revisions(results, models, rule=rule)
    # Rows stay in file order (deterministic for the same files); sorting 1.3M string keys
    # would double peak memory, and scoring sorts the small frames it aggregates.
    front = [c for c in RESULT_COLUMNS if c in results.columns]
    results = results.select(front + [c for c in results.columns if c not in front])

    result_tasks = results.get_column("task_name").unique().sort().to_list()
    result_models = results.get_column("model_name").unique().sort().to_list()
    for task in result_tasks:
        tasks.setdefault(task, TaskInfo(name=task))
    for model in result_models:
        models.setdefault(model, ModelInfo(name=model))
    tasks = dict(sorted(tasks.items()))
    models = dict(sorted(models.items()))
    if not benchmarks:
        benchmarks = {
            DEFAULT_BENCHMARK: BenchmarkInfo(
                name=DEFAULT_BENCHMARK,
                display_name="All tasks",
                description="Every task in the dataset (no benchmarks.jsonl was given).",
                tasks=[BenchmarkTask(task=t) for t in result_tasks],
            )
        }
    have = set(result_tasks)
    for bench in benchmarks.values():
        missing = sorted({t.task for t in bench.tasks} - have)
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            warnings.append(
                DatasetWarning(
                    f"benchmark {bench.name!r} names {len(missing)} task(s) with no results: "
                    f"{shown}",
                    file=BENCHMARKS_FILE,
                )
            )
    if totals.nan_scores:
        warnings.append(
            DatasetWarning(f"{totals.nan_scores} NaN score(s) treated as missing", file=RESULTS_DIR)
        )
    stats = LoadStats(
        files=totals.files,
        rows_read=totals.rows_read,
        rows=results.height,
        nan_scores=totals.nan_scores,
        duplicates_dropped=duplicates,
        revisions_dropped=dropped,
        extra={"unregistered_rows": unregistered} if unregistered else {},
    )
    return Snapshot(
        id=source.snapshot_id,
        source=source.spec,
        results=results,
        metrics=metrics,
        models=models,
        tasks=tasks,
        benchmarks=benchmarks,
        menu=tuple(catalogs.menu),
        loaded_at=datetime.now(UTC),
        updated_at=source.updated_at,
        warnings=tuple(warnings),
        stats=stats,
        dataset=dataset,
        all_revisions=all_revisions,
        stats_files=stats_files(root, tasks),
        root=str(root),
        file_index=file_index,
    )
