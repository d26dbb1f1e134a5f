"""Load a new version of a dataset from the previous one, re-reading only the files that changed.

A results file is unchanged when its stat (size, mtime in ns, inode, device) equals the one
recorded when it was read, or, when the stat differs (a copy, a checkout, a re-import that
rewrote it), when its bytes hash to the recorded SHA-256. Changed and added files are read
and validated into a new layer; every other file's rows are reused from the layers they are
in. A catalog file is parsed again when its stat changed, and normalization reruns on the
assembled rows (well under a second on the whole MTEB data), so the snapshot equals a
fresh load's.

``update`` answers ``None`` when a fresh load is the better (or only exact) way: the
catalog's main metrics changed (every file's candidate rows depend on them), more than half
of the bytes changed, or a column changed type across files.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from leaderboard_api.dataset.file_index import (
    FileIndex,
    LiveFile,
    merge_layers,
    names_of,
    update_counts,
)
from leaderboard_api.dataset.layers import Layer, LayerWriter, union_schema
from leaderboard_api.dataset.metric_store import store_schema
from leaderboard_api.dataset.normalize import normalize
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource
from leaderboard_api.dataset.validate import (
    Signature,
    catalog_stamp,
    file_digest,
    read_catalogs,
    read_result_file,
    result_files,
    settled,
    signature,
)

__all__ = ["FULL_LOAD_SHARE", "MAX_LAYERS", "Timings", "needs_compaction", "update"]

log = logging.getLogger(__name__)

#: When files holding more than this share of the bytes changed, load from scratch.
FULL_LOAD_SHARE = 0.5
#: More layers than this and the smaller ones are merged into one.
MAX_LAYERS = 4
#: Reading a previous layer's files fails with these when they are gone or damaged.
_LAYER_ERRORS = (OSError, ValueError, pl.exceptions.PolarsError)
#: A folder for a new layer and whether it is temporary (removed when no longer used).
NewFolder = Callable[[], tuple[Path, bool]]


@dataclass(slots=True)
class Timings:
    """Where a load's time went (seconds, by step) and what it read: for logs and benchmarks.
    Steps are timed from the object's creation: make one right before the load."""

    steps: dict[str, float] = field(default_factory=dict)
    files_read: int = 0
    files_reused: int = 0
    files_removed: int = 0
    merged: bool = False
    #: CPU seconds of the whole process (every thread) up to the last step.
    cpu: float = 0.0
    _last: float = field(default_factory=time.perf_counter)
    _cpu_start: float = field(default_factory=time.process_time)

    def tick(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = self.steps.get(step, 0.0) + now - self._last
        self._last = now
        self.cpu = time.process_time() - self._cpu_start

    def render(self) -> str:
        parts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.steps.items())
        return (
            f"{self.files_read} file(s) read, {self.files_reused} reused, "
            f"{self.files_removed} removed{', layers merged' if self.merged else ''}: {parts}"
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    #: Every current results file, in path order: (rel, path).
    files: list[tuple[str, Path]]
    #: rel -> where the unchanged file's rows are (with its current stat).
    reuse: dict[str, LiveFile]
    #: The files to read, in path order.
    read: list[tuple[str, Path]]
    #: Bytes of the files to read and of every file.
    read_bytes: int
    total_bytes: int


def _plan(root: Path, base: FileIndex) -> _Plan:
    previous = {live.rel: live for live in base.files}
    files: list[tuple[str, Path]] = []
    reuse: dict[str, LiveFile] = {}
    read: list[tuple[str, Path]] = []
    read_bytes = total_bytes = 0
    for path in result_files(root):
        rel = path.relative_to(root).as_posix()
        files.append((rel, path))
        old = previous.get(rel)
        try:
            sig = signature(path)
        except OSError:  # vanished or unreadable: reading it reports it like a fresh load
            read.append((rel, path))
            continue
        total_bytes += sig[0]
        if old is not None and old.signature == sig:
            reuse[rel] = old
            continue
        if old is not None and (old.signature is None or old.signature[0] == sig[0]):
            # Another stat but maybe the same bytes (a copy, a checkout): compare contents.
            try:
                same = file_digest(path.read_bytes()) == base.record(old).digest
                after: Signature | None = signature(path)
            except OSError:
                same, after = False, None
            if same:
                kept = settled(sig) if after == sig else None
                reuse[rel] = LiveFile(rel, kept, old.layer, old.index)
                continue
        read.append((rel, path))
        read_bytes += sig[0]
    return _Plan(files, reuse, read, read_bytes, total_bytes)


def _compatible(before: pl.Schema, after: pl.Schema) -> bool:
    """Columns both have keep their type (else reused rows would differ from a fresh load's)."""
    return all(after[c] == t for c, t in before.items() if c in after)


def update(
    source: ResolvedSource,
    base: FileIndex,
    *,
    new_folder: NewFolder,
    timings: Timings | None = None,
    compact: bool = False,
) -> Snapshot | None:
    """The Snapshot of ``source`` built from ``base`` (a previous snapshot's file index), or
    None when a fresh load should be done instead. Raises DatasetError like a fresh load.

    Layers are merged when there are more than ``MAX_LAYERS`` (the smaller ones: cheap);
    with ``compact``, also all of them when most of their rows are dead (costs about half
    a fresh load on the whole MTEB data, so not for a reload that must be quick).
    """
    timings = timings if timings is not None else Timings()
    root = source.path
    stamp = catalog_stamp(root)
    previous = None
    if base.catalogs is not None and base.catalog_stamp is not None:
        previous = (base.catalogs, base.catalog_stamp)
    catalogs = read_catalogs(root, stamp=stamp, previous=previous)
    timings.tick("catalogs")
    main = catalogs.main_metrics
    if main != dict(base.main):
        log.info("incremental load: the main metrics of tasks.jsonl changed; loading afresh")
        return None
    plan = _plan(root, base)
    timings.tick("detect changes")
    if plan.total_bytes and plan.read_bytes > FULL_LOAD_SHARE * plan.total_bytes:
        log.info(
            "incremental load: %d of %d bytes changed; loading afresh",
            plan.read_bytes,
            plan.total_bytes,
        )
        return None

    created: list[Layer] = []
    new_layer: Layer | None = None
    new_candidates: pl.DataFrame | None = None
    new_pairs: list[pl.DataFrame] = []
    signatures: dict[str, Signature | None] = {}
    if plan.read:
        folder, owned = new_folder()
        writer = LayerWriter(folder, main, owned=owned)
        try:
            for rel, path in plan.read:
                file = read_result_file(path, rel)
                signatures[rel] = file.signature
                writer.add(file)
            new_layer, new_candidates = writer.finish()
            new_pairs = writer.pairs
        except BaseException:
            writer.abort()
            raise
        created.append(new_layer)
    timings.tick("read changed files")
    try:
        for layer in base.layers:
            layer.check()
        index = _next_index(base, plan, new_layer, signatures)
        if not (
            _compatible(base.candidate_schema(), index.candidate_schema())
            and _compatible(_metric_schema(base), _metric_schema(index))
        ):
            log.info("incremental load: a column changed type; loading afresh")
            _remove(created)
            return None
        index = _with_counts(base, index, new_pairs)
        index = dataclasses.replace(index, catalogs=catalogs, catalog_stamp=stamp)
        timings.tick("index")
        index, merged = _compact(index, new_folder, dead=compact)
        if merged is not None:
            created.append(merged)
            timings.merged = True
            timings.tick("merge layers")
        loaded = {}
        if new_layer is not None and new_candidates is not None and new_layer in index.layers:
            loaded[index.layers.index(new_layer)] = new_candidates
        candidates = index.candidates(loaded)
        store = index.store()
        timings.tick("assemble rows")
    except _LAYER_ERRORS as exc:
        # The previous load's layers are gone or damaged (a cleaned temp folder, a pruned
        # cache): nothing to reuse.
        log.warning("incremental load: cannot reuse the previous layers (%s); loading afresh", exc)
        _remove(created)
        return None
    except BaseException:
        _remove(created)
        raise
    try:
        snapshot = normalize(
            source,
            catalogs,
            candidates,
            metrics=store,
            totals=index.totals(),
            file_index=index,
        )
    except BaseException:
        _remove(created)
        raise
    timings.tick("normalize")
    _remove([layer for layer in created if layer not in index.layers])
    timings.files_read = len(plan.read)
    timings.files_reused = len(plan.reuse)
    timings.files_removed = len({f.rel for f in base.files} - {rel for rel, _ in plan.files})
    return snapshot


def _metric_schema(index: FileIndex) -> pl.Schema:
    return union_schema(store_schema(s) for s in index.schemas(metric_only=True))


def _remove(layers: list[Layer]) -> None:
    """Delete layers this load wrote and nothing uses (temporary ones go with their object)."""
    for layer in layers:
        if not layer.temporary:
            shutil.rmtree(layer.folder, ignore_errors=True)


def _next_index(
    base: FileIndex,
    plan: _Plan,
    new_layer: Layer | None,
    signatures: dict[str, Signature | None],
) -> FileIndex:
    """The new file list; layers no live file uses any more are left out."""
    layers = list(base.layers)
    new_ix = len(layers)
    if new_layer is not None:
        layers.append(new_layer)
    files: list[LiveFile] = []
    k = 0
    for rel, _ in plan.files:
        if rel in plan.reuse:
            files.append(plan.reuse[rel])
        else:
            files.append(LiveFile(rel, signatures.get(rel), new_ix, k))
            k += 1
    used = sorted({f.layer for f in files})
    position = {old: new for new, old in enumerate(used)}
    return FileIndex(
        files=tuple(LiveFile(f.rel, f.signature, position[f.layer], f.index) for f in files),
        layers=tuple(layers[i] for i in used),
        main=base.main,
        pair_counts=base.pair_counts,
    )


def _with_counts(base: FileIndex, index: FileIndex, new_pairs: list[pl.DataFrame]) -> FileIndex:
    """``index`` with pair counts: the base's, less the files gone, plus the files read."""
    kept = {(id(index.layers[f.layer]), f.index) for f in index.files}
    gone: dict[int, list[int]] = {}
    for live in base.files:
        if (id(base.layers[live.layer]), live.index) not in kept:
            gone.setdefault(live.layer, []).append(live.index)
    minus = [base.layers[layer].pairs_of(ixs) for layer, ixs in sorted(gone.items())]
    counts, touched = update_counts(base.pair_counts, minus, new_pairs)
    names = base.names()
    if touched:
        for task in touched:
            names.pop(task, None)
        names.update(names_of(counts.filter(pl.col("task_name").is_in(sorted(touched)))))
        names = dict(sorted(names.items()))
    return dataclasses.replace(index, pair_counts=counts, metric_names=names)


def needs_compaction(index: FileIndex) -> bool:
    """Most rows the layers keep belong to files that are gone (see ``loader.compact``)."""
    return index.dead_rows() > max(sum(r.rows for r in index.records()), 1)


def _compact(
    index: FileIndex, new_folder: NewFolder, *, dead: bool
) -> tuple[FileIndex, Layer | None]:
    """Merge the smaller layers when there are too many (cost: their rows); with ``dead``,
    every layer when most stored rows are dead (cost: every live row)."""
    if dead and needs_compaction(index):
        chosen = set(range(len(index.layers)))
    elif len(index.layers) > MAX_LAYERS:
        biggest = max(range(len(index.layers)), key=lambda i: index.layers[i].metric_rows)
        chosen = set(range(len(index.layers))) - {biggest}
    else:
        return index, None
    folder, owned = new_folder()
    merged = merge_layers(index, chosen, folder, owned=owned)
    return merged, merged.layers[-1]
