"""Per-snapshot resources: scoring results turned into response schemas, one module per
resource (benchmarks, tasks, models, CSV) over one shared per-snapshot ``Context``.

``Views`` is what the routes hold for a snapshot: it composes the resources and delegates
to them, so callers see one object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from leaderboard_api import schemas
from leaderboard_api.dataset.contract import BenchmarkInfo, ModelInfo, TaskInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.queries import ModelQuery, TaskQuery
from leaderboard_api.resources.base import Context
from leaderboard_api.resources.benchmarks import BenchmarkPages
from leaderboard_api.resources.csv import CsvPages
from leaderboard_api.resources.models import ModelPages, model_out
from leaderboard_api.resources.tasks import TaskPages
from leaderboard_api.scoring.summary import BenchmarkSummary

__all__ = ["BenchmarkPages", "Context", "CsvPages", "ModelPages", "TaskPages", "Views", "model_out"]


class Views:
    """Everything the API serves for one snapshot; expensive parts computed once, on demand.

    Thread-safe: builds run in worker threads, and each memo entry is computed once.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.context = Context(snapshot)
        self.snapshot = snapshot
        self.index = self.context.index
        self.aliases = self.context.aliases
        self.task_pages = TaskPages(self.context)
        self.benchmark_pages = BenchmarkPages(self.context, self.task_pages)
        self.model_pages = ModelPages(self.context)
        self.csv_pages = CsvPages(self.benchmark_pages)

    # --- lookups and memo (the shared context) ----------------------------------------

    def require_benchmark(self, name: str) -> BenchmarkInfo:
        return self.context.require_benchmark(name)

    def canonical_benchmark(self, name: str) -> str:
        return self.context.canonical_benchmark(name)

    def require_task(self, name: str) -> TaskInfo:
        return self.context.require_task(name)

    def require_model(self, name: str) -> ModelInfo:
        return self.context.require_model(name)

    def benchmark_names(self) -> list[str]:
        return self.context.benchmark_names()

    def task_names(self) -> list[str]:
        return self.context.task_names()

    def model_names(self) -> list[str]:
        return self.context.model_names()

    def normalize_languages(self, values: Iterable[str]) -> tuple[str, ...]:
        return self.context.normalize_languages(values)

    def summary(self, name: str, languages: tuple[str, ...] = ()) -> BenchmarkSummary:
        return self.context.summary(name, languages)

    def memo_size(self) -> int:
        return self.context.memo_size()

    def trim(self) -> int:
        """Forget what only model pages reuse (per-model score rows, rows by model): once
        every model page is built, they would hold hundreds of MB on the whole MTEB data
        for nothing; a later build computes what it needs again."""
        return self.context.forget(("model-rows", "rows-by-model"))

    def model_brief(self, name: str) -> schemas.ModelBriefOut:
        return self.context.model_brief(name)

    def experiments(self, key: str) -> dict[str, Any] | None:
        return self.context.experiments(key)

    def row_name(self, key: str) -> str:
        return self.context.row_name(key)

    # --- benchmarks -------------------------------------------------------------------

    def custom_groupings(self, bench: BenchmarkInfo) -> list[schemas.CustomGroupingOut]:
        return self.benchmark_pages.custom_groupings(bench)

    def benchmarks(self, *, include_hidden: bool = False) -> list[schemas.BenchmarkOut]:
        return self.benchmark_pages.benchmarks(include_hidden=include_hidden)

    def benchmark(self, name: str) -> schemas.BenchmarkDetailOut:
        return self.benchmark_pages.benchmark(name)

    def menu(self) -> list[schemas.MenuGroupOut]:
        return self.benchmark_pages.menu()

    def scores(self, name: str, *, languages: tuple[str, ...]) -> schemas.ScoresOut:
        return self.benchmark_pages.scores(name, languages=languages)

    def per_language(self, name: str) -> schemas.PerLanguageOut:
        return self.benchmark_pages.per_language(name)

    def leaders(
        self, name: str, *, buckets: tuple[tuple[float, float | None], ...] | None
    ) -> schemas.LeadersOut:
        return self.benchmark_pages.leaders(name, buckets=buckets)

    # --- CSV --------------------------------------------------------------------------

    def scores_csv(self, name: str, *, languages: tuple[str, ...]) -> bytes:
        return self.csv_pages.scores_csv(name, languages=languages)

    # --- tasks ------------------------------------------------------------------------

    def task(self, name: str) -> schemas.TaskOut:
        return self.task_pages.task(name)

    def tasks(self, query: TaskQuery | None = None) -> list[schemas.TaskOut]:
        return self.task_pages.tasks(query)

    def require_statistics(self, name: str) -> str:
        return self.task_pages.require_statistics(name)

    def task_statistics(self, name: str) -> bytes:
        return self.task_pages.task_statistics(name)

    def require_metric(self, task: str, metric: str) -> str:
        return self.task_pages.require_metric(task, metric)

    def task_scores(self, name: str, *, metric: str | None = None) -> schemas.TaskScoresOut:
        return self.task_pages.task_scores(name, metric=metric)

    # --- models -----------------------------------------------------------------------

    def model(self, name: str) -> schemas.ModelOut:
        return self.model_pages.model(name)

    def models(self, query: ModelQuery | None = None) -> list[schemas.ModelOut]:
        return self.model_pages.models(query)

    def model_scores(self, name: str) -> schemas.ModelScoresOut:
        return self.model_pages.model_scores(name)
