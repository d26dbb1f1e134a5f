"""Response models: camelCase on the wire, a superset of the MTEB leaderboard API's shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    """Base of every response: camelCase aliases; extra fields (catalog extras) pass through."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", protected_namespaces=()
    )


class ModelBriefOut(Schema):
    """A model inside table rows: its identity and size, without the long catalog fields
    (training data, citation, extras) that ``/v1/models/{name}`` serves; a table repeats it
    for every row, so leaving those out keeps leaderboards and task pages small."""

    name: str
    revision: str | None = None
    url: str | None = None
    total_params_b: float | None = None
    active_params_b: float | None = None
    embedding_dim: int | None = None
    max_tokens: float | None = None
    release_date: str | None = None
    model_type: list[str] | str | None = None
    open_weights: bool | None = None
    license: str | None = None
    modalities: list[str] = []
    languages: list[str] = []
    memory_usage_mb: float | None = None


class ModelOut(ModelBriefOut):
    """A model with everything the catalog says about it (extras pass through)."""

    training_datasets: list[str] | None = None
    num_benchmarks: int | None = None


class TaskOut(Schema):
    name: str
    type: str
    main_score: str | None = None
    higher_is_better: bool = True
    unit: str | None = None
    random_baseline: float | None = None
    languages: list[str] = []
    domains: list[str] = []
    modalities: list[str] = []
    description: str | None = None
    reference: str | None = None
    is_public: bool = True
    num_models: int = 0
    benchmarks: list[str] = []


class BenchmarkTaskOut(Schema):
    name: str
    type: str
    splits: list[str] | None = None
    subsets: list[str] | None = None
    higher_is_better: bool = True
    unit: str | None = None
    main_score: str | None = None
    is_public: bool = True


class BenchmarkOut(Schema):
    name: str
    display_name: str
    icon: str | None = None
    description: str | None = None
    reference: str | None = None
    citation: str | None = None
    languages: list[str] = []
    task_types: list[str] = []
    tasks: list[str] = []
    domains: list[str] = []
    modalities: list[str] = []
    display_on_leaderboard: bool = True
    #: Names such as ``mean_task``, or objects describing custom groupings (MIEB).
    aggregations: list[Any] = []
    show_zero_shot: bool = False
    num_models: int = 0
    hidden: bool = False
    rank_method: str = "borda"
    normalize: bool = False
    has_rank_intervals: bool = False


class BenchmarkDetailOut(BenchmarkOut):
    tasks_meta: list[BenchmarkTaskOut] = []


class MenuGroupOut(Schema):
    name: str
    description: str | None = None
    open: bool = False
    children: list[MenuGroupOut | BenchmarkOut] = []


class ScoreRowOut(Schema):
    rank: int | None
    model: ModelBriefOut
    zero_shot_pct: float | None = None
    active_params_b: float | None = None
    total_params_b: float | None = None
    embedding_dim: int | None = None
    max_tokens: float | None = None
    mean_task: float | None = None
    mean_task_type: float | None = None
    mean_public: float | None = None
    mean_private: float | None = None
    scores_by_task_type: dict[str, float | None] = {}
    scores_by_task: dict[str, float | None] = {}
    trained_on_tasks: list[str] = []
    complete: bool = True
    tasks_covered: int = 0
    rank_low: int | None = None
    rank_high: int | None = None
    rating: float | None = None
    rating_low: float | None = None
    rating_high: float | None = None
    #: Borda points and mean per-task rank (whichever method ranks, both are shown).
    points: float | None = None
    mean_rank: float | None = None
    #: Scores before normalization, on benchmarks that normalize (else null).
    raw_scores_by_task: dict[str, float | None] | None = None


class ScoresOut(Schema):
    benchmark_name: str
    task_types: list[str]
    tasks: list[str]
    tasks_meta: list[BenchmarkTaskOut]
    rows: list[ScoreRowOut]
    aggregations: list[Any] = []
    show_zero_shot: bool = False
    languages: list[str] = []
    rank_method: str = "borda"
    normalized: bool = False
    snapshot: str = ""


class PerLanguageRowOut(Schema):
    model_name: str
    scores_by_language: dict[str, float | None]


class PerLanguageOut(Schema):
    benchmark_name: str
    languages: list[str] = []
    rows: list[PerLanguageRowOut]


class LeaderModelOut(Schema):
    name: str
    model_type: list[str] | str | None = None


class LeaderOut(Schema):
    rank: int | None
    model: LeaderModelOut
    mean_task: float | None
    total_params_b: float | None


class LeaderBucketOut(Schema):
    min: float | None
    max: float | None
    leader: LeaderOut | None


class LeadersOut(Schema):
    benchmark_name: str
    buckets: list[LeaderBucketOut]


class TaskScoreRowOut(Schema):
    rank: int | None
    model: ModelBriefOut
    score: float | None
    subset_scores: dict[str, dict[str, float | None]]
    benchmarks: list[str]


class TaskScoresOut(Schema):
    task: TaskOut
    benchmarks: list[str]
    subsets: list[str]
    splits: list[str]
    rows: list[TaskScoreRowOut]


class ModelScoreRowOut(Schema):
    benchmark_name: str
    benchmark_display_name: str
    rank: int | None
    total_models: int
    mean_task: float | None
    mean_task_type: float | None
    zero_shot_pct: float | None
    task_types: list[str]
    scores_by_task_type: dict[str, float | None]
    complete: bool = True


class ModelScoresOut(Schema):
    model: ModelOut
    rows: list[ModelScoreRowOut]


class ReadyOut(Schema):
    status: str
    snapshot: str | None = None
    source: str | None = None
    loaded_at: str | None = None
    updated_at: str | None = None
    rows: int | None = None
    warmed: int | None = None
    #: Every unparameterized route is built (readiness only waits for the leaderboards).
    warmup_complete: bool = False
    load_seconds: float | None = None
    warmup_seconds: float | None = None
    last_error: str | None = None
    warnings: list[str] = []
