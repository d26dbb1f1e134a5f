"""Pure scoring: ``Snapshot (+ parameters) -> polars frames / plain values``.

No I/O, no globals; the same snapshot and parameters always give the same values.
"""

from leaderboard_api.scoring.errors import (
    BadParameter,
    ScoringError,
    UnknownBenchmark,
    UnknownLanguage,
    UnknownModel,
    UnknownTask,
)
from leaderboard_api.scoring.languages import (
    available_languages,
    language_label,
    normalize_language,
    normalize_languages,
)
from leaderboard_api.scoring.ranking import RANK_METHODS
from leaderboard_api.scoring.ratings import Ratings, bradley_terry
from leaderboard_api.scoring.summary import BenchmarkSummary, benchmark_summary, summary_ratings
from leaderboard_api.scoring.tasks import (
    BenchmarkCells,
    ScoringIndex,
    build_index,
    select_cells,
    task_scores,
    task_table,
)
from leaderboard_api.scoring.views import (
    DEFAULT_SIZE_BUCKETS,
    LanguageScores,
    Leaders,
    ModelView,
    TaskView,
    benchmark_model_counts,
    benchmark_task_types,
    language_scores,
    leaders,
    list_benchmark_names,
    model_view,
    per_language,
    task_model_counts,
    task_view,
)

__all__ = [
    "DEFAULT_SIZE_BUCKETS",
    "RANK_METHODS",
    "BadParameter",
    "BenchmarkCells",
    "BenchmarkSummary",
    "LanguageScores",
    "Leaders",
    "ModelView",
    "Ratings",
    "ScoringError",
    "ScoringIndex",
    "TaskView",
    "UnknownBenchmark",
    "UnknownLanguage",
    "UnknownModel",
    "UnknownTask",
    "available_languages",
    "benchmark_model_counts",
    "benchmark_summary",
    "benchmark_task_types",
    "bradley_terry",
    "build_index",
    "language_label",
    "language_scores",
    "leaders",
    "list_benchmark_names",
    "model_view",
    "normalize_language",
    "normalize_languages",
    "per_language",
    "select_cells",
    "summary_ratings",
    "task_model_counts",
    "task_scores",
    "task_table",
    "task_view",
]
