"""The immutable in-memory form of one dataset version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from leaderboard_api.dataset.contract import (
    BenchmarkInfo,
    DatasetWarning,
    LoadStats,
    MenuEntry,
    ModelInfo,
    TaskInfo,
)


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """Everything loaded from one version of a dataset.

    ``results`` holds the leaderboard cells: one row per (model_name, task_name, split,
    subset) with the task's main metric as ``score`` and only the model's chosen revision;
    columns ``model_name, model_revision, task_name, split, subset, languages, score`` plus
    any extra columns the files carried, in file order (deterministic for the same files, but
    aggregate only after sorting).  The key columns are ``pl.Categorical``
    (``contract.CATEGORICAL_COLUMNS``).  ``metrics`` holds every metric
    row (same columns plus ``metric``) when the files had a ``metric`` column, else ``None``.

    ``models`` and ``tasks`` cover every name in the catalogs and every name with results;
    all mappings are sorted by name.  Never mutated: replacing data means building a new one.
    """

    id: str
    source: str
    results: pl.DataFrame
    metrics: pl.DataFrame | None
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

    @property
    def short_id(self) -> str:
        return self.id[:12]
