"""Load a dataset into a Snapshot: from the disk cache, from a previous snapshot, or afresh.

The work is split by concern: ``validate`` reads and checks files, ``layers`` keeps what
each results file gave a load, ``incremental`` reuses it for the files that did not change,
``normalize`` turns the rows and catalogs into a Snapshot, ``diskcache`` stores snapshots by
id. This module only chooses the path and ties them together.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from leaderboard_api.dataset.diskcache import (
    LAYERS_DIR,
    cache_entry,
    latest_index,
    new_layer_folder,
    read_cache,
    remember,
    write_cache,
    write_entry,
    write_index,
)
from leaderboard_api.dataset.file_index import (
    FileIndex,
    LiveFile,
    counts_of,
    merge_layers,
    names_of,
)
from leaderboard_api.dataset.incremental import Timings, update
from leaderboard_api.dataset.incremental import needs_compaction as compaction_due
from leaderboard_api.dataset.layers import Layer, LayerWriter
from leaderboard_api.dataset.normalize import normalize
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource
from leaderboard_api.dataset.validate import (
    catalog_stamp,
    read_catalogs,
    read_result_file,
    result_files,
)

__all__ = [
    "Timings",
    "build_snapshot",
    "cache_entry",
    "compact",
    "load_snapshot",
    "needs_compaction",
    "read_cache",
    "release_memory",
    "result_files",
    "write_cache",
]

log = logging.getLogger(__name__)

NewFolder = Callable[[], tuple[Path, bool]]


def _temporary_folder() -> tuple[Path, bool]:
    return Path(tempfile.mkdtemp(prefix="leaderboard-layer-")), True


def _cache_folder(cache_dir: Path, snapshot_id: str) -> NewFolder:
    return lambda: (new_layer_folder(cache_dir, snapshot_id), False)


def _fresh(source: ResolvedSource, new_folder: NewFolder) -> Snapshot:
    """Read, validate and normalize every file of ``source`` into a new layer."""
    root = source.path
    stamp = catalog_stamp(root)
    catalogs = read_catalogs(root)
    paths = result_files(root)
    folder, owned = new_folder()
    writer = LayerWriter(folder, catalogs.main_metrics, owned=owned)
    live: list[LiveFile] = []
    try:
        for position, path in enumerate(paths):
            rel = path.relative_to(root).as_posix()
            file = read_result_file(path, rel)
            live.append(LiveFile(rel, file.signature, 0, position))
            writer.add(file)
            del file
        layer, candidates = writer.finish()
        counts = counts_of(writer.pairs)
        index = FileIndex(
            files=tuple(live),
            layers=(layer,),
            main=catalogs.main_metrics,
            pair_counts=counts,
            metric_names=names_of(counts),
            catalogs=catalogs,
            catalog_stamp=stamp,
        )
        del writer
        return normalize(
            source,
            catalogs,
            candidates,
            metrics=index.store(),
            totals=index.totals(),
            file_index=index,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def build_snapshot(source: ResolvedSource) -> Snapshot:
    """Parse and validate ``source.path`` into a Snapshot; raises DatasetError on bad input."""
    return _fresh(source, _temporary_folder)


def load_snapshot(
    source: ResolvedSource,
    *,
    cache_dir: Path | None = None,
    previous: Snapshot | None = None,
    timings: Timings | None = None,
) -> Snapshot:
    """The Snapshot for ``source``: from the disk cache when present, else built.

    With ``previous`` (the snapshot being served, of any version of the same dataset), or
    else the last entry the disk cache holds for ``source.spec``, only the results files
    that changed are read; the result equals a fresh load's. ``timings``, when given, is
    filled with where the time went. Raises DatasetError on bad input (``previous`` is
    left as it was).
    """
    timings = timings if timings is not None else Timings()
    if cache_dir is not None:
        cached = read_cache(cache_dir, source)
        if cached is not None:
            remember(cache_dir, source)
            timings.tick("disk cache")
            return cached
    base = previous.file_index if previous is not None else None
    if base is None and cache_dir is not None:
        base = latest_index(cache_dir, source)
    new_folder = (
        _temporary_folder if cache_dir is None else _cache_folder(cache_dir, source.snapshot_id)
    )
    snapshot = None
    try:
        if base is not None:
            # A start (no previous) may also merge layers full of dead rows; a reload must
            # stay quick (``compact`` does that off the reload path).
            snapshot = update(
                source, base, new_folder=new_folder, timings=timings, compact=previous is None
            )
        incremental = snapshot is not None
        if snapshot is None:
            snapshot = _fresh(source, new_folder)
            timings.files_read = snapshot.stats.files
            timings.tick("full load")
    except BaseException:
        if cache_dir is not None:  # a failed load leaves no trace, not even an empty folder
            with contextlib.suppress(OSError):
                (cache_dir / LAYERS_DIR).rmdir()
        raise
    if cache_dir is not None:
        snapshot = _cache(snapshot, source, cache_dir, base=base, reread=not incremental)
        timings.tick("write disk cache")
    release_memory(collect=not incremental)
    timings.tick("release memory")
    how = "incremental" if incremental else "full"
    log.info("%s load of %s: %s", how, source.snapshot_id[:12], timings.render())
    return snapshot


def _cache(
    snapshot: Snapshot,
    source: ResolvedSource,
    cache_dir: Path,
    *,
    base: FileIndex | None,
    reread: bool,
) -> Snapshot:
    """Write ``snapshot``'s entry; the snapshot to serve (read back after a full load)."""
    try:
        entry, won = write_entry(snapshot, cache_dir)
    except OSError as exc:
        log.warning("could not write disk cache under %s: %s", cache_dir, exc)
        return snapshot
    remember(cache_dir, source)
    if won and not reread:
        return snapshot
    # After a full load, serve what the cache holds: compact frames (the build's
    # intermediate ones are freed). When another process wrote the entry first, serve
    # theirs and drop the layers this load wrote.
    cached = read_cache(cache_dir, source)
    if cached is None:
        return snapshot
    if not won:
        mine = _own_layers(snapshot, base)
        del snapshot
        for layer in mine:
            shutil.rmtree(layer.folder, ignore_errors=True)
    elif cached.file_index is not None and snapshot.file_index is not None:
        # Keep the parsed catalogs: the next incremental load need not parse them again.
        built = snapshot.file_index
        index = dataclasses.replace(
            cached.file_index, catalogs=built.catalogs, catalog_stamp=built.catalog_stamp
        )
        cached = dataclasses.replace(cached, file_index=index)
    log.debug("serving %s from %s", source.snapshot_id[:12], entry)
    return cached


def _own_layers(snapshot: Snapshot, base: FileIndex | None) -> list[Layer]:
    """The cache layers ``snapshot`` wrote itself (those not in ``base``)."""
    index = snapshot.file_index
    if index is None:
        return []
    older = set() if base is None else {id(layer) for layer in base.layers}
    return [layer for layer in index.layers if id(layer) not in older and not layer.temporary]


def compact(snapshot: Snapshot, *, cache_dir: Path | None = None) -> Snapshot:
    """``snapshot`` with every metric row in one layer, rows of files that are gone dropped:
    the same content, read from fewer and smaller files.

    Worth it when ``needs_compaction(snapshot)``: many reloads leave rows of replaced files
    in older layers (reads skip them, but still scan them). Costs about half a fresh load on
    the whole MTEB data, so run it off the reload path (a background thread), then serve the
    snapshot it returns. With ``cache_dir``, the snapshot's entry is pointed at the new layer.
    """
    index = snapshot.file_index
    if index is None or (len(index.layers) <= 1 and index.dead_rows() == 0):
        return snapshot
    folder, owned = (
        _temporary_folder()
        if cache_dir is None
        else (new_layer_folder(cache_dir, snapshot.id), False)
    )
    merged = merge_layers(index, set(range(len(index.layers))), folder, owned=owned)
    out = dataclasses.replace(snapshot, metrics=merged.store(), file_index=merged)
    if cache_dir is not None:
        try:
            write_index(out, cache_dir)
        except OSError as exc:
            log.warning("could not write disk cache under %s: %s", cache_dir, exc)
    return out


def needs_compaction(snapshot: Snapshot) -> bool:
    """Most rows the snapshot's layers keep belong to files that are gone (see ``compact``)."""
    return snapshot.file_index is not None and compaction_due(snapshot.file_index)


def release_memory(*, collect: bool = True) -> None:
    """Hand memory a load freed back to the system (arrow's pool, the C allocator).

    ``collect=False`` skips the full garbage collection, which walks every object of the
    served snapshots (a few hundred ms with two whole MTEB snapshots alive); the frames an
    incremental load drops are freed by reference counting without it.
    """
    if collect:
        gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return
    libc.malloc_trim(0)
