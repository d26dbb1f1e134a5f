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
from leaderboard_api.scoring.standings import (
    DEFAULT_SIZE_BUCKETS,
    LanguageScores,
    Leaders,
    TaskView,
    check_buckets,
    language_scores,
    leaders,
    task_model_counts,
    task_view,
)
from leaderboard_api.scoring.summary import BenchmarkSummary, benchmark_summary, summary_ratings
from leaderboard_api.scoring.tasks import (
    BenchmarkCells,
    ScoringIndex,
    build_index,
    select_cells,
    task_scores,
    task_table,
)

__all__ = [
    "DEFAULT_SIZE_BUCKETS",
    "RANK_METHODS",
    "BadParameter",
    "BenchmarkCells",
    "BenchmarkSummary",
    "LanguageScores",
    "Leaders",
    "Ratings",
    "ScoringError",
    "ScoringIndex",
    "TaskView",
    "UnknownBenchmark",
    "UnknownLanguage",
    "UnknownModel",
    "UnknownTask",
    "available_languages",
    "benchmark_summary",
    "bradley_terry",
    "build_index",
    "check_buckets",
    "language_label",
    "language_scores",
    "leaders",
    "normalize_language",
    "normalize_languages",
    "select_cells",
    "summary_ratings",
    "task_model_counts",
    "task_scores",
    "task_table",
    "task_view",
]
