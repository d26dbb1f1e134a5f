"""The immutable in-memory form of one dataset version."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import polars as pl

from leaderboard_api.dataset.contract import (
    BenchmarkInfo,
    DatasetInfo,
    DatasetWarning,
    LoadStats,
    MenuEntry,
    ModelInfo,
    RevisionRule,
    TaskInfo,
)
from leaderboard_api.dataset.metric_store import MetricStore
from leaderboard_api.dataset.revisions import resolve_revisions

if TYPE_CHECKING:
    from leaderboard_api.dataset.file_index import FileIndex

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """Everything loaded from one version of a dataset.

    ``results`` holds the leaderboard cells: one row per (model_name, variant, task_name,
    split, subset) with the task's main metric as ``score`` and only the revision the
    dataset's revision rule chose (``dataset.revision_rule``, see ``dataset/revisions.py``);
    columns ``model_name, model_revision, task_name, split, subset, languages, score`` plus
    any extra columns the files carried, in file order (deterministic for the same files, but
    aggregate only after sorting).  The key columns are ``pl.Categorical``
    (``contract.CATEGORICAL_COLUMNS``).  ``metrics`` keeps every metric row (same columns
    plus ``metric``) on disk when the files had a ``metric`` column, else ``None``.

    ``models`` and ``tasks`` cover every name in the catalogs and every name with results;
    all mappings are sorted by name.  Never mutated: replacing data means building a new one.
    """

    id: str
    source: str
    results: pl.DataFrame
    metrics: MetricStore | None
    models: Mapping[str, ModelInfo]
    tasks: Mapping[str, TaskInfo]
    benchmarks: Mapping[str, BenchmarkInfo]
    menu: tuple[MenuEntry, ...]
    #: When this process finished loading it.
    loaded_at: datetime
    #: When the data last changed: the commit time, else the newest file's mtime (UTC).
    updated_at: datetime
    warnings: tuple[DatasetWarning, ...] = ()
    stats: LoadStats = field(default_factory=LoadStats)
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    #: Every revision's main-metric rows, kept only when a benchmark asks for another
    #: revision rule than the dataset's (else None: ``results`` is all anyone reads).
    all_revisions: pl.DataFrame | None = None
    #: Task name -> file (relative to the dataset) of its descriptive statistics.
    stats_files: Mapping[str, str] = field(default_factory=dict)
    #: Where the dataset's files are (descriptive statistics are read from there on demand).
    root: str | None = None
    #: Which results files this snapshot was built from and where their rows are kept:
    #: what an incremental load (``load_snapshot(..., previous=...)``) starts from.
    file_index: FileIndex | None = field(default=None, repr=False)
    _derived: dict[str, object] = field(default_factory=dict, repr=False)

    def derived(self, key: str, make: Callable[[Snapshot], T]) -> T:
        """A value computed from this snapshot once (``make`` must be pure and cheap to
        repeat: two threads asking at once may both compute it)."""
        if key not in self._derived:
            self._derived[key] = make(self)
        return self._derived[key]  # type: ignore[return-value]

    @property
    def revision_rule(self) -> RevisionRule:
        return self.dataset.scoring.revisions

    def rule_of(self, benchmark: BenchmarkInfo) -> RevisionRule:
        """The revision rule a benchmark's table uses."""
        return benchmark.scoring.revisions or self.revision_rule

    def results_for(self, rule: RevisionRule) -> pl.DataFrame:
        """The leaderboard cells under ``rule`` (``results`` for the dataset's own rule)."""
        everything = self.all_revisions
        if rule == self.revision_rule or everything is None:
            return self.results
        return self.derived(
            f"results:{rule}",
            lambda snap: resolve_revisions(everything, snap.models, rule=rule)[0],
        )

    @property
    def short_id(self) -> str:
        return self.id[:12]
