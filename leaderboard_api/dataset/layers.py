"""Layers: folders holding what some results files gave a load, and a snapshot's index of them.

A full load reads every results file into one layer; an incremental load reads only the
files that changed into a new layer and reuses the older layers' rows of the others. A
layer folder holds, for its files in order:

``layer.json``          one record per file (path, content digest, row counts, columns)
``candidates.parquet``  the main-candidate rows (what normalization starts from)
``pairs.parquet``       each file's (task, metric) pairs (so removing a file updates names)
``metrics/``            every metric row, bucketed by task (``metric_store``)

``file_index.FileIndex`` says which layer holds each of a snapshot's files.
"""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from leaderboard_api.dataset.metric_store import MetricWriter
from leaderboard_api.dataset.normalize import main_candidates
from leaderboard_api.dataset.validate import ResultFile

__all__ = [
    "CANDIDATES_FILE",
    "LAYER_FILE",
    "METRICS_DIR",
    "PAIRS_FILE",
    "PAIRS_SCHEMA",
    "FileRecord",
    "Layer",
    "LayerWriter",
    "SchemaList",
    "union_schema",
    "write_candidates",
    "write_layer_doc",
    "write_pairs",
]

LAYER_FILE = "layer.json"
CANDIDATES_FILE = "candidates.parquet"
PAIRS_FILE = "pairs.parquet"
METRICS_DIR = "metrics"
#: Bumped when a layer folder's content changes shape (older layers are then not reused).
LAYER_VERSION = 1
#: Columns of ``pairs.parquet``.
PAIRS_SCHEMA = {"file": pl.UInt32(), "task_name": pl.Categorical(), "metric": pl.Categorical()}


def _schema_text(schema: pl.Schema) -> str:
    """A schema as text (an empty Arrow IPC frame: every polars dtype round-trips)."""
    return base64.b64encode(pl.DataFrame(schema=schema).write_ipc(None).getvalue()).decode()


def _schema_of(text: str) -> pl.Schema:
    return pl.read_ipc(io.BytesIO(base64.b64decode(text))).schema


def union_schema(schemas: Iterable[Mapping[str, pl.DataType]]) -> pl.Schema:
    """The columns ``pl.concat(frames, how="diagonal_relaxed")`` gives frames of these
    schemas: first appearance order, common supertypes."""
    distinct: list[Mapping[str, pl.DataType]] = []
    for schema in schemas:
        if not any(schema == seen for seen in distinct):
            distinct.append(schema)
    if not distinct:
        return pl.Schema()
    if len(distinct) == 1:
        return pl.Schema(distinct[0])
    empty = [pl.DataFrame(schema=s) for s in distinct]
    return pl.concat(empty, how="diagonal_relaxed").schema


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What one results file gave its layer."""

    rel: str
    digest: str
    #: Rows read (every metric).
    rows: int
    nans: int
    #: Main-candidate rows (``normalize.main_candidates``).
    candidates: int
    #: The file has a ``metric`` column: its rows are in the layer's metric buckets.
    metric: bool
    #: Index into the layer's schemas: the file's columns after validation.
    schema: int

    @property
    def metric_rows(self) -> int:
        return self.rows if self.metric else 0


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class Layer:
    """One layer folder and its file records (see the module docstring)."""

    folder: Path
    files: tuple[FileRecord, ...]
    schemas: tuple[pl.Schema, ...]
    #: Offsets of each file's rows in ``candidates.parquet`` and in the metric buckets.
    cand_starts: tuple[int, ...] = field(default=(), repr=False)
    seq_starts: tuple[int, ...] = field(default=(), repr=False)
    #: The files of ``metrics/`` as written.
    metric_files: tuple[str, ...] = field(default=(), repr=False)
    _finalizer: weakref.finalize[..., None] | None = field(default=None, repr=False)

    @classmethod
    def make(
        cls,
        folder: Path,
        files: Sequence[FileRecord],
        schemas: Sequence[pl.Schema],
        *,
        owned: bool,
    ) -> Layer:
        cand, seq, at_cand, at_seq = [], [], 0, 0
        for record in files:
            cand.append(at_cand)
            seq.append(at_seq)
            at_cand += record.candidates
            at_seq += record.metric_rows
        written = tuple(sorted(p.name for p in (folder / METRICS_DIR).glob("*.parquet")))
        layer = cls(folder, tuple(files), tuple(schemas), tuple(cand), tuple(seq), written)
        if owned:
            finalizer = weakref.finalize(layer, shutil.rmtree, folder, True)
            object.__setattr__(layer, "_finalizer", finalizer)
        return layer

    @classmethod
    def open(cls, folder: Path) -> Layer:
        """A layer written earlier (not owned: it stays when this object goes); raises
        OSError or ValueError when it is missing or damaged."""
        doc = orjson.loads((folder / LAYER_FILE).read_bytes())
        if doc.get("version") != LAYER_VERSION:
            msg = f"layer {folder} has version {doc.get('version')}, not {LAYER_VERSION}"
            raise ValueError(msg)
        files = [FileRecord(**f) for f in doc["files"]]
        schemas = [_schema_of(s) for s in doc["schemas"]]
        if any(not 0 <= f.schema < len(schemas) for f in files):
            raise ValueError(f"layer {folder}: a file names a schema it does not have")
        layer = cls.make(folder, files, schemas, owned=False)
        if layer.metric_files != tuple(doc["metric_files"]):
            raise FileNotFoundError(f"layer {folder}: metrics/ is not as it was written")
        layer.check()
        return layer

    def check(self) -> None:
        """Raise FileNotFoundError unless every file of the layer is there (a bucket gone
        would silently lose rows: the whole layer is refused instead)."""
        needed = [CANDIDATES_FILE, PAIRS_FILE, *(f"{METRICS_DIR}/{n}" for n in self.metric_files)]
        missing = [name for name in needed if not (self.folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"layer {self.folder} lacks {', '.join(missing[:3])}")

    @property
    def temporary(self) -> bool:
        """The folder is removed when this object is collected (else it is a cache's)."""
        return self._finalizer is not None

    @property
    def metrics_folder(self) -> Path:
        return self.folder / METRICS_DIR

    @property
    def metric_rows(self) -> int:
        return sum(f.metric_rows for f in self.files)

    def candidates(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / CANDIDATES_FILE)

    def pairs_of(self, indices: Iterable[int]) -> pl.DataFrame:
        """The (file, task_name, metric) pairs of the files at ``indices``."""
        wanted = pl.Series(sorted(set(indices)), dtype=pl.UInt32)
        path = self.folder / PAIRS_FILE
        if wanted.is_empty() or not path.is_file():
            return pl.DataFrame(schema=PAIRS_SCHEMA)
        return pl.scan_parquet(path).filter(pl.col("file").is_in(wanted.implode())).collect()

    def copy_to(self, folder: Path) -> Layer:
        """This layer's files copied to ``folder`` (not owned)."""
        shutil.copytree(self.folder, folder)
        return Layer.open(folder)


def write_layer_doc(
    folder: Path, files: Sequence[FileRecord], schemas: Sequence[pl.Schema]
) -> None:
    doc = {
        "version": LAYER_VERSION,
        "files": [
            {
                "rel": f.rel,
                "digest": f.digest,
                "rows": f.rows,
                "nans": f.nans,
                "candidates": f.candidates,
                "metric": f.metric,
                "schema": f.schema,
            }
            for f in files
        ],
        "schemas": [_schema_text(s) for s in schemas],
        "metric_files": sorted(p.name for p in (folder / METRICS_DIR).glob("*.parquet")),
    }
    # Written last: a folder without it is a layer that never finished.
    (folder / LAYER_FILE).write_bytes(orjson.dumps(doc))


def write_candidates(folder: Path, frame: pl.DataFrame) -> None:
    frame.write_parquet(folder / CANDIDATES_FILE, compression="lz4", statistics=False)


def write_pairs(folder: Path, parts: Sequence[pl.DataFrame]) -> None:
    pairs = pl.concat(parts) if parts else pl.DataFrame(schema=PAIRS_SCHEMA)
    pairs.select(pl.col(c).cast(t) for c, t in PAIRS_SCHEMA.items()).write_parquet(
        folder / PAIRS_FILE, compression="lz4", row_group_size=65_536
    )


class SchemaList:
    """Distinct schemas in first-seen order."""

    def __init__(self) -> None:
        self.items: list[pl.Schema] = []

    def index(self, schema: pl.Schema) -> int:
        for i, seen in enumerate(self.items):
            if seen == schema:
                return i
        self.items.append(schema)
        return len(self.items) - 1


class LayerWriter:
    """Reads validated results files into a new layer folder, in the order they are added."""

    def __init__(self, folder: Path, main: Mapping[str, str], *, owned: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.main = dict(main)
        self.owned = owned
        self._metrics: MetricWriter | None = None
        self._records: list[FileRecord] = []
        self._schemas = SchemaList()
        self._candidates: list[pl.DataFrame] = []
        self._pairs: list[pl.DataFrame] = []

    def add(self, file: ResultFile) -> None:
        frame = file.frame
        metric = "metric" in frame.columns
        if metric:
            if self._metrics is None:
                self._metrics = MetricWriter(self.folder / METRICS_DIR)
            pairs = self._metrics.add(frame)
            if pairs.height:
                index = pl.lit(len(self._records), dtype=pl.UInt32).alias("file")
                # Categorical: the whole MTEB data has 6 million (file, task, metric) pairs.
                self._pairs.append(
                    pairs.select(
                        index, *(pl.col(c).cast(pl.Categorical) for c in ("task_name", "metric"))
                    )
                )
            candidates = main_candidates(frame, self.main)
        else:
            candidates = frame
        self._candidates.append(candidates)
        self._records.append(
            FileRecord(
                rel=file.rel,
                digest=file.digest,
                rows=frame.height,
                nans=file.nans,
                candidates=candidates.height,
                metric=metric,
                schema=self._schemas.index(frame.schema),
            )
        )

    def finish(self) -> tuple[Layer, pl.DataFrame]:
        """The finished layer and its candidate rows (in memory, as written)."""
        if self._metrics is not None:
            self._metrics.close()
        frames = self._candidates
        if frames:
            candidates = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        else:
            candidates = pl.DataFrame()
        write_candidates(self.folder, candidates)
        write_pairs(self.folder, self._pairs)
        write_layer_doc(self.folder, self._records, self._schemas.items)
        layer = Layer.make(self.folder, self._records, self._schemas.items, owned=self.owned)
        return layer, candidates

    @property
    def pairs(self) -> list[pl.DataFrame]:
        return self._pairs

    def abort(self) -> None:
        """Remove what was written (a failed load leaves nothing behind)."""
        if self._metrics is not None:
            with contextlib.suppress(OSError, ValueError):  # the folder goes anyway
                self._metrics.close()
        shutil.rmtree(self.folder, ignore_errors=True)
