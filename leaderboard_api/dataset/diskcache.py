"""The disk cache: one entry per snapshot id, layers shared between entries, a pointer per source.

```
CACHE_DIR/
  <id>.c<CONTRACT_VERSION>.l<CACHE_LAYOUT>/   one entry per snapshot id
    catalog.json          catalogs, menu, warnings, stats, metric names
    results.parquet       Snapshot.results (and revisions.parquet: Snapshot.all_revisions)
    index.json            the results files and the layers holding their rows (FileIndex)
    pair_counts.parquet   (task, metric) -> files having it
  layers/<name>/          rows of some results files (see ``layers``), shared by entries
  latest/<hash>.json      the last entry loaded for a source (``--data``)
```

An entry written by an incremental load references the older layers it reuses and adds
one small layer of its own, so it costs about what it changed. Entries are written into a
``.tmp-*`` folder and renamed into place (a reader sees all of an entry or none); an entry
that cannot be read is moved aside and deleted, and the dataset is loaded again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from pydantic import ValidationError

from leaderboard_api.dataset.contract import (
    CONTRACT_VERSION,
    BenchmarkInfo,
    CatalogEntry,
    DatasetInfo,
    DatasetWarning,
    LoadStats,
    MenuEntry,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.file_index import FileIndex, LiveFile
from leaderboard_api.dataset.layers import LAYER_FILE, Layer
from leaderboard_api.dataset.normalize import stats_files
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource

__all__ = [
    "CACHE_LAYOUT",
    "cache_entry",
    "discard",
    "latest_index",
    "new_layer_folder",
    "read_cache",
    "read_index",
    "remember",
    "write_cache",
    "write_entry",
    "write_index",
]

log = logging.getLogger(__name__)

#: Bumped when an entry's files change shape; part of entry names (old entries are not found).
CACHE_LAYOUT = 2
LAYERS_DIR = "layers"
LATEST_DIR = "latest"
INDEX_FILE = "index.json"
COUNTS_FILE = "pair_counts.parquet"
_READ_ERRORS = (
    OSError,
    KeyError,
    TypeError,
    ValueError,
    IndexError,
    pl.exceptions.PolarsError,
    ValidationError,
)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def cache_entry(cache_dir: Path, snapshot_id: str) -> Path:
    return cache_dir / f"{_safe(snapshot_id)}.c{CONTRACT_VERSION}.l{CACHE_LAYOUT}"


def new_layer_folder(cache_dir: Path, snapshot_id: str) -> Path:
    """A fresh folder name for a layer under ``cache_dir/layers/`` (not created)."""
    return cache_dir / LAYERS_DIR / f"{_safe(snapshot_id)[:48]}-{uuid.uuid4().hex[:12]}"


def _layer_ref(cache_dir: Path, folder: Path) -> str | None:
    """The layer's name relative to ``cache_dir`` when it is one of the cache's layers."""
    try:
        inside = folder.resolve().parent == (cache_dir / LAYERS_DIR).resolve()
    except OSError:
        return None
    if inside and (folder / LAYER_FILE).is_file():
        return f"{LAYERS_DIR}/{folder.name}"
    return None


def _json_list(items: Iterable[CatalogEntry]) -> bytes:
    # Each entry serialized by pydantic straight to JSON: far faster than dumping to dicts.
    return b"[" + b",".join(e.__pydantic_serializer__.to_json(e) for e in items) + b"]"


def _dump_catalog(snapshot: Snapshot) -> bytes:
    rest: dict[str, Any] = {
        "id": snapshot.id,
        "source": snapshot.source,
        "updated_at": snapshot.updated_at.isoformat(),
        "dataset": snapshot.dataset.model_dump(mode="json"),
        "metric_names": (
            None
            if snapshot.metrics is None
            else {t: list(m) for t, m in snapshot.metrics.names.items()}
        ),
        "warnings": [[w.message, w.file] for w in snapshot.warnings],
        "stats": {
            "files": snapshot.stats.files,
            "rows_read": snapshot.stats.rows_read,
            "rows": snapshot.stats.rows,
            "nan_scores": snapshot.stats.nan_scores,
            "duplicates_dropped": snapshot.stats.duplicates_dropped,
            "revisions_dropped": snapshot.stats.revisions_dropped,
            "extra": dict(snapshot.stats.extra),
        },
    }
    try:
        tail = orjson.dumps(rest)
    except TypeError:  # e.g. an integer beyond 64 bits in the dataset's extras
        tail = json.dumps(rest).encode()
    return b"".join(
        [
            b'{"models":',
            _json_list(snapshot.models.values()),
            b',"tasks":',
            _json_list(snapshot.tasks.values()),
            b',"benchmarks":',
            _json_list(snapshot.benchmarks.values()),
            b',"menu":',
            _json_list(snapshot.menu),
            b",",
            tail[1:],
        ]
    )


def _dump_index(index: FileIndex, refs: list[str], source: str) -> bytes:
    doc = {
        "version": 1,
        "source": source,
        "layers": refs,
        "main": dict(index.main),
        "files": [
            [f.rel, None if f.signature is None else list(f.signature), f.layer, f.index]
            for f in index.files
        ],
    }
    return orjson.dumps(doc)


def _layer_refs(
    index: FileIndex, cache_dir: Path, snapshot_id: str, copies: list[Path]
) -> list[str]:
    """The index's layers as names under ``cache_dir``; layers living elsewhere (temporary
    ones, another cache's) are copied in first (and listed in ``copies``)."""
    refs = []
    for layer in index.layers:
        ref = _layer_ref(cache_dir, layer.folder)
        if ref is None:
            target = new_layer_folder(cache_dir, snapshot_id)
            copies.append(target)
            layer.copy_to(target)
            ref = f"{LAYERS_DIR}/{target.name}"
        refs.append(ref)
    return refs


def write_index(snapshot: Snapshot, cache_dir: Path) -> Path:
    """Point the snapshot's entry at the layers its file index now uses (after compaction):
    one atomic replace of ``index.json``; writes the whole entry when there is none."""
    entry = cache_entry(cache_dir, snapshot.id)
    index = snapshot.file_index
    if index is None or not entry.is_dir():
        return write_cache(snapshot, cache_dir)
    copies: list[Path] = []
    try:
        refs = _layer_refs(index, cache_dir, snapshot.id, copies)
        tmp = entry / f".tmp-{INDEX_FILE}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.write_bytes(_dump_index(index, refs, snapshot.source))
        os.replace(tmp, entry / INDEX_FILE)
    except BaseException:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)
        raise
    return entry


def write_cache(snapshot: Snapshot, cache_dir: Path) -> Path:
    """Write the normalized frames and catalogs; atomic: a reader sees all of it or nothing."""
    return write_entry(snapshot, cache_dir)[0]


def write_entry(snapshot: Snapshot, cache_dir: Path) -> tuple[Path, bool]:
    """``write_cache``, also saying whether this call wrote the entry (False: it was there,
    or another process renamed its copy into place first)."""
    final = cache_entry(cache_dir, snapshot.id)
    if final.is_dir():
        return final, False
    index = snapshot.file_index
    if index is None and snapshot.metrics is not None:
        msg = "a snapshot with metrics but no file index cannot be cached"
        raise ValueError(msg)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    copies: list[Path] = []
    won = False
    try:
        if index is not None:
            refs = _layer_refs(index, cache_dir, snapshot.id, copies)
            (tmp / INDEX_FILE).write_bytes(_dump_index(index, refs, snapshot.source))
            index.pair_counts.write_parquet(tmp / COUNTS_FILE, compression="lz4")
        snapshot.results.write_parquet(tmp / "results.parquet", compression="lz4", statistics=False)
        if snapshot.all_revisions is not None:
            snapshot.all_revisions.write_parquet(
                tmp / "revisions.parquet", compression="lz4", statistics=False
            )
        (tmp / "catalog.json").write_bytes(_dump_catalog(snapshot))
        try:
            os.rename(tmp, final)
            won = True
        except OSError:
            if not final.is_dir():  # another process won the race: theirs is as good
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not won:
            for copy in copies:
                shutil.rmtree(copy, ignore_errors=True)
    return final, won


def discard(entry: Path) -> None:
    """Move a bad cache entry aside (one atomic rename) and delete it, so it is rebuilt."""
    trash = entry.with_name(f".bad-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(entry, trash)
    except OSError:
        return  # already gone: another process discarded it
    shutil.rmtree(trash, ignore_errors=True)


def read_index(cache_dir: Path, entry: Path) -> FileIndex | None:
    """The file index an entry records (None: it has none); raises when it is damaged."""
    path = entry / INDEX_FILE
    if not path.is_file():
        return None
    doc = orjson.loads(path.read_bytes())
    if doc.get("version") != 1:
        raise ValueError(f"{path}: unknown version {doc.get('version')!r}")
    layers = tuple(Layer.open(cache_dir / ref) for ref in doc["layers"])
    files = []
    for rel, sig, layer, position in doc["files"]:
        if layers[layer].files[position].rel != rel:
            raise ValueError(f"{path}: {rel} is not where the index says")
        files.append(LiveFile(rel, None if sig is None else tuple(sig), layer, position))
    main = doc["main"]
    if not isinstance(main, dict):
        raise TypeError(f"{path}: main is not an object")
    counts = pl.read_parquet(entry / COUNTS_FILE)
    return FileIndex(files=tuple(files), layers=layers, main=main, pair_counts=counts)


def read_cache(cache_dir: Path, source: ResolvedSource) -> Snapshot | None:
    """The cached Snapshot for ``source.snapshot_id``; a corrupt entry is removed (and None)."""
    entry = cache_entry(cache_dir, source.snapshot_id)
    if not entry.is_dir():
        return None
    try:
        doc = orjson.loads((entry / "catalog.json").read_bytes())
        results = pl.read_parquet(entry / "results.parquet")
        index = read_index(cache_dir, entry)
        names = doc["metric_names"]
        metrics = None
        if names is not None:
            if index is None:
                raise FileNotFoundError(entry / INDEX_FILE)
            known = {t: tuple(m) for t, m in names.items()}
            index = dataclasses.replace(index, metric_names=known)
            metrics = index.store()
            if metrics is None:
                raise ValueError(f"{entry}: metric names but no file with metrics")
        revisions_file = entry / "revisions.parquet"
        all_revisions = pl.read_parquet(revisions_file) if revisions_file.is_file() else None
        dataset = DatasetInfo.model_validate(doc["dataset"])
        models = {m["name"]: ModelInfo.model_validate(m) for m in doc["models"]}
        tasks = {t["name"]: TaskInfo.model_validate(t) for t in doc["tasks"]}
        benchmarks = {b["name"]: BenchmarkInfo.model_validate(b) for b in doc["benchmarks"]}
        menu = tuple(MenuEntry.model_validate(g) for g in doc["menu"])
        warnings = tuple(DatasetWarning(m, f) for m, f in doc["warnings"])
        stats = LoadStats(**doc["stats"])
    except _READ_ERRORS as exc:
        log.warning("discarding unreadable disk cache %s: %s", entry, exc)
        discard(entry)
        return None
    return Snapshot(
        id=source.snapshot_id,
        source=source.spec,
        results=results,
        metrics=metrics,
        models=models,
        tasks=tasks,
        benchmarks=benchmarks,
        menu=menu,
        loaded_at=datetime.now(UTC),
        updated_at=source.updated_at,
        warnings=warnings,
        stats=stats,
        dataset=dataset,
        all_revisions=all_revisions,
        stats_files=stats_files(source.path, tasks),
        root=str(source.path),
        file_index=index,
    )


def _pointer(cache_dir: Path, source: ResolvedSource) -> Path:
    key = hashlib.sha256(source.spec.encode()).hexdigest()[:32]
    return cache_dir / LATEST_DIR / f"{key}.json"


def remember(cache_dir: Path, source: ResolvedSource) -> None:
    """Note ``source``'s entry as the last one loaded for its ``--data`` (for ``latest_index``)."""
    pointer = _pointer(cache_dir, source)
    body = orjson.dumps(
        {"spec": source.spec, "entry": cache_entry(cache_dir, source.snapshot_id).name}
    )
    try:
        if pointer.is_file() and pointer.read_bytes() == body:
            return
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(f".tmp-{pointer.name}-{os.getpid()}-{time.monotonic_ns()}")
        tmp.write_bytes(body)
        os.replace(tmp, pointer)
    except OSError as exc:
        log.warning("could not note the last snapshot of %s: %s", source.spec, exc)


def latest_index(cache_dir: Path, source: ResolvedSource) -> FileIndex | None:
    """The file index of the last entry loaded for ``source.spec``, when it is readable."""
    pointer = _pointer(cache_dir, source)
    try:
        doc = orjson.loads(pointer.read_bytes())
        if doc.get("spec") != source.spec:
            return None
        entry = cache_dir / str(doc["entry"])
        if not entry.is_dir():
            return None
        return read_index(cache_dir, entry)
    except FileNotFoundError:
        return None
    except _READ_ERRORS as exc:
        log.info("not loading incrementally from the last entry of %s: %s", source.spec, exc)
        return None
