"""Every metric of a snapshot, kept on disk and read per task on demand.

The leaderboard needs only each task's main metric, which the snapshot holds in memory.
All the rows (34 million on the whole MTEB repository) are streamed while loading into a
few parquet files, one per bucket of task names, so no load ever holds them all and reading
one task's metric reads one bucket.  Duplicates are resolved when a task's rows are read,
with the loader's rule (newest ``evaluated_at``, then the later file and row).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from leaderboard_api.dataset.contract import RESULT_KEY

#: Task-name buckets (files) of a store.
BUCKETS = 32
#: Rows buffered per bucket before they are written as one row group.
FLUSH_ROWS = 32_768
_SEQ = "__seq"


def bucket_of(task: str) -> int:
    """The bucket holding a task's rows (stable across processes and machines)."""
    return zlib.crc32(task.encode()) % BUCKETS


def _bucket_file(folder: Path, bucket: int) -> Path:
    return folder / f"bucket-{bucket:02d}.parquet"


class MetricWriter:
    """Streams metric rows into a store folder, bucket by bucket (see ``MetricStore``).

    Rows keep the order they are added in (``__seq``), which is what duplicates resolve by.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._buffers: dict[int, list[pl.DataFrame]] = {}
        self._buffered: dict[int, int] = {}
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._schema: pa.Schema | None = None
        self._columns: list[str] | None = None
        self._seq = 0
        self.names: dict[str, set[str]] = {}

    def add(self, frame: pl.DataFrame) -> None:
        """Add one file's rows (any columns; key columns become Strings)."""
        if frame.height == 0:
            return
        rows = frame.with_columns(
            pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Categorical
        ).with_columns(
            pl.int_range(self._seq, self._seq + frame.height, dtype=pl.Int64).alias(_SEQ)
        )
        self._seq += frame.height
        # A few distinct task names per file: bucket those, then join.
        names = rows.get_column("task_name").unique().to_list()
        lookup = pl.DataFrame(
            {"task_name": names, "__bucket": [bucket_of(n) for n in names]},
            schema={"task_name": pl.String, "__bucket": pl.Int64},
        )
        rows = rows.join(lookup, on="task_name", how="left", maintain_order="left")
        pairs = rows.select("task_name", pl.col("metric").cast(pl.String)).unique()
        for task, metric in pairs.iter_rows():
            if metric is not None:
                self.names.setdefault(task, set()).add(metric)
        for (bucket,), part in rows.partition_by(
            "__bucket", as_dict=True, maintain_order=True
        ).items():
            self._buffer(int(bucket), part.drop("__bucket"))

    def _buffer(self, bucket: int, part: pl.DataFrame) -> None:
        self._buffers.setdefault(bucket, []).append(part)
        self._buffered[bucket] = self._buffered.get(bucket, 0) + part.height
        if self._buffered[bucket] >= FLUSH_ROWS:
            self._flush(bucket)

    def _flush(self, bucket: int) -> None:
        parts = self._buffers.pop(bucket, [])
        self._buffered[bucket] = 0
        if not parts:
            return
        frame = pl.concat(parts, how="diagonal_relaxed")
        if self._columns is None:
            self._columns = frame.columns
        else:
            missing = [c for c in self._columns if c not in frame.columns]
            extra = [c for c in frame.columns if c not in self._columns]
            if extra:
                msg = f"metric rows gained columns after the first write: {extra}"
                raise ValueError(msg)
            frame = frame.with_columns(pl.lit(None).alias(c) for c in missing)
            frame = frame.select(self._columns)
        table = frame.to_arrow()
        if self._schema is None:
            self._schema = table.schema
        else:
            table = table.cast(self._schema)
        writer = self._writers.get(bucket)
        if writer is None:
            writer = pq.ParquetWriter(
                _bucket_file(self.folder, bucket), self._schema, compression="lz4"
            )
            self._writers[bucket] = writer
        writer.write_table(table)

    def close(self) -> dict[str, tuple[str, ...]]:
        """Write what is buffered and close the files; returns task -> its metrics, sorted."""
        for bucket in sorted(self._buffers):
            self._flush(bucket)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return {t: tuple(sorted(m)) for t, m in sorted(self.names.items())}


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class MetricStore:
    """Every metric row (the results' columns plus ``metric``) in bucket files of a folder.

    ``names`` maps each task to the metrics it has, sorted.  A store made in a temporary
    folder owns it and removes it when garbage collected.
    """

    folder: Path
    names: Mapping[str, tuple[str, ...]]
    _finalizer: object | None = field(default=None, repr=False)

    @classmethod
    def temporary(cls) -> MetricWriter:
        """A writer into a fresh temporary folder (``owned`` by the store ``finish`` makes)."""
        return MetricWriter(Path(tempfile.mkdtemp(prefix="leaderboard-metrics-")))

    @classmethod
    def finish(cls, writer: MetricWriter, *, owned: bool) -> MetricStore:
        names = writer.close()
        store = cls(folder=writer.folder, names=names)
        if owned:
            finalizer = weakref.finalize(store, shutil.rmtree, writer.folder, True)
            object.__setattr__(store, "_finalizer", finalizer)
        return store

    @classmethod
    def open(cls, folder: Path, names: Mapping[str, list[str]]) -> MetricStore:
        """A store over an existing folder (a disk-cache entry's), with its metric names."""
        return cls(folder=folder, names={t: tuple(m) for t, m in names.items()})

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("bucket-*.parquet"))

    def metrics_of(self, task: str) -> tuple[str, ...]:
        return tuple(self.names.get(task, ()))

    def rows(self, task: str, metric: str | None = None) -> pl.DataFrame:
        """One task's rows (of one metric, if given), duplicates resolved, in file order;
        key columns as Strings."""
        path = _bucket_file(self.folder, bucket_of(task))
        if not path.is_file():
            return pl.DataFrame()
        wanted = pl.col("task_name") == task
        if metric is not None:
            wanted &= pl.col("metric") == metric
        return _resolved(pl.scan_parquet(path).filter(wanted).collect())

    def frame(self) -> pl.DataFrame:
        """Every row, duplicates resolved, in file order: for tests and tools, not serving."""
        parts = [pl.read_parquet(p) for p in self.files()]
        if not parts:
            return pl.DataFrame()
        return _resolved(pl.concat(parts, how="diagonal_relaxed"))


def _resolved(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height == 0:
        return frame.drop(_SEQ, strict=False)
    key = [c for c in RESULT_KEY if c in frame.columns]
    order = ["evaluated_at", _SEQ] if "evaluated_at" in frame.columns else [_SEQ]
    return frame.sort(order, nulls_last=False).unique(subset=key, keep="last").sort(_SEQ).drop(_SEQ)
