"""Shared fixtures: tiny datasets written to disk from Python lists, loaded by the real loader."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import pytest

from leaderboard_api.dataset.loader import load_snapshot
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import resolve

Row = Mapping[str, Any]
Entry = Mapping[str, Any]

_STRING_COLUMNS = ("model_name", "model_revision", "task_name", "split", "subset", "metric")


def cell(
    model: str,
    task: str,
    score: float | None,
    *,
    split: str = "test",
    subset: str = "default",
    **more: Any,
) -> dict[str, Any]:
    """One results row."""
    return {
        "model_name": model,
        "task_name": task,
        "split": split,
        "subset": subset,
        "score": score,
        **more,
    }


def results_frame(rows: Sequence[Row]) -> pl.DataFrame:
    """Rows as a frame with the contract's dtypes (columns that no row has are left out)."""
    names = [c for c in (*_STRING_COLUMNS, "languages", "score") if any(c in r for r in rows)]
    extra = sorted({k for r in rows for k in r} - set(names))
    schema: dict[str, pl.DataType] = {}
    for name in [*names, *extra]:
        if name == "score":
            schema[name] = pl.Float64()
        elif name == "languages":
            schema[name] = pl.List(pl.String())
        else:
            schema[name] = pl.String()
    data = {name: [r.get(name) for r in rows] for name in schema}
    return pl.DataFrame(data, schema=schema)


def _jsonl(path: Path, entries: Iterable[Entry]) -> None:
    path.write_text("".join(json.dumps(dict(e)) + "\n" for e in entries))


def write_dataset(
    root: Path,
    rows: Sequence[Row],
    *,
    tasks: Sequence[Entry] | None = None,
    benchmarks: Sequence[Entry] | None = None,
    models: Sequence[Entry] | None = None,
    files: int = 1,
) -> Path:
    """Write ``results/*.parquet`` (rows spread over ``files`` files) and optional catalogs."""
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    frame = results_frame(rows)
    size = max(1, -(-frame.height // files))
    for index in range(files):
        part = frame.slice(index * size, size)
        if part.height or index == 0:
            part.write_parquet(results / f"part-{index:03d}.parquet")
    for name, entries in (
        ("tasks.jsonl", tasks),
        ("benchmarks.jsonl", benchmarks),
        ("models.jsonl", models),
    ):
        if entries is not None:
            _jsonl(root / name, entries)
    return root


def load(root: Path) -> Snapshot:
    """Load a dataset directory with the real source resolver and loader."""
    return load_snapshot(resolve(str(root)))


class MakeSnapshot(Protocol):
    def __call__(
        self,
        rows: Sequence[Row],
        *,
        tasks: Sequence[Entry] | None = None,
        benchmarks: Sequence[Entry] | None = None,
        models: Sequence[Entry] | None = None,
        files: int = 1,
    ) -> Snapshot: ...


@pytest.fixture
def make_snapshot(tmp_path_factory: pytest.TempPathFactory) -> MakeSnapshot:
    """Write a dataset into a fresh temporary directory and load it (safe under hypothesis)."""

    def make(
        rows: Sequence[Row],
        *,
        tasks: Sequence[Entry] | None = None,
        benchmarks: Sequence[Entry] | None = None,
        models: Sequence[Entry] | None = None,
        files: int = 1,
    ) -> Snapshot:
        root = tmp_path_factory.mktemp("dataset")
        write_dataset(root, rows, tasks=tasks, benchmarks=benchmarks, models=models, files=files)
        return load(root)

    return make


def bench(name: str, tasks: Sequence[str | Entry], **scoring: Any) -> dict[str, Any]:
    """A benchmarks.jsonl entry; tasks are names or ``{"task": ..., "splits": ...}`` dicts."""
    entries = [{"task": t} if isinstance(t, str) else dict(t) for t in tasks]
    return {"name": name, "tasks": entries, "scoring": scoring}
