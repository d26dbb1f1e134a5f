"""Read, validate and normalize a dataset directory into a Snapshot; a disk cache keyed by id."""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from leaderboard_api.dataset.contract import (
    BENCHMARKS_FILE,
    CATEGORICAL_COLUMNS,
    CONTRACT_VERSION,
    DATASET_FILE,
    DEFAULT_BENCHMARK,
    MENU_FILE,
    MODELS_FILES,
    RESULT_COLUMNS,
    RESULT_KEY,
    RESULTS_DIR,
    STATS_DIR,
    TASKS_FILE,
    BenchmarkInfo,
    BenchmarkTask,
    DatasetError,
    DatasetInfo,
    DatasetWarning,
    LoadStats,
    MenuEntry,
    MenuLeaf,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.metric_store import MetricStore
from leaderboard_api.dataset.revisions import key_hash, resolve_revisions
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseModel)
_ORDER = "__order"
METRICS_DIR = "metrics"


def _rows(frame: pl.DataFrame, mask: pl.Expr, columns: list[str], n: int = 3) -> list[str]:
    """A few offending rows, as ``row N: col=value, ...`` strings for error messages."""
    picked = frame.with_row_index("__row").filter(mask).head(n)
    shown = [c for c in ["__row", *columns] if c in picked.columns]
    out = []
    for row in picked.select(shown).iter_rows(named=True):
        index = row.pop("__row")
        out.append(f"row {index}: " + ", ".join(f"{k}={v!r}" for k, v in row.items()))
    return out


def _check_results_file(frame: pl.DataFrame, *, rel: str) -> tuple[pl.DataFrame, int]:
    """Validate one results file and bring it to the contract's dtypes; returns (frame, NaNs)."""
    for name, (dtype, required, default) in RESULT_COLUMNS.items():
        if name not in frame.columns:
            if required:
                msg = "missing required column"
                hint = f"columns present: {', '.join(frame.columns) or '(none)'}"
                raise DatasetError(msg, file=rel, column=name, hint=hint)
            frame = frame.with_columns(pl.lit(default, dtype=dtype).alias(name))
            continue
        have = frame.schema[name]
        if name == "score":
            if not (have.is_numeric() or have == pl.Null):
                msg = f"wrong type: expected a float, found {have}"
                raise DatasetError(
                    msg, file=rel, column=name, examples=_rows(frame, pl.lit(True), [name])
                )
        elif name == "languages":
            if have == pl.String:
                frame = frame.with_columns(
                    pl.when(pl.col(name).is_null())
                    .then(pl.lit([], dtype=pl.List(pl.String)))
                    .otherwise(pl.concat_list(pl.col(name)))
                    .alias(name)
                )
                have = frame.schema[name]
            if not (have == pl.Null or (isinstance(have, pl.List) and have.inner == pl.String)):
                msg = f"wrong type: expected list[str], found {have}"
                raise DatasetError(msg, file=rel, column=name)
        elif not (have in (pl.String, pl.Categorical, pl.Null) or isinstance(have, pl.Enum)):
            msg = f"wrong type: expected str, found {have}"
            raise DatasetError(
                msg, file=rel, column=name, examples=_rows(frame, pl.lit(True), [name])
            )
    frame = frame.with_columns(
        pl.col(name).cast(pl.Categorical if name in CATEGORICAL_COLUMNS else dtype)
        for name, (dtype, _, _) in RESULT_COLUMNS.items()
    )
    for name in ("model_name", "task_name"):
        bad = pl.col(name).is_null() | (pl.col(name) == "")
        if frame.select(bad.any()).item():
            msg = "empty or null value in a required column"
            raise DatasetError(msg, file=rel, column=name, examples=_rows(frame, bad, [name]))
    infinite = pl.col("score").is_infinite()
    if frame.select(infinite.any()).item():
        msg = "infinite scores are not allowed (use null for a missing score)"
        raise DatasetError(
            msg,
            file=rel,
            column="score",
            examples=_rows(
                frame, infinite, ["model_name", "task_name", "split", "subset", "score"]
            ),
        )
    nans = int(frame.select(pl.col("score").is_nan().sum()).item() or 0)
    frame = frame.with_columns(
        pl.col("score").fill_nan(None),
        pl.col("split").fill_null("test"),
        pl.col("subset").fill_null("default"),
        pl.col("languages").fill_null(pl.lit([], dtype=pl.List(pl.String))),
    )
    if "metric" in frame.columns:
        if frame.schema["metric"] not in (pl.String, pl.Categorical, pl.Null):
            msg = f"wrong type: expected str, found {frame.schema['metric']}"
            raise DatasetError(msg, file=rel, column="metric")
        frame = frame.with_columns(pl.col("metric").cast(pl.String))
    # Key columns repeat a few thousand distinct strings over millions of rows: as
    # Categorical they take a fifth of the memory and group, join and hash far faster.
    # Extra text columns (an evaluator version, a dataset revision) repeat just as much.
    frame = frame.with_columns(
        pl.col(c).cast(pl.Categorical)
        for c, dtype in frame.schema.items()
        if c in CATEGORICAL_COLUMNS or (c not in RESULT_COLUMNS and dtype == pl.String)
    )
    if "evaluated_at" in frame.columns:
        have = frame.schema["evaluated_at"]
        if isinstance(have, pl.Datetime):
            col = pl.col("evaluated_at")
            col = col.dt.replace_time_zone("UTC") if have.time_zone is None else col
            frame = frame.with_columns(col.dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        elif have == pl.Date:
            frame = frame.with_columns(pl.col("evaluated_at").cast(pl.Datetime("us", "UTC")))
        else:
            msg = f"wrong type: expected a timestamp, found {have}"
            raise DatasetError(msg, file=rel, column="evaluated_at")
    return frame, nans


def _drop_duplicates(frame: pl.DataFrame, *, key: list[str]) -> pl.DataFrame:
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


def result_files(root: Path) -> list[Path]:
    """The dataset's results files, in relative-path order; DatasetError when there are none."""
    folder = root / RESULTS_DIR
    if not folder.is_dir():
        msg = f"no {RESULTS_DIR}/ folder"
        raise DatasetError(msg, file=str(root), hint="a dataset needs results/*.parquet")
    files = sorted(
        (p for p in folder.rglob("*.parquet") if p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        msg = "holds no parquet files"
        raise DatasetError(msg, file=f"{root / RESULTS_DIR}/")
    return files


def _read_file(file: Path, rel: str) -> tuple[pl.DataFrame, int]:
    try:
        lazy = pl.scan_parquet(file)
        schema = lazy.collect_schema()
        # Cast key strings while reading: the full string columns never exist in memory.
        frame = lazy.with_columns(
            pl.col(c).cast(pl.Categorical)
            for c in CATEGORICAL_COLUMNS
            if schema.get(c) == pl.String
        ).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot read parquet ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        raise DatasetError(msg, file=rel, hint="the file is truncated or not parquet") from exc
    return _check_results_file(frame, rel=rel)


def _main_candidates(frame: pl.DataFrame, main: Mapping[str, str]) -> pl.DataFrame:
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


def read_results(
    root: Path, tasks: Mapping[str, TaskInfo] | None = None
) -> tuple[pl.DataFrame, MetricStore | None, LoadStats]:
    """Read every parquet file under ``results/``, validated, in file order.

    Files are read one at a time.  When they carry a ``metric`` column, every row streams
    into a ``MetricStore`` on disk and only the rows that may be a task's main metric (see
    ``_main_candidates``, with the main metrics of ``tasks``) stay in memory, deduplicated;
    ``_choose_main_metric`` then settles which.  Without one, the rows are the results.
    """
    main = {name: t.main_metric for name, t in (tasks or {}).items() if t.main_metric}
    frames: list[pl.DataFrame] = []
    writer = None
    nans = 0
    rows_read = 0
    files = result_files(root)
    try:
        for file in files:
            frame, file_nans = _read_file(file, file.relative_to(root).as_posix())
            nans += file_nans
            rows_read += frame.height
            if "metric" in frame.columns:
                if writer is None:
                    writer = MetricStore.temporary()
                writer.add(frame)
                frame = _main_candidates(frame, main)
            frames.append(frame)
        store = None if writer is None else MetricStore.finish(writer, owned=True)
    except BaseException:
        if writer is not None:
            writer.close()
            shutil.rmtree(writer.folder, ignore_errors=True)
        raise
    results = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    kept = results.height
    if store is not None and "metric" not in results.columns:
        results = results.with_columns(pl.lit(None, dtype=pl.Categorical).alias("metric"))
    key = [c for c in RESULT_KEY if c in results.columns]
    results = _drop_duplicates(results, key=key)
    stats = LoadStats(
        files=len(files),
        rows_read=rows_read,
        rows=results.height,
        nan_scores=nans,
        duplicates_dropped=kept - results.height,
    )
    return results, store, stats


def _read_jsonl(path: Path, model: type[E], *, root: Path) -> list[E]:
    rel = path.relative_to(root).as_posix()
    out: list[E] = []
    seen: dict[str, int] = {}
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                msg = f"line {number} is not valid JSON ({exc})"
                raise DatasetError(msg, file=rel) from exc
            out.append(_validate_entry(raw, model, rel=rel, where=f"line {number}"))
            name = getattr(out[-1], "name", None)
            if isinstance(name, str):
                if name in seen:
                    msg = f"duplicate name {name!r} on lines {seen[name]} and {number}"
                    raise DatasetError(msg, file=rel, column="name")
                seen[name] = number
    return out


def _validate_entry(raw: object, model: type[E], *, rel: str, where: str) -> E:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        column = ".".join(str(p) for p in first["loc"]) or None
        msg = f"{where}: {first['msg']}"
        raise DatasetError(msg, file=rel, column=column) from None


def _read_models(root: Path) -> list[ModelInfo]:
    jsonl, parquet = (root / name for name in MODELS_FILES)
    if jsonl.is_file():
        return _read_jsonl(jsonl, ModelInfo, root=root)
    if not parquet.is_file():
        return []
    rel = parquet.relative_to(root).as_posix()
    try:
        rows = pl.read_parquet(parquet).to_dicts()
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot read parquet ({str(exc).splitlines()[0][:200]})"
        raise DatasetError(msg, file=rel) from exc
    out = [_validate_entry(r, ModelInfo, rel=rel, where=f"row {i}") for i, r in enumerate(rows)]
    dupes = [n for n, c in Counter(m.name for m in out).items() if c > 1]
    if dupes:
        raise DatasetError("duplicate names", file=rel, column="name", examples=sorted(dupes))
    return out


def _read_menu(root: Path) -> list[MenuEntry]:
    path = root / MENU_FILE
    if not path.is_file():
        return []
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DatasetError(f"not valid JSON ({exc})", file=MENU_FILE) from exc
    if isinstance(raw, dict) and "groups" in raw:
        raw = raw["groups"]
    if not isinstance(raw, list):
        msg = "expected a JSON list of menu groups"
        raise DatasetError(msg, file=MENU_FILE)
    return [
        _validate_entry(g, MenuEntry, rel=MENU_FILE, where=f"group {i}") for i, g in enumerate(raw)
    ]


def _read_dataset_info(root: Path) -> DatasetInfo:
    path = root / DATASET_FILE
    if not path.is_file():
        return DatasetInfo()
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DatasetError(f"not valid JSON ({exc})", file=DATASET_FILE) from exc
    if not isinstance(raw, dict):
        raise DatasetError("expected a JSON object", file=DATASET_FILE)
    return _validate_entry(raw, DatasetInfo, rel=DATASET_FILE, where="the object")


def stats_files(root: Path, tasks: Iterable[str]) -> dict[str, str]:
    """Task name -> ``descriptive_stats/<task>.json`` for the tasks that have one."""
    folder = root / STATS_DIR
    if not folder.is_dir():
        return {}
    present = {p.stem for p in folder.glob("*.json") if p.is_file()}
    return {t: f"{STATS_DIR}/{t}.json" for t in sorted(present.intersection(tasks))}


def _menu_leaves(entries: Iterable[MenuEntry | MenuLeaf]) -> Iterable[str]:
    for entry in entries:
        if isinstance(entry, MenuLeaf):
            yield entry.benchmark
        else:
            yield from _menu_leaves(entry.children)


def _choose_main_metric(
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
    return _drop_duplicates(kept, key=key)


def _registered_only(
    results: pl.DataFrame, models: dict[str, ModelInfo]
) -> tuple[pl.DataFrame, dict[str, ModelInfo], int]:
    """Only the rows and catalog entries of models marked ``registered: true``."""
    kept = {n: m for n, m in models.items() if m.extras().get("registered") is True}
    names = pl.Series("model_name", sorted(kept), dtype=pl.String)
    rows = results.filter(pl.col("model_name").cast(pl.String).is_in(names.implode()))
    return rows, kept, results.height - rows.height


def _index(entries: Iterable[E]) -> dict[str, E]:
    # getattr: E is bound to BaseModel, which mypy does not know to have a ``name``.
    return {getattr(e, "name"): e for e in sorted(entries, key=lambda e: getattr(e, "name"))}  # noqa: B009


def build_snapshot(source: ResolvedSource) -> Snapshot:
    """Parse and validate ``source.path`` into a Snapshot; raises DatasetError on bad input."""
    root = source.path
    warnings: list[DatasetWarning] = []
    models = _index(_read_models(root))
    tasks_path = root / TASKS_FILE
    tasks = _index(_read_jsonl(tasks_path, TaskInfo, root=root)) if tasks_path.is_file() else {}
    bench_path = root / BENCHMARKS_FILE
    benchmarks = (
        _index(_read_jsonl(bench_path, BenchmarkInfo, root=root)) if bench_path.is_file() else {}
    )
    menu = _read_menu(root)
    dataset = _read_dataset_info(root)
    known = set(benchmarks)
    unknown = sorted({leaf for leaf in _menu_leaves(menu) if leaf not in known})
    if unknown:
        msg = "names benchmarks that benchmarks.jsonl does not define"
        raise DatasetError(msg, file=MENU_FILE, column="benchmark", examples=unknown)

    results, metrics, stats = read_results(root, tasks)
    if metrics is not None:
        results = _choose_main_metric(results, tasks, warnings, metrics.names)
    unregistered = 0
    if dataset.scoring.registered_only:
        results, models, unregistered = _registered_only(results, models)
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
    if stats.nan_scores:
        warnings.append(
            DatasetWarning(f"{stats.nan_scores} NaN score(s) treated as missing", file=RESULTS_DIR)
        )
    stats = LoadStats(
        files=stats.files,
        rows_read=stats.rows_read,
        rows=results.height,
        nan_scores=stats.nan_scores,
        duplicates_dropped=stats.duplicates_dropped,
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
        menu=tuple(menu),
        loaded_at=datetime.now(UTC),
        updated_at=source.updated_at,
        warnings=tuple(warnings),
        stats=stats,
        dataset=dataset,
        all_revisions=all_revisions,
        stats_files=stats_files(root, tasks),
        root=str(root),
    )


# --- disk cache -------------------------------------------------------------------------


def cache_entry(cache_dir: Path, snapshot_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in snapshot_id)
    return cache_dir / f"{safe}.c{CONTRACT_VERSION}"


def _dump_catalog(snapshot: Snapshot) -> bytes:
    doc: dict[str, Any] = {
        "id": snapshot.id,
        "source": snapshot.source,
        "updated_at": snapshot.updated_at.isoformat(),
        "models": [m.model_dump(mode="json") for m in snapshot.models.values()],
        "tasks": [t.model_dump(mode="json") for t in snapshot.tasks.values()],
        "benchmarks": [b.model_dump(mode="json") for b in snapshot.benchmarks.values()],
        "menu": [g.model_dump(mode="json") for g in snapshot.menu],
        "dataset": snapshot.dataset.model_dump(mode="json"),
        "metric_names": (
            None
            if snapshot.metrics is None
            else {t: list(m) for t, m in snapshot.metrics.names.items()}
        ),
        "warnings": [[w.message, w.file] for w in snapshot.warnings],
        "stats": {
            "files": snapshot.stats.files,
            "rows_read": snapshot.stats.rows_read,
            "rows": snapshot.stats.rows,
            "nan_scores": snapshot.stats.nan_scores,
            "duplicates_dropped": snapshot.stats.duplicates_dropped,
            "revisions_dropped": snapshot.stats.revisions_dropped,
            "extra": dict(snapshot.stats.extra),
        },
    }
    return json.dumps(doc, sort_keys=True).encode()


def write_cache(snapshot: Snapshot, cache_dir: Path) -> Path:
    """Write the normalized frames and catalogs; atomic: a reader sees all of it or nothing."""
    final = cache_entry(cache_dir, snapshot.id)
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    try:
        snapshot.results.write_parquet(tmp / "results.parquet", compression="lz4")
        if snapshot.metrics is not None:
            (tmp / METRICS_DIR).mkdir()
            for file in snapshot.metrics.files():
                shutil.copyfile(file, tmp / METRICS_DIR / file.name)
        if snapshot.all_revisions is not None:
            snapshot.all_revisions.write_parquet(tmp / "revisions.parquet", compression="lz4")
        (tmp / "catalog.json").write_bytes(_dump_catalog(snapshot))
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # another process won the race: theirs is as good
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _discard(entry: Path) -> None:
    """Move a bad cache entry aside (one atomic rename) and delete it, so it is rebuilt."""
    trash = entry.with_name(f".bad-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(entry, trash)
    except OSError:
        return  # already gone: another process discarded it
    shutil.rmtree(trash, ignore_errors=True)


def read_cache(cache_dir: Path, source: ResolvedSource) -> Snapshot | None:
    """The cached Snapshot for ``source.snapshot_id``; a corrupt entry is removed (and None)."""
    entry = cache_entry(cache_dir, source.snapshot_id)
    if not entry.is_dir():
        return None
    try:
        doc = orjson.loads((entry / "catalog.json").read_bytes())
        results = pl.read_parquet(entry / "results.parquet")
        names = doc["metric_names"]
        metrics = None
        if names is not None:
            if not (entry / METRICS_DIR).is_dir():
                raise FileNotFoundError(entry / METRICS_DIR)
            metrics = MetricStore.open(entry / METRICS_DIR, names)
        revisions_file = entry / "revisions.parquet"
        all_revisions = pl.read_parquet(revisions_file) if revisions_file.is_file() else None
        dataset = DatasetInfo.model_validate(doc["dataset"])
        models = {m["name"]: ModelInfo.model_validate(m) for m in doc["models"]}
        tasks = {t["name"]: TaskInfo.model_validate(t) for t in doc["tasks"]}
        benchmarks = {b["name"]: BenchmarkInfo.model_validate(b) for b in doc["benchmarks"]}
        menu = tuple(MenuEntry.model_validate(g) for g in doc["menu"])
        warnings = tuple(DatasetWarning(m, f) for m, f in doc["warnings"])
        stats = LoadStats(**doc["stats"])
    except (
        OSError,
        KeyError,
        TypeError,
        ValueError,
        pl.exceptions.PolarsError,
        ValidationError,
    ) as exc:
        log.warning("discarding unreadable disk cache %s: %s", entry, exc)
        _discard(entry)
        return None
    return Snapshot(
        id=source.snapshot_id,
        source=source.spec,
        results=results,
        metrics=metrics,
        models=models,
        tasks=tasks,
        benchmarks=benchmarks,
        menu=menu,
        loaded_at=datetime.now(UTC),
        updated_at=source.updated_at,
        warnings=warnings,
        stats=stats,
        dataset=dataset,
        all_revisions=all_revisions,
        stats_files=stats_files(source.path, tasks),
        root=str(source.path),
    )


def load_snapshot(source: ResolvedSource, *, cache_dir: Path | None = None) -> Snapshot:
    """The Snapshot for ``source``: from the disk cache when present, else parsed and cached."""
    if cache_dir is not None:
        cached = read_cache(cache_dir, source)
        if cached is not None:
            return cached
    snapshot = build_snapshot(source)
    if cache_dir is not None:
        try:
            write_cache(snapshot, cache_dir)
        except OSError as exc:
            log.warning("could not write disk cache under %s: %s", cache_dir, exc)
        else:
            # Serve what the cache holds: compact frames (the build's intermediate ones are
            # freed) and metrics in the entry (the temporary copy goes with the old store).
            cached = read_cache(cache_dir, source)
            if cached is not None:
                del snapshot
                release_memory()
                return cached
    release_memory()
    return snapshot


def release_memory() -> None:
    """Hand memory a load freed back to the system (arrow's pool, the C allocator)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return
    libc.malloc_trim(0)
