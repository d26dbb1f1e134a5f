"""Where an MTEB import writes: a staging folder swapped in whole, workers, extra files."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from leaderboard_api.dataset.contract import (
    BENCHMARKS_FILE,
    MENU_FILE,
    MODELS_FILES,
    RESULTS_DIR,
    TASKS_FILE,
    DatasetError,
)
from leaderboard_api.dataset.importers.common import (
    ImportReport,
    progress_bar,
    write_bytes_atomic,
)
from leaderboard_api.dataset.importers.mteb_folder import (
    FolderJob,
    FolderOutcome,
    ParseSettings,
    build_folder,
)

DATASET_FILE = "dataset.json"
DATASET_INFO: dict[str, Any] = {"name": "MTEB", "scoring": {"revisions": "per_task"}}
STATS_DIR = "descriptive_stats"
MANIFEST_FILE = ".import-manifest.json"
#: Files and folders an import owns; anything else in the output folder is carried over.
MANAGED = frozenset(
    {RESULTS_DIR, *MODELS_FILES, TASKS_FILE, BENCHMARKS_FILE, MENU_FILE, DATASET_FILE, STATS_DIR}
    | {MANIFEST_FILE}
)
_LEGACY_RESULTS = "mteb.parquet"
# The pool initializer's settings, one per worker process (never set in the parent).
_WORKER: list[ParseSettings] = []


def check_out(out: Path, *, ours: Iterable[str]) -> None:
    """Refuse an output path that is a file or holds results this importer did not write
    (``ours``: the results files the previous import's manifest lists)."""
    if out.exists() and not out.is_dir():
        msg = "the output path exists and is not a directory"
        raise DatasetError(msg, file=str(out))
    results = out / RESULTS_DIR
    known = {*ours, _LEGACY_RESULTS}
    foreign = sorted(
        p.relative_to(results).as_posix()
        for p in results.rglob("*.parquet")
        if p.relative_to(results).as_posix() not in known
    ) + [name for name in MODELS_FILES[1:] if (out / name).exists()]
    if foreign:
        msg = "the output directory already holds other data"
        raise DatasetError(
            msg, file=str(out), examples=foreign, hint="import into an empty or new directory"
        )


class Staging:
    """A temporary folder next to ``out`` that replaces it on ``commit()``.

    A failed import removes the folder, leaving ``out`` as it was. Unchanged results files
    of the previous import are hard links, so re-imports cost what changed.
    """

    def __init__(self, out: Path, *, previous: Iterable[str]) -> None:
        self.out = out
        self.previous_outputs = frozenset(previous)
        self.outputs: set[str] = set()
        self._tmp: Path | None = None

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            msg = "staging folder used outside its with-block"
            raise RuntimeError(msg)
        return self._tmp

    def __enter__(self) -> Staging:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.import-"))
        (self._tmp / RESULTS_DIR).mkdir()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @staticmethod
    def name(folder: str) -> str:
        return f"{folder}.parquet"

    def output(self, folder: str) -> Path:
        return self.tmp / RESULTS_DIR / self.name(folder)

    def previous(self, folder: str) -> Path | None:
        """The folder's results file of the previous import, if it is still there."""
        path = self.out / RESULTS_DIR / self.name(folder)
        return path if self.name(folder) in self.previous_outputs and path.is_file() else None

    def reuse(self, folder: str) -> bool:
        """Keep the previous results file of an unchanged folder; ``False`` if it is lost."""
        name = self.name(folder)
        if name not in self.previous_outputs:
            return True  # the folder had no rows
        old = self.previous(folder)
        if old is None:
            return False
        try:
            os.link(old, self.output(folder))
        except OSError:
            shutil.copyfile(old, self.output(folder))
        self.outputs.add(name)
        return True

    def finish_results(self, outcomes: Iterable[FolderOutcome]) -> None:
        for outcome in outcomes:
            if outcome.written:
                self.outputs.add(self.name(outcome.folder))
            elif outcome.reused and not self.reuse(outcome.folder):
                msg = f"the previous results file of {outcome.folder} disappeared"
                raise DatasetError(msg, file=str(self.out), hint="import again")

    def commit(self) -> None:
        """Move files the import does not own across, then swap the staging folder in."""
        tmp = self.tmp
        if self.out.is_dir():
            for entry in sorted(os.listdir(self.out)):
                if entry not in MANAGED and not (tmp / entry).exists():
                    os.replace(self.out / entry, tmp / entry)
            old = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.old-"))
            os.replace(self.out, old / "out")
            os.replace(tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, self.out)
        os.chmod(self.out, 0o755)  # mkdtemp creates 0700; datasets are meant to be shared
        self._tmp = None


def _init_worker(settings: ParseSettings) -> None:
    _WORKER[:] = [settings]


def _run(job: FolderJob) -> FolderOutcome:
    return build_folder(job, _WORKER[0])


class Workers:
    """Worker processes for folder builds; ``n`` of 1 builds in-process.

    Processes start only for enough work to pay for their start-up (importing polars in
    each, sending the jobs): a re-import of a few changed files runs faster in-process.
    """

    #: Files to parse below which the builds run in-process.
    MIN_FILES = 2000

    def __init__(self, n: int, settings: ParseSettings) -> None:
        self.n = n
        self.settings = settings
        self._pool: ProcessPoolExecutor | None = None
        self._saved: str | None = None

    def __enter__(self) -> Workers:
        return self

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._saved = os.environ.get("POLARS_MAX_THREADS")
            os.environ["POLARS_MAX_THREADS"] = "1"  # read by each worker at start: one core
            self._pool = ProcessPoolExecutor(
                max_workers=self.n,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.settings,),
            )
        return self._pool

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            if self._saved is None:
                os.environ.pop("POLARS_MAX_THREADS", None)
            else:
                os.environ["POLARS_MAX_THREADS"] = self._saved

    def run(self, jobs: Sequence[FolderJob], *, progress: bool) -> list[FolderOutcome]:
        """Build every folder (largest first, in parallel); outcomes in folder order."""
        work = sum(1 for j in jobs for f in j.files if not f.unchanged())
        if self.n <= 1 or len(jobs) <= 1:
            done = [
                build_folder(j, self.settings)
                for j in progress_bar(jobs, enabled=progress, desc="mteb", unit="folder")
            ]
            return sorted(done, key=lambda o: o.folder)
        if work < self.MIN_FILES:  # mostly parquet reads and writes, which release the GIL
            with ThreadPoolExecutor(max_workers=self.n) as threads:
                futures = [threads.submit(build_folder, j, self.settings) for j in jobs]
                done = [
                    f.result()
                    for f in progress_bar(
                        list(as_completed(futures)), enabled=progress, desc="mteb", unit="folder"
                    )
                ]
            return sorted(done, key=lambda o: o.folder)
        largest_first = sorted(jobs, key=lambda j: -sum(f.size for f in j.files))
        pool = self._start()
        futures = [pool.submit(_run, job) for job in largest_first]
        done = [
            f.result()
            for f in progress_bar(
                list(as_completed(futures)), enabled=progress, desc="mteb", unit="folder"
            )
        ]
        return sorted(done, key=lambda o: o.folder)


def write_dataset_file(out: Path, *, registered_only: bool = False) -> None:
    """``dataset.json``: the dataset's name and its scoring rules; with a catalog, only the
    catalog's (registry) models take part in leaderboards, as on MTEB's own leaderboard."""
    option = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    info = {**DATASET_INFO, "scoring": {**DATASET_INFO["scoring"]}}
    if registered_only:
        info["scoring"]["registered_only"] = True
    write_bytes_atomic(out / DATASET_FILE, orjson.dumps(info, option=option) + b"\n")


def copy_descriptive_stats(
    catalog: Path,
    tasks: Iterable[str],
    stage: Staging,
    report: ImportReport,
    *,
    previous: Mapping[str, Sequence[int]],
) -> dict[str, list[int]]:
    """Copy ``catalog/descriptive_stats/<Task>.json`` of the catalog's tasks, byte for byte.

    A file whose size and mtime match ``previous`` (the last import's) is linked from the
    previous output instead. Returns the new (size, mtime) of every copied file.
    """
    src = catalog / STATS_DIR
    if not src.is_dir():
        return {}
    dst = stage.tmp / STATS_DIR
    dst.mkdir(exist_ok=True)
    copied: dict[str, list[int]] = {}
    for name in sorted(set(tasks)):
        if "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
            report.skip("descriptive stats: unsafe task name", name)
            continue
        file = f"{name}.json"
        try:
            st = os.stat(src / file)
        except OSError:
            continue  # no statistics for this task
        sig = [st.st_size, st.st_mtime_ns]
        old = stage.out / STATS_DIR / file
        try:
            if list(previous.get(file, ())) == sig and old.is_file():
                os.link(old, dst / file)
            else:
                shutil.copyfile(src / file, dst / file)
        except OSError:
            report.skip("descriptive stats: unreadable file", file)
            continue
        copied[file] = sig
    report.count("descriptive stats files", len(copied))
    report.written[f"{STATS_DIR}/"] = len(copied)
    return copied
