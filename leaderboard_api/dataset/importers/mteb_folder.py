"""Build the results file of one model folder: parse what changed, reuse the previous rows."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from leaderboard_api.dataset.contract import RESULT_KEY
from leaderboard_api.dataset.importers import common
from leaderboard_api.dataset.importers.mteb_catalog import TaskMeta
from leaderboard_api.dataset.importers.mteb_parse import (
    NOT_MTEB,
    SCHEMA,
    ColumnBatch,
    SkipFile,
    blob_id,
    parse_json,
    read_bytes,
)

#: Sort and duplicate key of the rows (``variant`` is part of the contract's result key).
KEY = [*RESULT_KEY, *(() if "variant" in RESULT_KEY else ("variant",))]
_GROUP = ["model_revision", "variant", "task_name"]
Group = tuple[str, str | None, str]  # revision folder, variant, task: the rows of one file
Run = tuple[tuple[str | None, ...], int, int]  # (model, revision, variant, task), start, end


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One result file of the current tree, with its manifest entry from the last import."""

    rel: str
    path: str
    revision: str
    variant: str | None
    size: int
    mtime_ns: int
    old: Mapping[str, Any] | None = None

    def unchanged(self) -> bool:
        old = self.old
        return old is not None and old["size"] == self.size and old["mtime_ns"] == self.mtime_ns


@dataclass(frozen=True, slots=True)
class FolderJob:
    """Rebuild ``out_path`` for one model folder.

    ``old_output`` is the folder's previous results file (``None``: parse every file);
    ``removed`` holds the manifest entries (with ``rel``) of files gone since then.
    """

    folder: str
    files: tuple[SourceFile, ...]
    names: Mapping[str, str]
    out_path: str
    old_output: str | None = None
    removed: tuple[Mapping[str, Any], ...] = ()
    renamed: bool = False


@dataclass(slots=True)
class FolderOutcome:
    """The new manifest entries of a folder's result files and what building it cost."""

    folder: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: int = 0
    reread: int = 0
    written: bool = False
    reused: bool = False


@dataclass(frozen=True, slots=True)
class ParseSettings:
    """What parsing needs beyond the files: the catalog's task metadata and the metric filter."""

    tasks: Mapping[str, TaskMeta]
    main_only: bool


def group_of(entry: Mapping[str, Any]) -> Group | None:
    """The rows a manifest entry produced, as (revision, variant, task); ``None`` if none."""
    task = entry.get("task")
    if not isinstance(task, str):
        return None
    return entry["revision"], entry.get("variant"), task


def build_folder(job: FolderJob, settings: ParseSettings) -> FolderOutcome:
    """Parse the folder's new and changed files, merge the previous rows, write parquet."""
    outcome = FolderOutcome(job.folder)
    full = job.old_output is None
    pending: dict[str, Any] = {}  # rel -> parsed JSON of a changed file (None: skipped)
    drop: set[Group] = {g for r in job.removed if (g := group_of(r)) is not None}
    if not full:
        for src in job.files:
            if src.unchanged():
                outcome.entries[src.rel] = dict(_old(src))
                continue
            entry = outcome.entries[src.rel] = _entry(src)
            data = _load(src, entry, outcome)
            if src.old is not None and entry.get("sha1") == src.old.get("sha1"):
                outcome.entries[src.rel] = {**src.old, "size": src.size, "mtime_ns": src.mtime_ns}
                continue
            if (old_group := group_of(_old(src))) is not None:
                drop.add(old_group)
            pending[src.rel] = data
            if data is not None and (task := task_of(data)) is not None:
                drop.add((src.revision, src.variant, task))
        if not pending and not drop and not job.renamed:
            outcome.reused = True  # only touched: the previous file stays
            return outcome
    batch, order = ColumnBatch(), []
    for src in job.files:
        if full or src.rel in pending:
            entry = outcome.entries.setdefault(src.rel, _entry(src))
            data = pending[src.rel] if src.rel in pending else _load(src, entry, outcome)
        elif group_of(outcome.entries.get(src.rel, {})) in drop:
            # An unchanged file whose rows share a group with a changed one: parse it again.
            entry = outcome.entries[src.rel] = _entry(src)
            data = _load(src, entry, outcome)
        else:
            continue
        if data is None:
            continue
        try:
            if not isinstance(data, dict):
                raise SkipFile(NOT_MTEB)
            model = (job.names[src.revision], src.revision, src.variant)
            summary = batch.add_file(
                data, model=model, tasks=settings.tasks, main_only=settings.main_only
            )
        except SkipFile as exc:
            entry["skip"] = exc.reason
            continue
        entry.update(task=summary.task, rows=summary.rows)
        if notes := {k: v for k, v in summary.notes.items() if v}:
            entry["notes"] = dict(sorted(notes.items()))
        order.append(src.rel)
    df = _unique(batch.frame(), order, outcome.entries)
    if not full and job.old_output is not None and Path(job.old_output).is_file():
        df = _rebuild(job, drop, df)
    outcome.rows = df.height
    if df.height:
        # Re-imports rewrite whole folder files: lz4 writes a quarter faster and reads 2-3x
        # faster than zstd (files ~30% larger); column statistics cost a third of the write
        # and the loader reads whole files.
        common.write_results(df, Path(job.out_path), statistics=False, compression="lz4")
        outcome.written = True
    return outcome


def task_of(data: Any) -> str | None:
    """The task name a parsed result file declares, if it is an MTEB result file."""
    if not isinstance(data, dict):
        return None
    name = data.get("task_name") if isinstance(data.get("scores"), dict) else None
    name = name if isinstance(name, str) else data.get("mteb_dataset_name")
    return name if isinstance(name, str) else None


def _load(src: SourceFile, entry: dict[str, Any], outcome: FolderOutcome) -> Any:
    """Read, hash and parse one file; ``None`` (with ``entry["skip"]`` set) when it cannot."""
    try:
        raw = read_bytes(src.path)
    except SkipFile as exc:
        entry["skip"] = exc.reason
        return None
    outcome.reread += 1
    entry["sha1"] = blob_id(raw)
    try:
        return parse_json(raw)
    except SkipFile as exc:
        entry["skip"] = exc.reason
        return None


def _old(src: SourceFile) -> Mapping[str, Any]:
    return src.old or {}


def _entry(src: SourceFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"size": src.size, "mtime_ns": src.mtime_ns, "revision": src.revision}
    if src.variant is not None:
        entry["variant"] = src.variant
    return entry


def _unique(df: pl.DataFrame, order: list[str], entries: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """Drop repeated keys of rows sorted by ``_k`` (the first, in file order, wins)."""
    first = df.select(pl.col("_k").ne_missing(pl.col("_k").shift(1))).to_series()
    first = first.fill_null(True)
    if not first.all():
        for file_no, n in df.filter(~first).group_by("_file").len().iter_rows():
            if file_no >= 0:
                entry = entries[order[file_no]]
                entry["dups"] = n
                entry["rows"] -= n
        df = df.filter(first)
    return df.drop("_file", "_k").rechunk()


def _rebuild(job: FolderJob, drop: set[Group], fresh: pl.DataFrame) -> pl.DataFrame:
    """The previous file's rows outside ``drop`` merged with the fresh rows, in KEY order.

    The previous file's runs of (model, revision, variant, task) follow from the old
    manifest entries (their groups and row counts), so the kept rows are slices of it; when
    the counts do not add up (or a model was renamed) the rows are filtered and scanned.
    """
    old_path = str(job.old_output)
    runs = None if job.renamed else _old_runs(job)
    if runs is not None:
        old = pl.read_parquet(old_path).select(list(SCHEMA))
        if runs and runs[-1][2] == old.height:
            kept = [(p, a, b) for p, a, b in runs if (p[1], p[2], p[3]) not in drop]
            return _splice(old, kept, fresh)
    kept_rows = _kept_rows(old_path, drop=drop, names=job.names, renamed=job.renamed)
    return _merge(kept_rows, fresh)


def _old_runs(job: FolderJob) -> list[Run] | None:
    """(prefix, start, end) of the previous file's runs, from the old manifest entries."""
    counts: dict[tuple[str | None, ...], int] = {}
    olds = [src.old for src in job.files if src.old is not None] + list(job.removed)
    for entry in olds:
        group = group_of(entry)
        if group is None or not entry.get("rows"):
            continue
        name = job.names.get(group[0])
        if name is None:
            return None
        key: tuple[str | None, ...] = (name, *group)
        counts[key] = counts.get(key, 0) + int(entry["rows"])
    runs: list[Run] = []
    pos = 0
    for prefix in sorted(counts, key=_null_last):
        runs.append((prefix, pos, pos + counts[prefix]))
        pos += counts[prefix]
    return runs


def _splice(old: pl.DataFrame, kept: list[Run], fresh: pl.DataFrame) -> pl.DataFrame:
    """Interleave kept runs of ``old`` and the runs of ``fresh`` by prefix: slices, one copy."""
    tagged = [(p, 0, a, b) for p, a, b in kept] + [(p, 1, a, b) for p, a, b in _runs(fresh, 0)]
    tagged.sort(key=lambda r: _null_last(r[0]))
    spans: list[list[int]] = []  # [source, start, end], adjacent old runs joined
    for _, source, start, end in tagged:
        if spans and source == 0 and spans[-1][0] == 0 and spans[-1][2] == start:
            spans[-1][2] = end
        else:
            spans.append([source, start, end])
    frames = (old, fresh)
    pieces = [frames[src].slice(a, b - a) for src, a, b in spans]
    if not pieces:
        return fresh
    return pl.concat(pieces, how="vertical").rechunk()  # one chunk: the bytes of a fresh import


def _kept_rows(
    path: str, *, drop: Iterable[Group], names: Mapping[str, str], renamed: bool
) -> pl.DataFrame:
    """The previous rows outside the rebuilt groups (sorted by KEY), current model names."""
    old = pl.read_parquet(path).select(list(SCHEMA))
    groups = sorted(drop, key=_null_last)
    if len(groups) <= _FEW_GROUPS:  # a few comparisons beat a join on three string columns
        hit = pl.lit(False)
        for revision, variant, task in groups:
            hit = hit | (
                (pl.col("model_revision") == revision)
                & pl.col("variant").eq_missing(pl.lit(variant, pl.String()))
                & (pl.col("task_name") == task)
            )
        kept = old.filter(~hit)
    else:
        gone = pl.DataFrame(groups, schema=dict.fromkeys(_GROUP, pl.String()), orient="row")
        kept = old.join(gone, on=_GROUP, how="anti", nulls_equal=True, maintain_order="left")
    if not renamed:
        return kept
    return kept.with_columns(
        pl.col("model_revision")
        .replace_strict(dict(names), default=pl.col("model_name"), return_dtype=pl.String())
        .alias("model_name")
    ).sort(KEY, nulls_last=True)


_FEW_GROUPS = 32
_PREFIX = ["model_name", "model_revision", "variant", "task_name"]


def _null_last(values: tuple[str | None, ...]) -> tuple[tuple[int, str], ...]:
    """A sort key ordering like polars: strings by code point (UTF-8 bytes), nulls last."""
    return tuple((1, "") if v is None else (0, v) for v in values)


def _runs(df: pl.DataFrame, offset: int) -> list[Run]:
    """(prefix, start, end) of each run of rows sharing the KEY prefix of a file's rows."""
    if df.height == 0:
        return []
    new = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in _PREFIX)
    starts = df.select(new.fill_null(True).arg_true().alias("s"))["s"].to_list()
    prefixes = df[starts].select(_PREFIX).rows()
    ends = [*starts[1:], df.height]
    return [(p, a + offset, b + offset) for p, a, b in zip(prefixes, starts, ends, strict=True)]


def _merge(kept: pl.DataFrame, fresh: pl.DataFrame) -> pl.DataFrame:
    """Merge two frames sorted by KEY whose (model, revision, variant, task) runs differ.

    Rows of one file's group stay together, so each fresh run is spliced in where its
    prefix belongs: slices and one copy instead of sorting or gathering the folder again.
    """
    if kept.height == 0:
        return fresh
    kept_runs = _runs(kept, 0)
    keys = [_null_last(prefix) for prefix, _, _ in kept_runs]
    pieces, pos = [], 0
    for prefix, start, end in _runs(fresh, 0):
        i = bisect.bisect_left(keys, _null_last(prefix))
        cut = kept_runs[i][1] if i < len(kept_runs) else kept.height
        if cut > pos:
            pieces.append(kept.slice(pos, cut - pos))
            pos = cut
        pieces.append(fresh.slice(start, end - start))
    if pos < kept.height:
        pieces.append(kept.slice(pos))
    return pl.concat(pieces, how="vertical").rechunk()  # one chunk: the bytes of a fresh import
