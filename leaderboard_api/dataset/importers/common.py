"""Shared pieces of the importers: the row buffer, deterministic writers and the import report."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
from pydantic import ValidationError
from tqdm import tqdm

from leaderboard_api.dataset.contract import (
    BENCHMARKS_FILE,
    MENU_FILE,
    MODELS_FILES,
    RESULT_KEY,
    RESULTS_DIR,
    TASKS_FILE,
    BenchmarkInfo,
    CatalogEntry,
    DatasetError,
    MenuEntry,
    ModelInfo,
    TaskInfo,
)

T = TypeVar("T")

#: Columns every importer writes, in this order, before its extra columns.
BASE_SCHEMA: dict[str, pl.DataType] = {
    "model_name": pl.String(),
    "model_revision": pl.String(),
    "task_name": pl.String(),
    "split": pl.String(),
    "subset": pl.String(),
    "languages": pl.List(pl.String()),
    "score": pl.Float64(),
    "metric": pl.String(),
    "evaluated_at": pl.Datetime("us", "UTC"),
}
_OPTIONAL = frozenset({"evaluated_at"})


@dataclass
class ImportReport:
    """What an import read, wrote and left out, with reasons; ``render()`` is the human summary."""

    kind: str
    source: str
    out: str
    #: What was read and used, e.g. ``{"result files": 1614}``.
    imported: Counter[str] = field(default_factory=Counter)
    #: Inputs left out: reason -> count.
    skipped: Counter[str] = field(default_factory=Counter)
    #: Up to three example paths per skip reason.
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    #: Things worth knowing that lose nothing, or lose a value rather than a file.
    notes: Counter[str] = field(default_factory=Counter)
    #: Written file -> number of rows/entries.
    written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, what: str, n: int = 1) -> None:
        self.imported[what] += n

    def skip(self, reason: str, item: str) -> None:
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 3:
            examples.append(item)

    def note(self, what: str, n: int = 1) -> None:
        if n:
            self.notes[what] += n

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def render(self) -> str:
        lines = [f"import {self.kind}: {self.source} -> {self.out} ({self.seconds:.2f} s)"]
        lines.append("  imported: " + _counts(self.imported))
        lines.append("  wrote: " + ", ".join(f"{k} ({v})" for k, v in self.written.items()))
        lines.append(f"  skipped: {self.total_skipped}")
        for reason, n in sorted(self.skipped.items()):
            shown = ", ".join(self.skipped_examples.get(reason, []))
            lines.append(f"    - {reason}: {n}" + (f" (e.g. {shown})" if shown else ""))
        if self.notes:
            lines.append("  notes:")
            lines.extend(f"    - {what}: {n}" for what, n in sorted(self.notes.items()))
        return "\n".join(lines)


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counter.items()) or "nothing"


class ResultRows:
    """Collects long-format result rows column-wise and flushes them to frames in chunks.

    Parameters
    ----------
    extra
        Extra columns (name -> dtype) every row may carry; missing values are null.
    chunk_rows
        Rows kept as Python lists before they become a polars frame (bounds memory).
    """

    def __init__(self, extra: Mapping[str, pl.DataType] | None = None, chunk_rows: int = 200_000):
        self.schema = {**BASE_SCHEMA, **(extra or {})}
        self._chunk_rows = chunk_rows
        self._cols: dict[str, list[Any]] = {name: [] for name in self.schema}
        self._frames: list[pl.DataFrame] = []
        self.rows = 0
        self.nan_scores = 0
        self.duplicates = 0

    def add(
        self,
        *,
        model_name: str,
        model_revision: str | None,
        task_name: str,
        metrics: Mapping[str, float | None],
        split: str = "test",
        subset: str = "default",
        languages: Sequence[str] = (),
        evaluated_at: datetime | None = None,
        **extra: Any,
    ) -> None:
        """Add one row per metric of one (model, revision, task, split, subset) cell."""
        shared: dict[str, Any] = {
            "model_name": model_name,
            "model_revision": model_revision,
            "task_name": task_name,
            "split": split,
            "subset": subset,
            "languages": list(languages),
            "evaluated_at": evaluated_at,
            **extra,
        }
        cols = self._cols
        for metric, score in metrics.items():
            if score is not None and math.isnan(score):
                score = None
                self.nan_scores += 1
            for name, values in cols.items():
                values.append(shared.get(name))
            cols["metric"][-1] = metric
            cols["score"][-1] = score
        self.rows += len(metrics)
        if len(cols["model_name"]) >= self._chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self._cols["model_name"]:
            self._frames.append(pl.DataFrame(self._cols, schema=self.schema))
            self._cols = {name: [] for name in self.schema}

    def frame(self) -> pl.DataFrame:
        """All rows, duplicates of the result key dropped (first kept), sorted by that key."""
        self._flush()
        frames = self._frames or [pl.DataFrame(schema=self.schema)]
        df = pl.concat(frames, how="vertical")
        before = df.height
        df = df.unique(
            subset=[c for c in RESULT_KEY if c in df.columns], keep="first", maintain_order=True
        )
        self.duplicates = before - df.height
        df = df.sort([c for c in RESULT_KEY if c in df.columns], nulls_last=True)
        empty = [c for c in df.columns if c in _OPTIONAL or c not in BASE_SCHEMA]
        return df.drop([c for c in empty if df[c].null_count() == df.height])


def prepare_out(out: Path, *, results_file: str) -> Path:
    """Create ``out/results`` and refuse a directory holding another import's results.

    Raises
    ------
    DatasetError
        When ``out`` holds result files other than ``results_file`` or a ``models.parquet``.
    """
    results = out / RESULTS_DIR
    if out.exists() and not out.is_dir():
        msg = "the output path exists and is not a directory"
        raise DatasetError(msg, file=str(out))
    foreign = sorted(p.name for p in results.glob("*.parquet") if p.name != results_file) + [
        name for name in MODELS_FILES[1:] if (out / name).exists()
    ]
    if foreign:
        msg = "the output directory already holds other data"
        raise DatasetError(
            msg, file=str(out), examples=foreign, hint="import into an empty or new directory"
        )
    results.mkdir(parents=True, exist_ok=True)
    return results


def _replace(tmp: str, path: Path) -> None:
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; dataset files are meant to be shared
    os.replace(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(
    df: pl.DataFrame, path: Path, *, statistics: bool = True, compression: str = "zstd"
) -> int:
    """Write a results frame as parquet, atomically (the same frame gives the same bytes)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.write_parquet(tmp, compression=compression, statistics=statistics)  # type: ignore[arg-type]
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return df.height


def _validated(
    entries: Iterable[Mapping[str, Any]], model: type[CatalogEntry], file: str
) -> list[Any]:
    out = []
    for entry in entries:
        try:
            model.model_validate(entry)
        except ValidationError as exc:
            msg = f"entry {entry.get('name')!r} does not fit the contract: {exc.errors()[0]['msg']}"
            raise DatasetError(msg, file=file, column=str(exc.errors()[0]["loc"][0])) from exc
        out.append(entry)
    return out


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def write_jsonl(path: Path, entries: Iterable[Mapping[str, Any]], model: type[CatalogEntry]) -> int:
    """Validate entries against ``model`` and write them one per line, sorted by ``name``."""
    rows = _validated(entries, model, path.name)
    rows.sort(key=lambda e: str(e["name"]))
    write_bytes_atomic(path, b"".join(_dumps(e) + b"\n" for e in rows))
    return len(rows)


def write_menu(path: Path, groups: Sequence[Mapping[str, Any]]) -> int:
    """Validate and write the menu tree (order kept: it is the display order)."""
    _validated(groups, MenuEntry, path.name)
    option = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    write_bytes_atomic(path, orjson.dumps(list(groups), option=option) + b"\n")
    return len(groups)


def write_catalogs(
    out: Path,
    report: ImportReport,
    *,
    models: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
    benchmarks: Iterable[Mapping[str, Any]] | None,
    menu: Sequence[Mapping[str, Any]] | None,
) -> None:
    """Write the catalog files; a ``None`` catalog removes a stale file of that name."""
    out.mkdir(parents=True, exist_ok=True)
    report.written[MODELS_FILES[0]] = write_jsonl(out / MODELS_FILES[0], models, ModelInfo)
    report.written[TASKS_FILE] = write_jsonl(out / TASKS_FILE, tasks, TaskInfo)
    if benchmarks is None:
        (out / BENCHMARKS_FILE).unlink(missing_ok=True)
    else:
        report.written[BENCHMARKS_FILE] = write_jsonl(
            out / BENCHMARKS_FILE, benchmarks, BenchmarkInfo
        )
    if menu is None:
        (out / MENU_FILE).unlink(missing_ok=True)
    else:
        report.written[MENU_FILE] = write_menu(out / MENU_FILE, menu)


def progress_bar(
    items: Sequence[T], *, enabled: bool, desc: str, unit: str = "file"
) -> Iterator[T]:
    """Iterate ``items``, with a tqdm bar on stderr when ``enabled``."""
    if not enabled:
        yield from items
        return
    yield from tqdm(items, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


def parse_float(value: Any) -> float | None:
    """A number from JSON or CSV text: ``None`` for blanks, NaN and non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def parse_finite(value: Any) -> float | None:
    """``parse_float`` without the infinities: ``None`` for ``±inf`` too.

    Scores must be finite (the dataset contract refuses ``±inf``), so an importer that
    reads scores with this writes only what ``validate`` accepts.
    """
    number = parse_float(value)
    return number if number is None or math.isfinite(number) else None


def loads_json(raw: bytes | str) -> Any:
    """Parse JSON, also accepting the bare ``NaN``/``Infinity`` Python writers emit.

    Raises ``ValueError`` (``json.JSONDecodeError`` or ``UnicodeDecodeError``) when invalid.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines catalog: one object with a string ``name`` per non-blank line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        msg = f"cannot read the file ({exc.strerror})"
        raise DatasetError(msg, file=str(path)) from exc
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except ValueError as exc:
            msg = f"line {n} is not valid JSON ({exc})"
            raise DatasetError(msg, file=str(path)) from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            msg = f"line {n} is not an object with a string 'name'"
            raise DatasetError(msg, file=str(path))
        rows.append(obj)
    return rows
