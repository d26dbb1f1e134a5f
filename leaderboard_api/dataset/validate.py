"""Read and check a dataset's files: results files to the contract's dtypes, catalogs to models.

Every refusal is a ``DatasetError`` naming the file, the column and a few offending rows.
Checks are per file (a results file is valid or not on its own), which is what lets an
incremental load re-read only the files that changed and still refuse exactly what a fresh
load refuses.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson
import polars as pl
from pydantic import BaseModel, ValidationError

from leaderboard_api.dataset.contract import (
    BENCHMARKS_FILE,
    CATEGORICAL_COLUMNS,
    DATASET_FILE,
    MENU_FILE,
    MODELS_FILES,
    RESULT_COLUMNS,
    RESULTS_DIR,
    TASKS_FILE,
    BenchmarkInfo,
    DatasetError,
    DatasetInfo,
    MenuEntry,
    MenuLeaf,
    ModelInfo,
    TaskInfo,
)

__all__ = [
    "CATALOG_FILES",
    "CatalogStamp",
    "Catalogs",
    "ResultFile",
    "Signature",
    "catalog_stamp",
    "file_digest",
    "read_catalogs",
    "read_result_file",
    "result_files",
    "settled",
    "signature",
]

E = TypeVar("E", bound=BaseModel)
#: What ``os.stat`` says about a file: size, mtime (ns), inode, device.
Signature = tuple[int, int, int, int]
#: The catalog files a dataset may have.
CATALOG_FILES = (*MODELS_FILES, TASKS_FILE, BENCHMARKS_FILE, MENU_FILE, DATASET_FILE)
#: Each catalog file's signature (None: absent), in ``CATALOG_FILES`` order.
CatalogStamp = tuple[Signature | None, ...]


def signature(path: Path) -> Signature:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


#: A file modified less than this long ago may change again without its mtime moving (on
#: file systems with coarse timestamps): its stat is not trusted to identify its content.
RACY_NS = 2_000_000_000


def settled(sig: Signature | None) -> Signature | None:
    """``sig`` when it can identify the file's content later, else None (the file changed
    too recently: next time its bytes are compared instead)."""
    if sig is None or time.time_ns() - sig[1] < RACY_NS:
        return None
    return sig


def catalog_stamp(root: Path) -> CatalogStamp | None:
    """What the catalog files look like on disk (equal stamps, equal catalogs); None when
    one changed too recently to tell."""
    out: list[Signature | None] = []
    for name in CATALOG_FILES:
        try:
            sig = signature(root / name)
        except OSError:
            out.append(None)
            continue
        if settled(sig) is None:
            return None
        out.append(sig)
    return tuple(out)


def file_digest(data: bytes) -> str:
    """The content identity of a file's bytes (SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()


# --- results files -----------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True, eq=False)
class ResultFile:
    """One results file, read and validated."""

    rel: str
    frame: pl.DataFrame
    nans: int
    digest: str
    #: The file's stat before reading, or None when it changed while (or just before)
    #: being read.
    signature: Signature | None


def read_result_file(path: Path, rel: str) -> ResultFile:
    """Read one results file, check it and bring it to the contract's dtypes."""
    try:
        before = signature(path)
        data = path.read_bytes()
        lazy = pl.scan_parquet(io.BytesIO(data))
        schema = lazy.collect_schema()
        # Cast key strings while reading: the full string columns never exist in memory.
        frame = lazy.with_columns(
            pl.col(c).cast(pl.Categorical)
            for c in CATEGORICAL_COLUMNS
            if schema.get(c) == pl.String
        ).collect()
        after = signature(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot read parquet ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        raise DatasetError(msg, file=rel, hint="the file is truncated or not parquet") from exc
    frame, nans = check_results_frame(frame, rel=rel)
    return ResultFile(
        rel=rel,
        frame=frame,
        nans=nans,
        digest=file_digest(data),
        signature=settled(before) if before == after else None,
    )


def _rows(frame: pl.DataFrame, mask: pl.Expr, columns: list[str], n: int = 3) -> list[str]:
    """A few offending rows, as ``row N: col=value, ...`` strings for error messages."""
    picked = frame.with_row_index("__row").filter(mask).head(n)
    shown = [c for c in ["__row", *columns] if c in picked.columns]
    out = []
    for row in picked.select(shown).iter_rows(named=True):
        index = row.pop("__row")
        out.append(f"row {index}: " + ", ".join(f"{k}={v!r}" for k, v in row.items()))
    return out


def check_results_frame(frame: pl.DataFrame, *, rel: str) -> tuple[pl.DataFrame, int]:
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


# --- catalogs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Catalogs:
    """The catalog files as written (before results add entries for names they mention)."""

    models: dict[str, ModelInfo]
    tasks: dict[str, TaskInfo]
    benchmarks: dict[str, BenchmarkInfo]
    menu: list[MenuEntry]
    dataset: DatasetInfo

    @property
    def main_metrics(self) -> dict[str, str]:
        """Task -> the main metric ``tasks.jsonl`` names (tasks naming one only)."""
        return {name: t.main_metric for name, t in self.tasks.items() if t.main_metric}


def read_catalogs(
    root: Path,
    *,
    stamp: CatalogStamp | None = None,
    previous: tuple[Catalogs, CatalogStamp] | None = None,
) -> Catalogs:
    """Read and check every catalog file of ``root`` (all optional).

    With ``previous`` (catalogs read earlier and the ``catalog_stamp`` of their files then)
    and ``stamp`` (the files now), a catalog whose files look the same is reused.
    """

    def kept(*names: str) -> Catalogs | None:
        """The previous catalogs when the files named look as they did, else None."""
        if previous is None or stamp is None:
            return None
        old, then = previous
        at = [CATALOG_FILES.index(n) for n in names]
        return old if all(stamp[i] == then[i] for i in at) else None

    tasks_path, bench_path = root / TASKS_FILE, root / BENCHMARKS_FILE
    old = kept(*MODELS_FILES)
    models = old.models if old is not None else _index(_read_models(root))
    old = kept(TASKS_FILE)
    if old is not None:
        tasks = old.tasks
    else:
        tasks = _index(_read_jsonl(tasks_path, TaskInfo, root=root)) if tasks_path.is_file() else {}
    old = kept(BENCHMARKS_FILE)
    if old is not None:
        benchmarks = old.benchmarks
    elif bench_path.is_file():
        benchmarks = _index(_read_jsonl(bench_path, BenchmarkInfo, root=root))
    else:
        benchmarks = {}
    old = kept(MENU_FILE)
    menu = old.menu if old is not None else _read_menu(root)
    old = kept(DATASET_FILE)
    dataset = old.dataset if old is not None else _read_dataset_info(root)
    known = set(benchmarks)
    unknown = sorted({leaf for leaf in _menu_leaves(menu) if leaf not in known})
    if unknown:
        msg = "names benchmarks that benchmarks.jsonl does not define"
        raise DatasetError(msg, file=MENU_FILE, column="benchmark", examples=unknown)
    return Catalogs(models=models, tasks=tasks, benchmarks=benchmarks, menu=menu, dataset=dataset)


def _index(entries: Iterable[E]) -> dict[str, E]:
    # getattr: E is bound to BaseModel, which mypy does not know to have a ``name``.
    return {getattr(e, "name"): e for e in sorted(entries, key=lambda e: getattr(e, "name"))}  # noqa: B009


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


def _menu_leaves(entries: Iterable[MenuEntry | MenuLeaf]) -> Iterable[str]:
    for entry in entries:
        if isinstance(entry, MenuLeaf):
            yield entry.benchmark
        else:
            yield from _menu_leaves(entry.children)
