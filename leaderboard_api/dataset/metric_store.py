"""Every metric of a snapshot, kept on disk in layers and read per task on demand.

The leaderboard needs only each task's main metric, which the snapshot holds in memory.
All the rows (34 million on the whole MTEB repository) are streamed while loading into a
few parquet files per folder, one per bucket of task names, so no load ever holds them all
and reading one task's metric reads one bucket of each folder.

A store is a stack of such folders (layers): a full load writes one; an incremental load
adds one holding only the files that changed and tells the older layers which of their rows
still count.  Every row carries ``__seq``, its position in the order of a fresh load (file
order, then row order), so duplicates resolve exactly as a fresh load resolves them (newest
``evaluated_at``, then the later file and row) whatever layer a row sits in.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from leaderboard_api.dataset.contract import RESULT_KEY

__all__ = [
    "BUCKETS",
    "FLUSH_ROWS",
    "SEQ",
    "MetricStore",
    "MetricWriter",
    "Run",
    "StoreLayer",
    "bucket_of",
    "bucket_parts",
    "remap",
]

#: Task-name buckets (files) of a store folder.
BUCKETS = 32
#: Rows buffered per bucket before they are written as one row group.
FLUSH_ROWS = 32_768
#: The column holding a row's position in file order.
SEQ = "__seq"


def bucket_of(task: str) -> int:
    """The bucket holding a task's rows (stable across processes and machines)."""
    return zlib.crc32(task.encode()) % BUCKETS


def _part_file(folder: Path, bucket: int, part: int) -> Path:
    suffix = "" if part == 0 else f".{part}"
    return folder / f"bucket-{bucket:02d}{suffix}.parquet"


def bucket_parts(folder: Path, bucket: int) -> list[Path]:
    """A bucket's files in write order (a new part starts when the columns change)."""
    found: list[tuple[int, Path]] = []
    for path in folder.glob(f"bucket-{bucket:02d}*.parquet"):
        middle = path.name[len(f"bucket-{bucket:02d}") : -len(".parquet")]
        if middle == "":
            found.append((0, path))
        elif middle[1:].isdigit() and middle[0] == ".":
            found.append((int(middle[1:]), path))
    return [p for _, p in sorted(found)]


def store_schema(schema: Mapping[str, pl.DataType]) -> dict[str, pl.DataType]:
    """The columns a file's rows have in a store (key columns as Strings)."""
    return {c: (pl.String() if t == pl.Categorical else t) for c, t in schema.items()}


class MetricWriter:
    """Streams metric rows into a store folder, bucket by bucket (see ``MetricStore``).

    Rows are numbered in the order they are added (``__seq``, from 0); a fresh load adds
    every file in file order, so the numbers are the fresh load's order.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._buffers: dict[int, list[pl.DataFrame]] = {}
        self._buffered: dict[int, int] = {}
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._parts: dict[int, int] = {}
        self.seq = 0

    def add(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add one file's rows (any columns); returns its (task_name, metric) pairs, metric
        not null, as Strings."""
        if frame.height == 0:
            return pl.DataFrame(schema={"task_name": pl.String, "metric": pl.String})
        rows = frame.with_columns(
            pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Categorical
        ).with_columns(pl.int_range(self.seq, self.seq + frame.height, dtype=pl.Int64).alias(SEQ))
        self.seq += frame.height
        # A few distinct task names per file: bucket those, then join.
        names = rows.get_column("task_name").unique().to_list()
        lookup = pl.DataFrame(
            {"task_name": names, "__bucket": [bucket_of(n) for n in names]},
            schema={"task_name": pl.String, "__bucket": pl.Int64},
        )
        rows = rows.join(lookup, on="task_name", how="left", maintain_order="left")
        pairs = (
            rows.select("task_name", pl.col("metric").cast(pl.String))
            .unique()
            .drop_nulls("metric")
            .sort("task_name", "metric")
        )
        for (bucket,), part in rows.partition_by(
            "__bucket", as_dict=True, maintain_order=True
        ).items():
            self._buffer(int(bucket), part.drop("__bucket"))
        return pairs

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
        table = pl.concat(parts, how="diagonal_relaxed").to_arrow()
        writer = self._writers.get(bucket)
        if writer is not None and not writer.schema.equals(table.schema, check_metadata=False):
            # Other columns or types than this part holds: start the bucket's next part
            # (readers conform every part to the store's columns).
            writer.close()
            writer = None
            self._parts[bucket] = self._parts.get(bucket, 0) + 1
        if writer is None:
            path = _part_file(self.folder, bucket, self._parts.get(bucket, 0))
            writer = pq.ParquetWriter(path, table.schema, compression="lz4")
            self._writers[bucket] = writer
        writer.write_table(table)

    def close(self) -> None:
        """Write what is buffered and close the files."""
        try:
            for bucket in sorted(self._buffers):
                self._flush(bucket)
        finally:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()


@dataclass(frozen=True, slots=True)
class Run:
    """Rows ``start <= __seq < end`` of a layer count, at ``__seq + shift`` in file order."""

    start: int
    end: int
    shift: int


def remap(frame: pl.DataFrame, runs: Sequence[Run]) -> pl.DataFrame:
    """The rows of ``frame`` inside ``runs``, their ``__seq`` moved to file order."""
    if frame.height == 0 or not runs:
        return frame.clear()
    starts = pl.Series([r.start for r in runs], dtype=pl.Int64)
    ends = pl.Series([r.end for r in runs], dtype=pl.Int64)
    shifts = pl.Series([r.shift for r in runs], dtype=pl.Int64)
    seq = frame.get_column(SEQ)
    at = (starts.search_sorted(seq, side="right").cast(pl.Int64) - 1).clip(0)
    keep = (seq >= starts.gather(at)) & (seq < ends.gather(at))
    moved = seq + shifts.gather(at)
    return frame.with_columns(moved.alias(SEQ)).filter(keep)


@dataclass(frozen=True, slots=True, eq=False)
class StoreLayer:
    """One folder of a store and which of its rows count (``None``: all, in place)."""

    folder: Path
    runs: tuple[Run, ...] | None
    #: Keeps whatever owns the folder (and removes it when collected) alive.
    owner: object = field(default=None, repr=False)

    def read(self, bucket: int, wanted: pl.Expr | None = None) -> list[pl.DataFrame]:
        out = []
        for path in bucket_parts(self.folder, bucket):
            lazy = pl.scan_parquet(path)
            frame = (lazy if wanted is None else lazy.filter(wanted)).collect()
            out.append(frame if self.runs is None else remap(frame, self.runs))
        return out


@dataclass(frozen=True, slots=True, eq=False)
class MetricStore:
    """Every metric row (the results' columns plus ``metric``) in bucket files of layers.

    ``names`` maps each task to the metrics it has, sorted; ``schema`` is the columns every
    read returns (the union of the files' columns, key columns as Strings).
    """

    layers: tuple[StoreLayer, ...]
    names: Mapping[str, tuple[str, ...]]
    schema: Mapping[str, pl.DataType]

    def metrics_of(self, task: str) -> tuple[str, ...]:
        return tuple(self.names.get(task, ()))

    def rows(self, task: str, metric: str | None = None) -> pl.DataFrame:
        """One task's rows (of one metric, if given), duplicates resolved, in file order;
        key columns as Strings."""
        wanted = pl.col("task_name") == task
        if metric is not None:
            wanted &= pl.col("metric") == metric
        bucket = bucket_of(task)
        parts = [f for layer in self.layers for f in layer.read(bucket, wanted)]
        return _resolved(self._conform(parts))

    def frame(self) -> pl.DataFrame:
        """Every row, duplicates resolved, in file order: for tests and tools, not serving."""
        parts = [f for b in range(BUCKETS) for layer in self.layers for f in layer.read(b)]
        return _resolved(self._conform(parts))

    def _conform(self, parts: list[pl.DataFrame]) -> pl.DataFrame:
        """The parts as one frame with exactly the store's columns (plus ``__seq``)."""
        parts = [p for p in parts if p.height]
        if not parts:
            frame = pl.DataFrame(schema={**self.schema, SEQ: pl.Int64()})
        else:
            frame = pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]
        have = frame.schema
        return frame.select(
            *(
                pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c)
                for c, t in self.schema.items()
            ),
            pl.col(SEQ),
        )


def _resolved(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height == 0:
        return frame.drop(SEQ, strict=False)
    key = [c for c in RESULT_KEY if c in frame.columns]
    order = ["evaluated_at", SEQ] if "evaluated_at" in frame.columns else [SEQ]
    return frame.sort(order, nulls_last=False).unique(subset=key, keep="last").sort(SEQ).drop(SEQ)
