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
- ``<revision>/experiments/...`` folders are variants of a model, not its scores: they are skipped
  and counted as ``experiment variant``.
- Model name: ``name`` in the revision's ``model_meta.json``, else the folder name with ``__`` ->
  ``/``; revision: the folder name, odd ones (``external``, ``1``) included.
- ``models.jsonl``: catalog entry over the ``model_meta.json`` of the revision matching the
  catalog (else the one with most results); ``revisions`` lists the folders with results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from leaderboard_api.dataset.contract import RESULTS_DIR, DatasetError
from leaderboard_api.dataset.importers.common import (
    ImportReport,
    ResultRows,
    loads_json,
    parse_float,
    prepare_out,
    progress_bar,
    write_catalogs,
    write_results,
)
from leaderboard_api.dataset.importers.mteb_catalog import (
    MAIN_SCORE,
    TaskMeta,
    convert_mteb_catalog,
    load_catalog,
    model_entry,
)

__all__ = ["EXTRA_COLUMNS", "METRIC_GROUPS", "RESULTS_FILE", "convert_mteb_catalog", "import_mteb"]

RESULTS_FILE = "mteb.parquet"
#: Legacy metric groups and the prefix their metrics carry in the current format.
METRIC_GROUPS = {
    "cos_sim": "cosine",
    "cosine": "cosine",
    "euclidean": "euclidean",
    "manhattan": "manhattan",
    "dot": "dot",
    "max": "max",
    "similarity": "similarity",
}
EXTRA_COLUMNS: dict[str, pl.DataType] = {
    "evaluation_time": pl.Float64(),
    "mteb_version": pl.String(),
    "dataset_revision": pl.String(),
}
_NOT_METRICS = frozenset(
    {"hf_subset", "languages", "main_score", "evaluation_time", "mteb_version"}
)
_LEGACY_META = frozenset(
    {"mteb_dataset_name", "mteb_version", "dataset_revision", "evaluation_time"}
)
Entry = tuple[str, str, Any, Mapping[str, Any]]  # split, subset, languages, scores


@dataclass(slots=True)
class _Revision:
    folder: str
    model_name: str
    meta: dict[str, Any] | None
    files: list[Path]
    imported: int = 0


def import_mteb(
    source: Path,
    *,
    out: Path,
    catalog: Path | None = None,
    progress: bool = False,
    main_only: bool = False,
) -> ImportReport:
    """Import an MTEB results tree into the dataset directory ``out``.

    Parameters
    ----------
    source
        The results repository (holding ``results/``) or its ``results`` folder.
    out
        Dataset directory to write (``results/mteb.parquet`` and the catalog files).
    catalog
        The exported MTEB catalog (``tasks.jsonl``, ``benchmarks.jsonl``, ``menu.json``,
        ``models.jsonl``); gives main metrics, languages, benchmarks, menu and model metadata.
    progress
        Show a progress bar on stderr.
    main_only
        Write only the main-metric rows (for very large trees).
    """
    started = time.perf_counter()
    report = ImportReport("mteb", str(source), str(out))
    cat = load_catalog(catalog) if catalog is not None else None
    tasks_meta = cat.meta if cat else {}
    revisions = _scan(_results_root(source), report)
    results_dir = prepare_out(out, results_file=RESULTS_FILE)
    rows = ResultRows(EXTRA_COLUMNS)
    seen: set[str] = set()
    work = [(rev, path) for rev in revisions for path in rev.files]
    for rev, path in progress_bar(work, enabled=progress, desc="mteb"):
        task = _import_file(
            path, rev=rev, rows=rows, tasks=tasks_meta, report=report, main_only=main_only
        )
        if task is not None:
            seen.add(task)
            rev.imported += 1
    report.count("model_meta files", sum(r.meta is not None for r in revisions))
    report.count("revision folders", len(revisions))
    report.note("NaN scores written as null", rows.nan_scores)
    report.written[f"{RESULTS_DIR}/{RESULTS_FILE}"] = write_results(
        rows.frame(), results_dir / RESULTS_FILE
    )
    report.note("duplicate rows dropped", rows.duplicates)
    unknown = sorted(seen - tasks_meta.keys())
    if cat is not None:
        report.note("tasks not in the catalog (main metric 'main_score')", len(unknown))
    write_catalogs(
        out,
        report,
        models=_models(revisions, cat.models if cat else {}),
        tasks=(cat.tasks if cat else [])
        + [{"name": t, "main_metric": MAIN_SCORE} for t in unknown],
        benchmarks=cat.benchmarks if cat else None,
        menu=cat.menu if cat else None,
    )
    report.seconds = time.perf_counter() - started
    return report


# -- the results tree --------------------------------------------------------------------------


def _results_root(source: Path) -> Path:
    if not source.is_dir():
        msg = "not a directory"
        hint = "pass the MTEB results repository or its results/ folder"
        raise DatasetError(msg, file=str(source), hint=hint)
    nested = source / RESULTS_DIR
    return nested if nested.is_dir() else source


def _scan(root: Path, report: ImportReport) -> list[_Revision]:
    revisions: list[_Revision] = []
    for model_dir in sorted(root.iterdir()):
        if not model_dir.is_dir():
            report.skip("file outside a revision folder", model_dir.name)
            continue
        for rev_dir in sorted(model_dir.iterdir()):
            if not rev_dir.is_dir():
                report.skip("file outside a revision folder", f"{model_dir.name}/{rev_dir.name}")
                continue
            meta: dict[str, Any] | None = None
            files: list[Path] = []
            for path in sorted(p for p in rev_dir.rglob("*") if not p.is_dir()):
                rel = path.relative_to(root).as_posix()
                parts = path.relative_to(rev_dir).parts
                if parts[0] == "experiments":
                    report.skip("experiment variant", rel)
                elif len(parts) > 1:
                    report.skip("file in an unexpected subfolder", rel)
                elif path.suffix != ".json":
                    report.skip("not a JSON file", rel)
                elif path.name == "model_meta.json":
                    meta = _read_meta(path, rel, report)
                else:
                    files.append(path)
            name = meta.get("name") if meta else None
            model_name = (
                name if isinstance(name, str) and name else model_dir.name.replace("__", "/")
            )
            revisions.append(_Revision(rev_dir.name, model_name, meta, files))
    if not revisions:
        msg = "no <model>/<revision>/ folders found"
        raise DatasetError(
            msg, file=str(root), hint="expected results/<org>__<model>/<revision>/<Task>.json"
        )
    return revisions


def _load_json(path: Path) -> Any:
    try:
        return loads_json(path.read_bytes())
    except ValueError:
        return None


def _read_meta(path: Path, rel: str, report: ImportReport) -> dict[str, Any] | None:
    data = _load_json(path)
    if not isinstance(data, dict):
        report.skip("invalid JSON", rel)
        return None
    return data


def _entries(data: Mapping[str, Any]) -> tuple[str, list[Entry], float | None] | None:
    """Task name, (split, subset, languages, scores) entries and evaluation time of one file."""
    scores = data.get("scores")
    if isinstance(scores, dict) and isinstance(data.get("task_name"), str):
        entries: list[Entry] = [
            (str(split), str(item.get("hf_subset", "default")), item.get("languages"), item)
            for split, items in scores.items()
            if isinstance(items, list)
            for item in items
            if isinstance(item, dict)
        ]
        return data["task_name"], entries, parse_float(data.get("evaluation_time"))
    if not isinstance(data.get("mteb_dataset_name"), str):
        return None
    entries, total = [], None
    for split, value in data.items():
        if split in _LEGACY_META or not isinstance(value, dict):
            continue
        seconds = parse_float(value.get("evaluation_time"))
        total = seconds if total is None else total + (seconds or 0.0)
        subsets = [
            k
            for k, v in value.items()
            if isinstance(v, dict) and k not in METRIC_GROUPS and k != "v_measures"
        ]
        if subsets:
            entries.extend((split, subset, None, value[subset]) for subset in subsets)
        else:
            entries.append((split, "default", None, value))
    return data["mteb_dataset_name"], entries, total


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metrics(scores: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in scores.items():
        if key in _NOT_METRICS:
            continue
        if isinstance(value, dict):
            prefix = METRIC_GROUPS.get(key, key)
            out.update({f"{prefix}_{k}": float(v) for k, v in value.items() if _is_number(v)})
        elif _is_number(value):
            out[key] = float(value)
    return out


def _same(a: float | None, b: float | None) -> bool:
    a_missing, b_missing = a is None or math.isnan(a), b is None or math.isnan(b)
    if a is None or b is None or a_missing or b_missing:
        return a_missing and b_missing
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _import_file(
    path: Path,
    *,
    rev: _Revision,
    rows: ResultRows,
    tasks: Mapping[str, TaskMeta],
    report: ImportReport,
    main_only: bool,
) -> str | None:
    rel = f"{path.parent.parent.name}/{rev.folder}/{path.name}"
    data = _load_json(path)
    if not isinstance(data, dict):
        report.skip("invalid JSON", rel)
        return None
    parsed = _entries(data)
    if parsed is None:
        report.skip("not an MTEB result file", rel)
        return None
    task_name, entries, seconds = parsed
    report.count("result files")
    report.note("result files without scores", not entries)
    task = tasks.get(task_name)
    main = task.main_metric if task else MAIN_SCORE
    stamp = parse_float(data.get("date"))
    evaluated_at = None if stamp is None else datetime.fromtimestamp(stamp, UTC)
    version = data.get("mteb_version")
    dataset_revision = data.get("dataset_revision")
    for split, subset, languages, scores in entries:
        metrics = _metrics(scores)
        if "main_score" in scores and (
            _is_number(scores["main_score"]) or scores["main_score"] is None
        ):
            value = None if scores["main_score"] is None else float(scores["main_score"])
            if main in metrics and not _same(metrics[main], value):
                report.note("main_score differs from the task's main metric (main_score kept)")
            metrics[main] = value
        elif main not in metrics:
            report.note("entries without a main score (no main row)")
        if main_only:
            metrics = {main: metrics[main]} if main in metrics else {}
        if isinstance(languages, list):
            langs = [str(lang) for lang in languages]
        else:
            langs = task.languages_of(subset) if task else []
        rows.add(
            model_name=rev.model_name,
            model_revision=rev.folder,
            task_name=task_name,
            split=split,
            subset=subset,
            languages=langs,
            metrics=metrics,
            evaluated_at=evaluated_at,
            evaluation_time=seconds,
            mteb_version=version if isinstance(version, str) else None,
            dataset_revision=dataset_revision if isinstance(dataset_revision, str) else None,
        )
    return task_name


# -- models ------------------------------------------------------------------------------------


def _models(
    revisions: list[_Revision], catalog: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    by_name: dict[str, list[_Revision]] = {}
    for rev in revisions:
        by_name.setdefault(rev.model_name, []).append(rev)
    entries = []
    for name in sorted(by_name.keys() | catalog.keys()):
        revs, registered = by_name.get(name, []), catalog.get(name, {})
        wanted = registered.get("revision")
        metas = [r for r in revs if r.meta is not None]
        best = max(
            metas,
            key=lambda r: (
                (r.meta or {}).get("revision") == wanted or r.folder == wanted,
                r.imported,
                r.folder,
            ),
            default=None,
        )
        entry = {**(best.meta if best and best.meta else {})}
        entry.update({k: v for k, v in registered.items() if v is not None})
        entry["name"] = name
        with_results = sorted(r.folder for r in revs if r.imported)
        if with_results:
            entry["revisions"] = with_results
        entries.append(model_entry(entry))
    return entries
