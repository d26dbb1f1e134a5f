"""Walk an MTEB results tree (files, git-listed gaps) and keep the import manifest."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.importers.common import write_bytes_atomic
from leaderboard_api.dataset.importers.mteb_folder import SourceFile
from leaderboard_api.dataset.importers.mteb_parse import (
    INVALID_JSON,
    UNREADABLE,
    SkipFile,
    blob_id,
    parse_json,
    read_bytes,
)

MANIFEST_FILE = ".import-manifest.json"
MANIFEST_FORMAT = 1
META_FILE = "model_meta.json"
EXPERIMENTS = "experiments"
MISSING = "missing from the work tree (listed in git)"
OUTSIDE = "file outside a revision folder"
SUBFOLDER = "file in an unexpected subfolder"
NOT_JSON = "not a JSON file"


@dataclass(slots=True)
class MetaFile:
    """A ``model_meta.json`` of a revision folder (``variant`` set inside ``experiments/``)."""

    rel: str
    path: str
    folder: str
    revision: str
    variant: str | None
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Tree:
    """What a results tree holds, by model folder, without reading any file."""

    root: str
    results: dict[str, list[SourceFile]] = field(default_factory=dict)
    metas: list[MetaFile] = field(default_factory=list)
    revisions: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def results_root(source: Path) -> Path:
    """``source/results`` when it exists, else ``source``; raises DatasetError if no folder."""
    if not source.is_dir():
        msg = "not a directory"
        hint = "pass the MTEB results repository or its results/ folder"
        raise DatasetError(msg, file=str(source), hint=hint)
    nested = source / "results"
    return nested if nested.is_dir() else source


def scan(root: Path) -> Tree:
    """List every file under ``root`` by model folder and revision, with size and mtime."""
    tree = Tree(str(root))
    seen: set[str] = set()
    for model in _sorted_entries(str(root)):
        if not model.is_dir():
            seen.add(model.name)
            tree.skipped.append((OUTSIDE, model.name))
            continue
        files: list[SourceFile] = []
        for rev in _sorted_entries(model.path):
            rel = f"{model.name}/{rev.name}"
            if not rev.is_dir():
                seen.add(rel)
                tree.skipped.append((OUTSIDE, rel))
                continue
            tree.revisions.append((model.name, rev.name))
            for parts, entry in _walk(rev.path, ()):
                _classify(tree, files, model.name, rev.name, parts, entry)
                seen.add(f"{rel}/{'/'.join(parts)}")
        tree.results[model.name] = files
    if not tree.revisions:
        msg = "no <model>/<revision>/ folders found"
        hint = "expected results/<org>__<model>/<revision>/<Task>.json"
        raise DatasetError(msg, file=str(root), hint=hint)
    tree.skipped.extend((MISSING, rel) for rel in sorted(git_listed(root) - seen))
    return tree


def _sorted_entries(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: e.name)


def _walk(path: str, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], os.DirEntry[str]]]:
    out: list[tuple[tuple[str, ...], os.DirEntry[str]]] = []
    for entry in _sorted_entries(path):
        parts = (*prefix, entry.name)
        if entry.is_dir():
            out.extend(_walk(entry.path, parts))
        else:
            out.append((parts, entry))
    return out


def _classify(
    tree: Tree,
    files: list[SourceFile],
    folder: str,
    revision: str,
    parts: tuple[str, ...],
    entry: os.DirEntry[str],
) -> None:
    rel = "/".join((folder, revision, *parts))
    variant = None
    if parts[0] == EXPERIMENTS and len(parts) == 3:
        variant = parts[1]
    elif len(parts) > 1:
        tree.skipped.append((SUBFOLDER, rel))
        return
    name = parts[-1]
    if not name.endswith(".json"):
        tree.skipped.append((NOT_JSON, rel))
        return
    try:
        st = entry.stat()
    except OSError:  # a dangling symlink, or a file removed while scanning
        tree.skipped.append((UNREADABLE, rel))
        return
    if name == META_FILE:
        meta = MetaFile(rel, entry.path, folder, revision, variant, st.st_size, st.st_mtime_ns)
        tree.metas.append(meta)
        return
    files.append(SourceFile(rel, entry.path, revision, variant, st.st_size, st.st_mtime_ns))


def git_listed(root: Path) -> set[str]:
    """Paths git tracks under ``root`` (relative to it); empty outside a git work tree.

    The index is asked first; a checkout whose index is empty (a failed checkout) is read
    from ``HEAD``'s tree instead.
    """
    for args in (["ls-files", "-z"], ["ls-tree", "-r", "-z", "--name-only", "HEAD"]):
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, check=False, timeout=120
            )
        except (OSError, subprocess.SubprocessError):
            return set()
        if done.returncode != 0:
            return set()
        listed = {p for p in done.stdout.decode("utf-8", "surrogateescape").split("\0") if p}
        if listed:
            return listed
    return set()


def read_metas(
    tree: Tree, old: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], int]:
    """Manifest entries of every ``model_meta.json`` (parsed ``meta`` or a ``skip``), re-read
    only when its size or mtime changed; also returns how many were read."""
    out: dict[str, dict[str, Any]] = {}
    read = 0
    for meta in tree.metas:
        prev = old.get(meta.rel)
        if prev is not None and (prev["size"], prev["mtime_ns"]) == (meta.size, meta.mtime_ns):
            out[meta.rel] = dict(prev)
            continue
        entry: dict[str, Any] = {"size": meta.size, "mtime_ns": meta.mtime_ns}
        read += 1
        try:
            raw = read_bytes(meta.path)
            entry["sha1"] = blob_id(raw)
            data = parse_json(raw)
        except SkipFile as exc:
            entry["skip"] = exc.reason
        else:
            if isinstance(data, dict):
                entry["meta"] = data
            else:
                entry["skip"] = INVALID_JSON
        out[meta.rel] = entry
    return out, read


def load_manifest(out: Path) -> dict[str, Any]:
    """The previous import's manifest (``{}`` when there is none or it is unreadable)."""
    try:
        data = orjson.loads((out / MANIFEST_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else {}


def write_manifest(path: Path, data: Mapping[str, Any]) -> None:
    """Write the manifest (sorted keys, so the same import state gives the same bytes)."""
    write_bytes_atomic(path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS) + b"\n")
