"""Write an ingested batch of results as a new dataset version: a file under results/, a commit.

A batch is checked with the loader's own functions (``check_results_frame`` for the rows,
``read_catalogs`` for the catalogs with the batch's new entries appended, ``read_result_file``
for the file as written), so whatever this module writes, ``validate`` accepts and the loader
serves.  Rows naming a model or task without a catalog entry are taken, as the loader takes
them (it gives them a bare entry).  Nothing already written is rewritten: the rows go to a new
file ``results/ingest/<UTC time>-<content hash>.parquet`` and new catalog entries are appended
to ``models.jsonl`` / ``tasks.jsonl``; an entry for a name the catalog holds must equal it.

How the files land is :mod:`leaderboard_api.dataset.gitops`: atomically, committed and pushed
in a git work tree, planned and written again on top of a rejected push (the results file
never conflicts; catalog entries are checked again against the catalogs the others wrote),
put back on any failure, one writer at a time.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import orjson
import polars as pl

from leaderboard_api.dataset.contract import (
    MODELS_FILES,
    RESULTS_DIR,
    TASKS_FILE,
    CatalogEntry,
    DatasetError,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.gitops import (
    Applied,
    GitOptions,
    NotWritable,
    Undo,
    WriteFailed,
    commit_and_push,
    dataset_lock,
    in_work_tree,
    put_files,
    require_committed,
)
from leaderboard_api.dataset.sources import resolve_directory
from leaderboard_api.dataset.validate import (
    CATALOG_FILES,
    _validate_entry,
    check_results_frame,
    read_catalogs,
    read_result_file,
)

__all__ = [
    "INGEST_DIR",
    "Batch",
    "CatalogConflict",
    "GitOptions",
    "IngestResult",
    "NotWritable",
    "WriteFailed",
    "batch_from_file",
    "batch_from_json",
    "batch_from_parquet",
    "batch_from_rows",
    "ingest",
    "writable_root",
]

#: Where ingested results files go (a sub-folder of ``results/``: the loader reads it all).
INGEST_DIR = f"{RESULTS_DIR}/ingest"
#: Hex digits of the content hash in a file name: the same rows are never written twice.
HASH_CHARS = 20
#: Seconds a writer waits for another writer of the same dataset.
LOCK_TIMEOUT = 120.0
_JSON_KEYS = frozenset({"rows", "models", "tasks"})

E = TypeVar("E", bound=CatalogEntry)


class CatalogConflict(DatasetError):
    """A catalog entry for a name the catalog already holds, with other values."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows checked against the contract, and catalog entries for new models and tasks."""

    frame: pl.DataFrame
    models: tuple[ModelInfo, ...] = ()
    tasks: tuple[TaskInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an ingest did: the dataset version now, the results file, the new entries."""

    #: The commit in a git work tree, else the snapshot id the directory resolves to.
    version: str
    #: The results file holding the rows (relative to the dataset; an existing one when
    #: the same rows were ingested before).
    file: str
    rows: int
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    #: False when nothing was new (the same rows and entries are already there).
    created: bool
    commit: str | None = None
    pushed: bool = False


# --- batches --------------------------------------------------------------------------------


def _entries(raw: Sequence[object], model: type[E], *, source: str, what: str) -> tuple[E, ...]:
    out = [
        _validate_entry(item, model, rel=source, where=f"{what}[{i}]") for i, item in enumerate(raw)
    ]
    seen: set[str] = set()
    for entry in out:
        name = str(getattr(entry, "name", ""))
        if name in seen:
            msg = f"{what}: duplicate name {name!r}"
            raise DatasetError(msg, file=source, column="name")
        seen.add(name)
    return tuple(out)


def batch_from_frame(
    frame: pl.DataFrame,
    *,
    source: str,
    models: Sequence[object] = (),
    tasks: Sequence[object] = (),
) -> Batch:
    """A batch of ``frame`` (checked as a results file named ``source``) and catalog entries
    (raw objects, checked as ``models.jsonl`` / ``tasks.jsonl`` lines are)."""
    if frame.height == 0:
        raise DatasetError("holds no result rows", file=source, hint="send at least one row")
    checked, _ = check_results_frame(frame, rel=source)
    return Batch(
        frame=checked,
        models=_entries(models, ModelInfo, source=source, what="models"),
        tasks=_entries(tasks, TaskInfo, source=source, what="tasks"),
    )


def batch_from_parquet(
    data: bytes,
    *,
    source: str,
    models: Sequence[object] = (),
    tasks: Sequence[object] = (),
) -> Batch:
    """A batch of a parquet file's bytes, read exactly as the loader reads a results file."""
    with tempfile.TemporaryDirectory(prefix="leaderboard-ingest-") as folder:
        path = Path(folder) / "batch.parquet"
        path.write_bytes(data)
        frame = read_result_file(path, source).frame
    return batch_from_frame(frame, source=source, models=models, tasks=tasks)


def batch_from_rows(
    rows: Sequence[object],
    *,
    source: str,
    models: Sequence[object] = (),
    tasks: Sequence[object] = (),
) -> Batch:
    """A batch of JSON rows in the contract's long format (one object per result)."""
    if not rows:
        raise DatasetError("holds no result rows", file=source, hint="send at least one row")
    bad = [f"row {i}: {type(r).__name__}" for i, r in enumerate(rows) if not isinstance(r, dict)]
    if bad:
        raise DatasetError("every row must be a JSON object", file=source, examples=bad)
    dicts = [r for r in rows if isinstance(r, dict)]
    frame = _rows_frame(dicts, source=source)
    if "evaluated_at" in frame.columns and frame.schema["evaluated_at"] == pl.String:
        column = pl.col("evaluated_at")
        try:
            frame = frame.with_columns(column.str.to_datetime(time_unit="us", time_zone="UTC"))
        except pl.exceptions.PolarsError as exc:
            msg = "not an ISO 8601 timestamp"
            hint = str(exc).splitlines()[0][:200]
            raise DatasetError(msg, file=source, column="evaluated_at", hint=hint) from None
    return batch_from_frame(frame, source=source, models=models, tasks=tasks)


def _rows_frame(rows: list[dict[str, object]], *, source: str) -> pl.DataFrame:
    try:
        return pl.from_dicts(rows, infer_schema_length=None)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        pass
    # Find the column whose values do not make one type, to name it.
    names = list(dict.fromkeys(key for row in rows for key in row))
    for name in names:
        values = [{name: row.get(name)} for row in rows]
        try:
            pl.from_dicts(values, infer_schema_length=None)
        except (TypeError, ValueError, pl.exceptions.PolarsError):
            kinds = sorted({type(row.get(name)).__name__ for row in rows})
            msg = f"values of more than one type ({', '.join(kinds)})"
            raise DatasetError(msg, file=source, column=name) from None
    raise DatasetError("rows do not make a table", file=source)


def batch_from_json(doc: object, *, source: str) -> Batch:
    """A batch of a JSON document: a list of rows, or ``{"rows": [...], "models": [...],
    "tasks": [...]}`` (models and tasks optional)."""
    if isinstance(doc, list):
        return batch_from_rows(doc, source=source)
    if not isinstance(doc, dict):
        msg = 'expected a JSON list of rows or an object {"rows": [...]}'
        raise DatasetError(msg, file=source)
    unknown = sorted(set(doc) - _JSON_KEYS)
    if unknown:
        msg = "unknown fields (rows, models and tasks are taken)"
        raise DatasetError(msg, file=source, examples=unknown)
    parts: dict[str, list[object]] = {}
    for key in sorted(_JSON_KEYS):
        value = doc.get(key, [])
        if not isinstance(value, list):
            raise DatasetError("expected a JSON list", file=source, column=key)
        parts[key] = value
    return batch_from_rows(
        parts["rows"], source=source, models=parts["models"], tasks=parts["tasks"]
    )


def batch_from_file(path: Path) -> Batch:
    """A batch of a file: parquet (``.parquet``), else JSON (rows or rows with entries)."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read ({exc.strerror or exc})", file=name) from None
    if path.suffix == ".parquet" or data[:4] == b"PAR1":
        return batch_from_parquet(data, source=name)
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        msg = f"neither parquet nor valid JSON ({exc})"
        raise DatasetError(msg, file=name, hint="give a .parquet file or JSON rows") from None
    return batch_from_json(doc, source=name)


def writable_root(spec: str | None) -> Path:
    """The directory of the ``data`` setting when it can take writes, else NotWritable."""
    if spec is None or spec in ("", "sample"):
        msg = "the embedded sample dataset is read-only: serve a directory (--data DIR) to ingest"
        raise NotWritable(msg)
    if spec.startswith("hf://"):
        msg = (
            f"{spec} is a Hugging Face dataset, read-only here: ingest into a git clone of it "
            "and serve that directory"
        )
        raise NotWritable(msg)
    path = Path(spec).expanduser().resolve()
    if not path.is_dir():
        raise NotWritable(f"dataset directory {path} does not exist")
    if not os.access(path, os.W_OK):
        raise NotWritable(f"dataset directory {path} is not writable by this process")
    return path


# --- planning and applying a write ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    rel: str
    #: The results file's bytes, None when a file with the same rows is there already.
    data: bytes | None
    #: Catalog file name -> its new content (old lines, then the new entries).
    catalogs: dict[str, bytes]
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    rows: int

    @property
    def empty(self) -> bool:
        return self.data is None and not self.catalogs

    @property
    def paths(self) -> list[str]:
        return sorted([*self.catalogs, *([self.rel] if self.data is not None else [])])


def _parquet(frame: pl.DataFrame) -> bytes:
    plain = frame.with_columns(
        pl.col(name).cast(pl.String)
        for name, dtype in frame.schema.items()
        if dtype == pl.Categorical or isinstance(dtype, pl.Enum)
    )
    buffer = io.BytesIO()
    plain.write_parquet(buffer)
    return buffer.getvalue()


def _new_entries(given: Sequence[E], have: Mapping[str, E], *, file: str) -> list[E]:
    new: list[E] = []
    for entry in given:
        name = str(getattr(entry, "name", ""))
        old = have.get(name)
        if old is None:
            new.append(entry)
        elif old.model_dump(mode="json") != entry.model_dump(mode="json"):
            msg = f"already has an entry for {name!r} with other values (entries are not rewritten)"
            raise CatalogConflict(
                msg, file=file, column="name", hint="send the entry as it is, or leave it out"
            )
    return new


def _appended(root: Path, name: str, entries: Sequence[CatalogEntry]) -> bytes:
    path = root / name
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    lines = [orjson.dumps(e.model_dump(mode="json", exclude_unset=True)) + b"\n" for e in entries]
    return old + b"".join(lines)


def _check_catalogs(root: Path, contents: Mapping[str, bytes]) -> None:
    """``read_catalogs`` over the catalogs as they would be (copies in a scratch folder)."""
    with tempfile.TemporaryDirectory(prefix="leaderboard-ingest-") as folder:
        scratch = Path(folder)
        for name in CATALOG_FILES:
            if name in contents:
                (scratch / name).write_bytes(contents[name])
            elif (root / name).is_file():
                shutil.copyfile(root / name, scratch / name)
        read_catalogs(scratch)


def _plan(root: Path, batch: Batch, now: datetime) -> _Plan:
    catalogs = read_catalogs(root)
    models_file, models_parquet = MODELS_FILES
    models = _new_entries(batch.models, catalogs.models, file=models_file)
    tasks = _new_entries(batch.tasks, catalogs.tasks, file=TASKS_FILE)
    if models and (root / models_parquet).is_file() and not (root / models_file).is_file():
        msg = f"this dataset's model catalog is {models_parquet}; ingest appends to {models_file}"
        raise DatasetError(
            msg, file=models_parquet, hint="add the entries to models.parquet yourself"
        )
    contents: dict[str, bytes] = {}
    if models:
        contents[models_file] = _appended(root, models_file, models)
    if tasks:
        contents[TASKS_FILE] = _appended(root, TASKS_FILE, tasks)
    if contents:
        _check_catalogs(root, contents)
    data = _parquet(batch.frame)
    digest = hashlib.sha256(data).hexdigest()[:HASH_CHARS]
    folder = root / INGEST_DIR
    existing = sorted(folder.glob(f"*-{digest}.parquet")) if folder.is_dir() else []
    if existing:
        rel, body = existing[0].relative_to(root).as_posix(), None
    else:
        rel, body = f"{INGEST_DIR}/{now:%Y%m%dT%H%M%S%fZ}-{digest}.parquet", data
    return _Plan(
        rel=rel,
        data=body,
        catalogs=contents,
        models=tuple(m.name for m in models),
        tasks=tuple(t.name for t in tasks),
        rows=batch.frame.height,
    )


def _apply(root: Path, plan: _Plan) -> Undo:
    """Write the plan's files (catalogs first: rows without entries load anyway); the results
    file is read as the loader will read it once more before it is renamed into place."""
    new = (plan.rel, plan.data) if plan.data is not None else None
    return put_files(root, plan.catalogs, new=new, check=read_result_file)


# --- ingest ---------------------------------------------------------------------------------


def _message(plan: _Plan, message: str | None, author: str | None) -> str:
    text = message or f"Ingest {plan.rows} result row(s): {plan.rel}"
    added = [*(f"model {m}" for m in plan.models), *(f"task {t}" for t in plan.tasks)]
    if added and not message:
        text += "\n\nNew catalog entries: " + ", ".join(added)
    if author:
        text += f"\n\nIngested-by: {author}"
    return text


def _ingest_git(
    root: Path, batch: Batch, *, message: str | None, author: str | None, opts: GitOptions
) -> IngestResult:
    plans: list[_Plan] = []

    def write() -> Applied | None:
        # Planned again on every attempt: after a rejected push, on top of the others' work.
        plan = _plan(root, batch, datetime.now(UTC))
        plans.append(plan)
        if plan.empty:
            return None
        require_committed(root, list(plan.catalogs), opts)
        undo = _apply(root, plan)
        return Applied(plan.paths, _message(plan, message, author), undo.restore)

    committed = commit_and_push(root, write, opts=opts)
    if committed is None:
        return _unchanged(root, plans[-1])
    return _done(plans[-1], committed.commit, pushed=committed.pushed)


def _done(plan: _Plan, commit: str, *, pushed: bool) -> IngestResult:
    return IngestResult(
        version=commit,
        file=plan.rel,
        rows=plan.rows,
        models=plan.models,
        tasks=plan.tasks,
        created=True,
        commit=commit,
        pushed=pushed,
    )


def _unchanged(root: Path, plan: _Plan) -> IngestResult:
    source = resolve_directory(root, spec=str(root))
    return IngestResult(
        version=source.snapshot_id,
        file=plan.rel,
        rows=plan.rows,
        models=(),
        tasks=(),
        created=False,
    )


def ingest(
    root: Path,
    batch: Batch,
    *,
    message: str | None = None,
    author: str | None = None,
    git: GitOptions | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> IngestResult:
    """Write ``batch`` into the dataset at ``root`` as a new version (blocking).

    Raises DatasetError (bad rows or entries; CatalogConflict for an entry that differs
    from the catalog's), NotWritable, or WriteFailed; in each case nothing was changed.
    The same rows and entries ingested again change nothing (``created`` is false).
    """
    opts = git if git is not None else GitOptions()
    root = root.resolve()
    if not root.is_dir():
        raise NotWritable(f"dataset directory {root} does not exist")
    in_git = in_work_tree(root)
    with dataset_lock(root, in_git=in_git, timeout=lock_timeout, opts=opts):
        if in_git:
            return _ingest_git(root, batch, message=message, author=author, opts=opts)
        plan = _plan(root, batch, datetime.now(UTC))
        if plan.empty:
            return _unchanged(root, plan)
        _apply(root, plan)
        result = _unchanged(root, plan)
        return IngestResult(
            version=result.version,
            file=plan.rel,
            rows=plan.rows,
            models=plan.models,
            tasks=plan.tasks,
            created=True,
        )
