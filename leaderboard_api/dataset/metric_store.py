"""Every metric of a snapshot, kept on disk and read per task on demand.

The leaderboard needs only each task's main metric, which the snapshot holds in memory.
All the others (tens of millions of rows on the whole MTEB repository) live in one parquet
file sorted by task and metric, so reading one task's metric touches a few row groups.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

#: Rows per parquet row group: small enough that one task's rows are read alone.
ROW_GROUP_ROWS = 65_536
FILE_NAME = "metrics.parquet"


def _names(frame: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    grouped = (
        frame.lazy()
        .filter(pl.col("metric").is_not_null())
        .select(pl.col("task_name").cast(pl.String), pl.col("metric").cast(pl.String))
        .unique()
        .group_by("task_name")
        .agg(pl.col("metric").sort())
        .sort("task_name")
        .collect()
    )
    return {task: tuple(metrics) for task, metrics in grouped.iter_rows()}


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class MetricStore:
    """Every metric row (the results' columns plus ``metric``) in one parquet file.

    ``names`` maps each task to the metrics it has, sorted.  A store made by ``create``
    owns its temporary folder and removes it when garbage collected.
    """

    path: Path
    names: Mapping[str, tuple[str, ...]]
    _finalizer: object | None = field(default=None, repr=False)

    @classmethod
    def create(cls, frame: pl.DataFrame, folder: Path | None = None) -> MetricStore:
        """Write ``frame`` sorted by task and metric into ``folder`` (a fresh temporary
        folder, removed with the store, when None)."""
        owned = folder is None
        target = Path(tempfile.mkdtemp(prefix="leaderboard-metrics-")) if owned else folder
        assert target is not None
        path = target / FILE_NAME
        try:
            ordered = frame.sort("task_name", "metric", maintain_order=True, nulls_last=True)
            ordered.with_columns(
                pl.col(c).cast(pl.String)
                for c, dtype in ordered.schema.items()
                if dtype == pl.Categorical
            ).write_parquet(
                path, compression="zstd", statistics=True, row_group_size=ROW_GROUP_ROWS
            )
        except BaseException:
            if owned:
                shutil.rmtree(target, ignore_errors=True)
            raise
        store = cls(path=path, names=_names(frame))
        if owned:
            finalizer = weakref.finalize(store, shutil.rmtree, target, True)
            object.__setattr__(store, "_finalizer", finalizer)
        return store

    @classmethod
    def open(cls, path: Path, names: Mapping[str, list[str]]) -> MetricStore:
        """A store over an existing file (a disk-cache entry's), with its metric names."""
        return cls(path=path, names={t: tuple(m) for t, m in names.items()})

    def metrics_of(self, task: str) -> tuple[str, ...]:
        return tuple(self.names.get(task, ()))

    def rows(self, task: str, metric: str) -> pl.DataFrame:
        """One task's rows of one metric (key columns as Strings), in file order."""
        return (
            pl.scan_parquet(self.path)
            .filter((pl.col("task_name") == task) & (pl.col("metric") == metric))
            .collect()
        )

    def frame(self) -> pl.DataFrame:
        """Every row (sorted by task and metric): for tests and tools, not for serving."""
        return pl.read_parquet(self.path)
