"""The dataset contract: result columns, catalog entry models and the errors that name bad input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

#: Bumped whenever the normalized frames or catalog models change shape; part of disk-cache keys.
CONTRACT_VERSION = 3

RESULTS_DIR = "results"
MODELS_FILES = ("models.jsonl", "models.parquet")
TASKS_FILE = "tasks.jsonl"
BENCHMARKS_FILE = "benchmarks.jsonl"
MENU_FILE = "menu.json"
DATASET_FILE = "dataset.json"
STATS_DIR = "descriptive_stats"

#: Name of the benchmark synthesized when a dataset has no ``benchmarks.jsonl``.
DEFAULT_BENCHMARK = "all"

#: Columns of a results file: name -> (dtype, required, default for a missing column).
RESULT_COLUMNS: dict[str, tuple[pl.DataType, bool, object]] = {
    "model_name": (pl.String(), True, None),
    "model_revision": (pl.String(), False, None),
    "task_name": (pl.String(), True, None),
    "split": (pl.String(), False, "test"),
    "subset": (pl.String(), False, "default"),
    "languages": (pl.List(pl.String()), False, []),
    "score": (pl.Float64(), True, None),
}
OPTIONAL_RESULT_COLUMNS: dict[str, pl.DataType] = {
    "variant": pl.String(),
    "metric": pl.String(),
    "evaluated_at": pl.Datetime("us", "UTC"),
}
#: Stored as ``pl.Categorical`` in a Snapshot (compare, join and filter them as usual;
#: cast to ``pl.String`` before serializing). Sorting a Categorical is lexical.
CATEGORICAL_COLUMNS = (
    "model_name",
    "model_revision",
    "variant",
    "task_name",
    "split",
    "subset",
    "metric",
)
#: The identity of one result cell; two rows with the same key are duplicates.
RESULT_KEY = ("model_name", "model_revision", "variant", "task_name", "split", "subset", "metric")
#: How the revision behind each leaderboard cell is chosen (see docs/scoring.md):
#: ``per_task`` picks, for every (model, variant, task), the best revision with scores for
#: that task (MTEB's rule); ``per_model`` picks one revision per (model, variant).
REVISION_RULES = ("per_task", "per_model")


class DatasetError(Exception):
    """Bad input: names the file, the column and example offending rows.

    A user error, printed without a traceback by the CLI and refused at startup.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        examples: Sequence[object] = (),
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.column = column
        self.examples = list(examples)[:5]
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        where = ": ".join(parts)
        text = f"{where}: {self.message}" if where else self.message
        if self.examples:
            shown = "; ".join(str(e) for e in self.examples)
            text += f" (e.g. {shown})"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


@dataclass(frozen=True, slots=True)
class DatasetWarning:
    """Something suspicious that does not stop a load (reported by ``validate`` and ``/ready``)."""

    message: str
    file: str | None = None

    def render(self) -> str:
        return f"{self.file}: {self.message}" if self.file else self.message


class CatalogEntry(BaseModel):
    """Base of catalog rows: unknown fields are kept and served."""

    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    def extras(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class ModelInfo(CatalogEntry):
    name: str
    revision: str | None = None
    n_parameters: float | None = None
    n_active_parameters: float | None = None
    release_date: date | str | None = None
    license: str | None = None
    open_weights: bool | None = None
    model_type: list[str] | str | None = None
    reference: str | None = None
    embed_dim: int | None = None
    max_tokens: float | None = None
    memory_usage_mb: float | None = None
    languages: list[str] = Field(default_factory=list)
    modalities: list[str] = Field(default_factory=list)
    #: Task names the model was trained on; ``None`` means unknown (no zero-shot figure).
    training_datasets: list[str] | None = None


class TaskInfo(CatalogEntry):
    name: str
    type: str = "Unknown"
    main_metric: str | None = None
    higher_is_better: bool = True
    random_baseline: float | None = None
    unit: str | None = None
    languages: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    modalities: list[str] = Field(default_factory=list)
    description: str | None = None
    reference: str | None = None
    is_public: bool = True


class BenchmarkTask(CatalogEntry):
    task: str
    #: Splits that count; ``None`` means every split present in the results.
    splits: list[str] | None = None
    #: Subsets that count; ``None`` means every subset present in the results.
    subsets: list[str] | None = None


RankMethod = Literal["borda", "mean_rank", "mean"]
RevisionRule = Literal["per_task", "per_model"]
BordaPoints = Literal["pairwise", "field"]
#: Summary columns a table may be ordered by (``scoring.rank_by``).
RANK_BY_COLUMNS = ("mean_task", "mean_task_type", "mean_public", "mean_private", "mean_subset")


class ScoringOptions(CatalogEntry):
    normalize: bool = False
    rank_method: RankMethod = "borda"
    rank_partial_last: bool = True
    default_sort: str | None = None
    bradley_terry: bool = False
    #: ``pairwise``: a point per model beaten in a task (half per tie), complete task scores
    #: only.  ``field``: ``(models in the table) - (average rank in the task)``, every task a
    #: model has cells in counting with the mean of those cells (MTEB's Borda).
    borda: BordaPoints = "pairwise"
    #: When set, the rank is the position after sorting by these summary columns, highest
    #: first, missing last, ties by name (MTEB's MIEB and ViDoRe tables).
    rank_by: (
        list[Literal["mean_task", "mean_task_type", "mean_public", "mean_private", "mean_subset"]]
        | None
    ) = None
    #: Leave private tasks (``is_public: false``) out of the table (MTEB's RTEB tables).
    exclude_private: bool = False
    #: Leave out of the table the models without a single complete task score; they still
    #: count in the field their points are measured against (MTEB's tables).
    hide_uncovered: bool = False
    #: ``None``: the dataset's rule (``dataset.json``), ``per_model`` unless it says otherwise.
    revisions: RevisionRule | None = None


class DatasetScoring(CatalogEntry):
    revisions: RevisionRule = "per_model"
    #: Only models whose ``models.jsonl`` entry says ``registered: true`` take part
    #: (MTEB's leaderboard shows its registry's models only).
    registered_only: bool = False


class DatasetInfo(CatalogEntry):
    """``dataset.json``: settings of the whole dataset (all optional)."""

    name: str | None = None
    description: str | None = None
    scoring: DatasetScoring = Field(default_factory=DatasetScoring)


class BenchmarkInfo(CatalogEntry):
    name: str
    display_name: str | None = None
    description: str | None = None
    reference: str | None = None
    citation: str | None = None
    icon: str | None = None
    hidden: bool = False
    tasks: list[BenchmarkTask] = Field(default_factory=list)
    scoring: ScoringOptions = Field(default_factory=ScoringOptions)


class MenuEntry(CatalogEntry):
    """A menu group; ``children`` holds groups or benchmark leaves."""

    name: str
    description: str | None = None
    open: bool = False
    children: list[MenuEntry | MenuLeaf] = Field(default_factory=list)


class MenuLeaf(CatalogEntry):
    benchmark: str
    display_name: str | None = None


MenuEntry.model_rebuild()


@dataclass(frozen=True, slots=True)
class LoadStats:
    """Counts a load reports: what was read, dropped and why."""

    files: int = 0
    rows_read: int = 0
    rows: int = 0
    nan_scores: int = 0
    duplicates_dropped: int = 0
    revisions_dropped: int = 0
    extra: dict[str, int] = field(default_factory=dict)
