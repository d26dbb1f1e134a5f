"""A snapshot's results files, in path order, and the layers holding their rows.

Each file points at the layer and position its rows sit in (``layers``). From the index
come a snapshot's candidate rows (the layers' slices, concatenated as a fresh load
concatenates files), its metric store (each layer with the ranges of rows that still
count, renumbered in file order) and its metric names (counts of (task, metric) pairs over
files), all equal to a fresh load's. ``merge_layers`` moves live rows into one new layer.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from leaderboard_api.dataset.layers import (
    METRICS_DIR,
    FileRecord,
    Layer,
    SchemaList,
    union_schema,
    write_candidates,
    write_layer_doc,
    write_pairs,
)
from leaderboard_api.dataset.metric_store import (
    BUCKETS,
    FLUSH_ROWS,
    SEQ,
    MetricStore,
    Run,
    StoreLayer,
    store_schema,
)
from leaderboard_api.dataset.normalize import FileTotals
from leaderboard_api.dataset.validate import Catalogs, CatalogStamp, Signature

__all__ = [
    "FileIndex",
    "LiveFile",
    "counts_of",
    "merge_layers",
    "names_of",
    "update_counts",
]

_COUNTS_SCHEMA = {"task_name": pl.String(), "metric": pl.String(), "files": pl.Int64()}


@dataclass(frozen=True, slots=True)
class LiveFile:
    """One results file of a snapshot: where its rows are and how it looked when read."""

    rel: str
    #: ``validate.signature`` of the file when read (None: unknown, compare digests).
    signature: Signature | None
    layer: int
    index: int


def counts_of(pairs: Sequence[pl.DataFrame], *, sign: int = 1) -> pl.DataFrame:
    """(task_name, metric) -> number of files having it, from per-file pair rows."""
    if not pairs:
        return pl.DataFrame(schema=_COUNTS_SCHEMA)
    key = [pl.col(c).cast(pl.Categorical) for c in ("task_name", "metric")]
    frame = pl.concat([p.select(key) for p in pairs])
    return (
        frame.group_by("task_name", "metric")
        .agg(pl.len().cast(pl.Int64).alias("files"))
        .select(
            pl.col("task_name").cast(pl.String),
            pl.col("metric").cast(pl.String),
            pl.col("files") * sign,
        )
    )


def update_counts(
    counts: pl.DataFrame, minus: Sequence[pl.DataFrame], plus: Sequence[pl.DataFrame]
) -> tuple[pl.DataFrame, set[str]]:
    """``counts`` less the pairs of files gone, plus those of files read; and the tasks
    whose pairs changed."""
    delta = pl.concat([counts_of(minus, sign=-1), counts_of(plus)])
    delta = delta.group_by("task_name", "metric").agg(pl.col("files").sum())
    delta = delta.filter(pl.col("files") != 0)
    if delta.is_empty():
        return counts, set()
    merged = (
        counts.join(delta, on=["task_name", "metric"], how="full", coalesce=True, suffix="_d")
        .select(
            "task_name",
            "metric",
            (pl.col("files").fill_null(0) + pl.col("files_d").fill_null(0)).alias("files"),
        )
        .filter(pl.col("files") > 0)
    )
    return merged, set(delta.get_column("task_name").to_list())


def names_of(counts: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    """Task -> its metrics, sorted, from pair counts."""
    grouped = counts.group_by("task_name").agg(pl.col("metric"))
    return {t: tuple(sorted(m)) for t, m in sorted(grouped.iter_rows())}


@dataclass(frozen=True, slots=True, eq=False)
class FileIndex:
    """A snapshot's results files, in path order, and the layers holding their rows."""

    files: tuple[LiveFile, ...]
    layers: tuple[Layer, ...]
    #: The main metrics (``tasks.jsonl``) the candidate rows were chosen with.
    main: Mapping[str, str]
    #: (task_name, metric) -> how many files have it (``files``); empty without metrics.
    pair_counts: pl.DataFrame
    #: The catalogs as read and the stamp of their files then (in memory only: a load
    #: whose catalog files have the same stamp reuses them instead of parsing again).
    catalogs: Catalogs | None = None
    catalog_stamp: CatalogStamp | None = None
    #: ``names()`` when known (else computed from ``pair_counts``).
    metric_names: Mapping[str, tuple[str, ...]] | None = None

    def record(self, live: LiveFile) -> FileRecord:
        return self.layers[live.layer].files[live.index]

    def records(self) -> Iterator[FileRecord]:
        return (self.record(f) for f in self.files)

    def totals(self) -> FileTotals:
        records = list(self.records())
        return FileTotals(
            files=len(records),
            rows_read=sum(r.rows for r in records),
            nan_scores=sum(r.nans for r in records),
        )

    @property
    def has_metrics(self) -> bool:
        return any(r.metric for r in self.records())

    def schemas(self, *, metric_only: bool = False) -> list[pl.Schema]:
        """The live files' distinct schemas, in order of first appearance."""
        seen: set[tuple[int, int]] = set()
        out = []
        for live in self.files:
            record = self.record(live)
            key = (live.layer, record.schema)
            if (record.metric or not metric_only) and key not in seen:
                seen.add(key)
                out.append(self.layers[live.layer].schemas[record.schema])
        return out

    def candidate_schema(self) -> pl.Schema:
        """The columns of the candidate rows, as a fresh load's concatenation has them."""
        return union_schema(self.schemas())

    def names(self) -> dict[str, tuple[str, ...]]:
        """Task -> its metrics, sorted (``MetricStore.names``)."""
        if self.metric_names is not None:
            return dict(self.metric_names)
        return names_of(self.pair_counts)

    def _runs(self) -> Iterator[tuple[int, int, int]]:
        """(layer, first index, last index + 1) of consecutive live files of one layer."""
        run: list[int] | None = None
        for live in self.files:
            if run is not None and run[0] == live.layer and run[2] == live.index:
                run[2] += 1
                continue
            if run is not None:
                yield run[0], run[1], run[2]
            run = [live.layer, live.index, live.index + 1]
        if run is not None:
            yield run[0], run[1], run[2]

    def candidates(self, loaded: Mapping[int, pl.DataFrame] | None = None) -> pl.DataFrame:
        """Every live file's candidate rows in file order, as a fresh load concatenates them
        (``loaded``: layers' candidate frames already in memory, by layer index)."""
        frames = dict(loaded or {})
        pieces = []
        for layer_ix, first, end in self._runs():
            layer = self.layers[layer_ix]
            if layer_ix not in frames:
                frames[layer_ix] = layer.candidates()
            start = layer.cand_starts[first]
            stop = layer.cand_starts[end - 1] + layer.files[end - 1].candidates
            if stop > start:
                pieces.append(frames[layer_ix].slice(start, stop - start))
        want = self.candidate_schema()
        if not pieces:
            return pl.DataFrame(schema=want)
        frame = pl.concat(pieces, how="diagonal_relaxed") if len(pieces) > 1 else pieces[0]
        if frame.schema != want:
            frame = frame.select(
                pl.col(c).cast(t) if c in frame.schema else pl.lit(None, dtype=t).alias(c)
                for c, t in want.items()
            )
        return frame

    def layer_runs(self) -> list[list[Run]]:
        """Per layer, which of its metric rows count and where they go in file order."""
        runs: list[list[Run]] = [[] for _ in self.layers]
        at = 0
        for live in self.files:
            layer = self.layers[live.layer]
            record = layer.files[live.index]
            n = record.metric_rows
            if n:
                start = layer.seq_starts[live.index]
                shift = at - start
                mine = runs[live.layer]
                if mine and mine[-1].end == start and mine[-1].shift == shift:
                    mine[-1] = Run(mine[-1].start, start + n, shift)
                else:
                    mine.append(Run(start, start + n, shift))
                at += n
        return runs

    def store(self) -> MetricStore | None:
        """The snapshot's metric store (None when no file has a ``metric`` column)."""
        if not self.has_metrics:
            return None
        layers = []
        for layer, runs in zip(self.layers, self.layer_runs(), strict=True):
            if not runs:
                continue
            whole = len(runs) == 1 and runs[0] == Run(0, layer.metric_rows, 0)
            layers.append(
                StoreLayer(layer.metrics_folder, None if whole else tuple(runs), owner=layer)
            )
        schema = union_schema(store_schema(s) for s in self.schemas(metric_only=True))
        return MetricStore(layers=tuple(layers), names=self.names(), schema=dict(schema))

    def dead_rows(self) -> int:
        """Rows kept in the layers that no live file owns any more."""
        stored = sum(r.rows for layer in self.layers for r in layer.files)
        return stored - sum(r.rows for r in self.records())


def merge_layers(index: FileIndex, chosen: set[int], folder: Path, *, owned: bool) -> FileIndex:
    """``index`` with the live files of the ``chosen`` layers moved into one new layer at
    ``folder`` (dead rows are left behind): compaction."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _merge(index, chosen, folder, owned=owned)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _merge(index: FileIndex, chosen: set[int], folder: Path, *, owned: bool) -> FileIndex:
    moving = [live for live in index.files if live.layer in chosen]
    schemas = SchemaList()
    records: list[FileRecord] = []
    new_index: dict[tuple[int, int], int] = {}
    for live in moving:
        old = index.record(live)
        schema = index.layers[live.layer].schemas[old.schema]
        new_index[(live.layer, live.index)] = len(records)
        records.append(dataclasses.replace(old, schema=schemas.index(schema)))
    # The moving files alone, as their own index: its candidates and runs are the new layer's.
    alone = FileIndex(
        files=tuple(live for live in moving),
        layers=index.layers,
        main=index.main,
        pair_counts=index.pair_counts,
    )
    cands = alone.candidates()
    write_candidates(folder, cands)
    runs = alone.layer_runs()
    if any(r.metric for r in records):
        metrics = folder / METRICS_DIR
        metrics.mkdir()
        for bucket in range(BUCKETS):
            parts = [
                f
                for layer_ix in sorted(chosen)
                for f in StoreLayer(
                    index.layers[layer_ix].metrics_folder, tuple(runs[layer_ix])
                ).read(bucket)
                if f.height
            ]
            if parts:
                frame = pl.concat(parts, how="diagonal_relaxed").sort(SEQ)
                frame.write_parquet(
                    metrics / f"bucket-{bucket:02d}.parquet",
                    compression="lz4",
                    row_group_size=FLUSH_ROWS,
                )
    pairs = []
    for layer_ix in sorted(chosen):
        wanted = [live.index for live in moving if live.layer == layer_ix]
        got = index.layers[layer_ix].pairs_of(wanted)
        mapping = {i: new_index[(layer_ix, i)] for i in wanted}
        pairs.append(
            got.with_columns(pl.col("file").replace_strict(mapping, return_dtype=pl.UInt32))
        )
    write_pairs(folder, [pl.concat(pairs).sort("file", "task_name", "metric")] if pairs else [])
    write_layer_doc(folder, records, schemas.items)
    merged = Layer.make(folder, records, schemas.items, owned=owned)

    kept = [i for i in range(len(index.layers)) if i not in chosen]
    position = {old: new for new, old in enumerate(kept)}
    new_layer = len(kept)
    files = tuple(
        LiveFile(
            live.rel,
            live.signature,
            new_layer,
            new_index[(live.layer, live.index)],
        )
        if live.layer in chosen
        else LiveFile(live.rel, live.signature, position[live.layer], live.index)
        for live in index.files
    )
    return dataclasses.replace(
        index, files=files, layers=(*(index.layers[i] for i in kept), merged)
    )
