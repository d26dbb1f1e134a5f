"""Import the MTEB results repository layout, and optionally the MTEB catalog, into a dataset.

Layout: ``results/<org>__<model>/<revision>/<Task>.json`` plus ``model_meta.json`` per revision
folder (``source`` may be the repository or its ``results`` folder). Decisions:

- One row per metric. Legacy metric groups are flattened to current names (``cos_sim.spearman``
  -> ``cosine_spearman``, ``dot.ap`` -> ``dot_ap``, ``max.ap`` -> ``max_ap``, ...), as mteb's own
  legacy loader does. Non-scalar values (``scores_per_experiment``, p-value pairs) are dropped.
- The main score is stored under the task's main metric from the catalog: an entry's
  ``main_score`` overrides that metric's value (counted when they differ); an entry without
  ``main_score`` keeps its metric of that name, and when even that is missing it has no main row
  (counted, never guessed). Without a catalog the main metric is called ``main_score``.
- Legacy entries carry no languages; with a catalog they get the task's languages for the subset.
- ``<revision>/experiments/<name>/<Task>.json`` are variants of the model: rows with
  ``variant = <name>``; the model's entry lists ``variants`` with their ``experiment_kwargs``.
- Model name: ``name`` in the revision's ``model_meta.json``, else the folder name with ``__`` ->
  ``/``; revision: the folder name, odd ones (``external``, ``1``) included.
- ``models.jsonl``: catalog entry over the ``model_meta.json`` of the revision matching the
  catalog (else the one with most results); ``revisions`` lists the folders with results.
- One results file per model folder (``results/<folder>.parquet``), parsed in parallel; a
  manifest lets a re-import parse only what changed (see ``mteb_output``).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from leaderboard_api.dataset.contract import RESULTS_DIR, DatasetError
from leaderboard_api.dataset.importers.common import ImportReport, write_catalogs
from leaderboard_api.dataset.importers.mteb_catalog import (
    MAIN_SCORE,
    MtebCatalog,
    convert_mteb_catalog,
    load_catalog,
)
from leaderboard_api.dataset.importers.mteb_folder import FolderJob, ParseSettings, SourceFile
from leaderboard_api.dataset.importers.mteb_models import Revision, models
from leaderboard_api.dataset.importers.mteb_output import (
    Staging,
    Workers,
    check_out,
    copy_descriptive_stats,
    write_dataset_file,
)
from leaderboard_api.dataset.importers.mteb_parse import METRIC_GROUPS, SCHEMA
from leaderboard_api.dataset.importers.mteb_scan import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    Tree,
    load_manifest,
    read_metas,
    results_root,
    scan,
    write_manifest,
)

__all__ = ["METRIC_GROUPS", "SCHEMA", "convert_mteb_catalog", "import_mteb"]

#: Bumped whenever parsing changes what a file yields: a manifest of another version is ignored.
PARSER_VERSION = "mteb-import/2"


def import_mteb(
    source: Path,
    *,
    out: Path,
    catalog: Path | None = None,
    progress: bool = False,
    main_only: bool = False,
    jobs: int | None = None,
) -> ImportReport:
    """Import an MTEB results tree into the dataset directory ``out``.

    Parameters
    ----------
    source
        The results repository (holding ``results/``) or its ``results`` folder.
    out
        Dataset directory to write (``results/<folder>.parquet``, catalogs, ``dataset.json``).
        A previous import there is updated: only files added, changed or removed are read.
    catalog
        The exported MTEB catalog (``tasks.jsonl``, ``benchmarks.jsonl``, ``menu.json``,
        ``models.jsonl``, optionally ``descriptive_stats/``).
    progress
        Show a progress bar on stderr.
    main_only
        Write only the main-metric rows.
    jobs
        Worker processes parsing model folders (default: the number of CPUs; 1: in-process).

    Raises
    ------
    DatasetError
        When the source, the catalog or the output directory is unusable, or no result file
        could be read. The previous output is then left as it was.
    """
    started = time.perf_counter()
    report = ImportReport("mteb", str(source), str(out))
    cat = load_catalog(catalog) if catalog is not None else None
    parse = ParseSettings(cat.meta if cat else {}, main_only)
    with Workers(jobs or os.cpu_count() or 1, parse) as workers:
        _import(
            source,
            out=out,
            catalog=catalog,
            cat=cat,
            workers=workers,
            report=report,
            progress=progress,
        )
    report.seconds = time.perf_counter() - started
    return report


def _import(
    source: Path,
    *,
    out: Path,
    catalog: Path | None,
    cat: MtebCatalog | None,
    workers: Workers,
    report: ImportReport,
    progress: bool,
) -> None:
    """Scan, plan, build and write; the staging folder replaces ``out`` only at the end."""
    main_only = workers.settings.main_only
    tree = scan(results_root(source))
    raw_manifest = load_manifest(out) if out.is_dir() else {}
    check_out(out, ours=raw_manifest.get("outputs", []))
    settings = _fingerprint(catalog, main_only=main_only)
    manifest = raw_manifest if raw_manifest.get("settings") == settings else {}
    previous_outputs = manifest.get("outputs", [])
    old_files: dict[str, dict[str, Any]] = manifest.get("files", {})
    old_names: dict[str, str] = manifest.get("names", {})
    metas, metas_read = read_metas(tree, manifest.get("metas", {}))
    names = _model_names(tree, metas)
    with Staging(out, previous=previous_outputs) as stage:
        folder_jobs = _plan(tree, stage, old_files=old_files, names=names, old_names=old_names)
        outcomes = workers.run(folder_jobs, progress=progress)
        current = [src.rel for srcs in tree.results.values() for src in srcs]
        files = {rel: old_files[rel] for rel in current if rel in old_files}
        for outcome in outcomes:
            files.update(outcome.entries)
        files = {rel: files[rel] for rel in current}
        stage.finish_results(outcomes)
        reread = sum(outcome.reread for outcome in outcomes)
        rows = sum(int(e.get("rows", 0)) for e in files.values())
        revisions = _summarize(tree, files, metas, names, report)
        if not report.imported["result files"] + report.imported["variant result files"]:
            msg = "no readable MTEB result files"
            raise DatasetError(
                msg, file=str(source), hint="expected <model>/<revision>/<Task>.json"
            )
        report.count("result files re-read", reread)
        report.count("result files reused", len(files) - reread)
        report.count("model_meta files re-read", metas_read)
        report.written[f"{RESULTS_DIR}/*.parquet ({len(stage.outputs)} files)"] = rows
        seen = {e["task"] for e in files.values() if isinstance(e.get("task"), str)}
        unknown = sorted(seen - (cat.meta.keys() if cat else set()))
        if cat is not None:
            report.note("tasks not in the catalog (main metric 'main_score')", len(unknown))
        write_catalogs(
            stage.tmp,
            report,
            models=models(revisions, cat.models if cat else {}),
            tasks=(cat.tasks if cat else [])
            + [{"name": t, "main_metric": MAIN_SCORE} for t in unknown],
            benchmarks=cat.benchmarks if cat else None,
            menu=cat.menu if cat else None,
        )
        write_dataset_file(stage.tmp, registered_only=cat is not None)
        stats: dict[str, list[int]] = {}
        if catalog is not None and cat is not None:
            task_names = [t["name"] for t in cat.tasks]
            stats = copy_descriptive_stats(
                catalog, task_names, stage, report, previous=manifest.get("stats", {})
            )
        state = {
            "format": MANIFEST_FORMAT,
            "settings": settings,
            "files": files,
            "metas": metas,
            "names": names,
            "outputs": sorted(stage.outputs),
            "stats": stats,
        }
        write_manifest(stage.tmp / MANIFEST_FILE, state)
        stage.commit()


def _fingerprint(catalog: Path | None, *, main_only: bool) -> str:
    """What parsing depends on besides the files: parser version, metric filter, task catalog."""
    digest = hashlib.sha256(f"{PARSER_VERSION}\0{main_only}\0".encode())
    if catalog is not None:
        digest.update((catalog / "tasks.jsonl").read_bytes())
    return digest.hexdigest()


def _model_names(tree: Tree, metas: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``folder/revision`` -> model name (the base ``model_meta.json`` name, else the folder)."""
    names = {f"{f}/{r}": f.replace("__", "/") for f, r in tree.revisions}
    for meta in tree.metas:
        name = metas[meta.rel].get("meta", {}).get("name")
        if meta.variant is None and isinstance(name, str) and name:
            names[f"{meta.folder}/{meta.revision}"] = name
    return names


def _plan(
    tree: Tree,
    stage: Staging,
    *,
    old_files: Mapping[str, Mapping[str, Any]],
    names: Mapping[str, str],
    old_names: Mapping[str, str],
) -> list[FolderJob]:
    """One job per model folder that changed; unchanged folders keep their previous file."""
    jobs = []
    current = {src.rel for srcs in tree.results.values() for src in srcs}
    removed_by: dict[str, list[dict[str, Any]]] = {}
    for rel, entry in old_files.items():
        if rel not in current:
            removed_by.setdefault(rel.split("/", 1)[0], []).append({**entry, "rel": rel})
    by_folder: dict[str, dict[str, str]] = {}
    for key, name in names.items():
        folder, revision = key.split("/", 1)
        by_folder.setdefault(folder, {})[revision] = name
    for folder, srcs in tree.results.items():
        removed = tuple(removed_by.get(folder, ()))
        prefix = f"{folder}/"
        rev_names = by_folder.get(folder, {})
        renamed = any(old_names.get(prefix + r) != n for r, n in rev_names.items())
        touched = renamed or removed or not all(_same_stat(s, old_files.get(s.rel)) for s in srcs)
        if not touched and stage.reuse(folder):
            continue
        files = tuple(replace(src, old=old_files.get(src.rel)) for src in srcs)
        old_output = stage.previous(folder)
        has_rows = any(src.old and src.old.get("rows") for src in files)
        if has_rows and old_output is None:  # the previous file is gone: parse everything
            files = tuple(replace(src, old=None) for src in files)
        jobs.append(
            FolderJob(
                folder=folder,
                files=files,
                names=rev_names,
                out_path=str(stage.output(folder)),
                old_output=str(old_output) if old_output and old_files else None,
                removed=removed,
                renamed=renamed,
            )
        )
    return jobs


def _same_stat(src: SourceFile, old: Mapping[str, Any] | None) -> bool:
    return old is not None and old["size"] == src.size and old["mtime_ns"] == src.mtime_ns


def _summarize(
    tree: Tree,
    files: Mapping[str, Mapping[str, Any]],
    metas: Mapping[str, Mapping[str, Any]],
    names: Mapping[str, str],
    report: ImportReport,
) -> list[Revision]:
    """Fill the report from the new manifest state; return what models.jsonl needs."""
    revisions = {
        f"{f}/{r}": Revision(folder=r, model_name=names[f"{f}/{r}"]) for f, r in tree.revisions
    }
    skipped = list(tree.skipped)
    for meta in tree.metas:
        entry = metas[meta.rel]
        if "skip" in entry:
            skipped.append((entry["skip"], meta.rel))
            continue
        rev = revisions[f"{meta.folder}/{meta.revision}"]
        if meta.variant is None:
            rev.meta = entry["meta"]
        else:
            kwargs = entry["meta"].get("experiment_kwargs")
            rev.variant_kwargs[meta.variant] = kwargs if isinstance(kwargs, dict) else {}
    for srcs in tree.results.values():
        for src in srcs:
            entry = files[src.rel]
            if "skip" in entry:
                skipped.append((entry["skip"], src.rel))
                continue
            rev = revisions[f"{src.rel.split('/', 1)[0]}/{src.revision}"]
            if src.variant is None:
                rev.imported += 1
                report.count("result files")
            else:
                rev.variants.add(src.variant)
                report.count("variant result files")
            for what, n in entry.get("notes", {}).items():
                report.note(what, n)
            report.note("duplicate rows dropped", entry.get("dups", 0))
    for reason, rel in sorted(skipped):
        report.skip(reason, rel)
    report.count("model_meta files", sum(r.meta is not None for r in revisions.values()))
    report.count("revision folders", len(revisions))
    return list(revisions.values())
