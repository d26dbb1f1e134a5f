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
    #: Percent of the benchmark's tasks the model was not trained on; -1: unknown (or no
    #: benchmark in context).
    zero_shot_pct: int = -1
    total_params_b: float | None = None
    active_params_b: float | None = None
    embedding_dim: int | None = None
    max_tokens: float | None = None
    release_date: str | None = None
    #: The first of ``model_types`` (``dense`` when the catalog names none).
    model_type: str = "dense"
    model_types: list[str] = []
    instruction_tuned: bool = False
    open_weights: bool = False
    openness: dict[str, bool] | None = None
    openness_score: int | None = None
    sentence_transformers_compatible: bool = False
    license: str | None = None
    modalities: list[str] = []
    languages: list[str] = []
    memory_usage_mb: float | None = None
    #: On a variant row (an experiment of a model): the model's own name.
    variant_of: str | None = None


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
    description: str = ""
    reference: str | None = None
    is_public: bool = True
    num_models: int = 0
    benchmarks: list[str] = []
    simplified_type: str = ""
    citation: str | None = None
    source_dataset: str | None = None
    license: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    annotations_creators: str | None = None
    dialect: list[str] | None = None
    sample_creation: str | None = None


class BenchmarkTaskOut(TaskOut):
    """A task as one benchmark counts it: its metadata plus the splits and subsets that count."""

    splits: list[str] | None = None
    subsets: list[str] | None = None


class CustomGroupOut(Schema):
    label: str
    description: str | None = None
    #: The group's whole-task members (those counted with every split and subset).
    tasks: list[str] = []
    #: False when a member counts only some splits or subsets (then ``tasks`` is partial).
    tasks_complete: bool = True


class CustomGroupingOut(Schema):
    name: str
    groups: list[CustomGroupOut]


class BenchmarkOut(Schema):
    name: str
    display_name: str
    #: Text or emoji, or ``/v1/icon/{name}`` (this service's proxy) for a URL icon.
    icon: str | None = None
    #: The icon's own URL when ``icon`` goes through the proxy.
    icon_source: str | None = None
    description: str | None = None
    reference: str | None = None
    citation: str | None = None
    languages: list[str] = []
    task_types: list[str] = []
    tasks: list[str] = []
    domains: list[str] = []
    modalities: list[str] = []
    simplified_task_types: list[str] = []
    display_on_leaderboard: bool = True
    new_version: list[str] | None = None
    #: Names such as ``mean_task``; ``custom_groups`` when ``custom_groupings`` has any.
    aggregations: list[str] = []
    custom_groupings: list[CustomGroupingOut] = []
    show_zero_shot: bool = False
    num_models: int = 0
    #: ``"all"``, the per-language view's language keys, or null (no per-language view).
    language_view: list[str] | str | None = None
    aliases: list[str] = []
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
    rank: int
    model: ModelBriefOut
    #: -1 when the model's training data is unknown.
    zero_shot_pct: int = -1
    active_params_b: float | None = None
    total_params_b: float | None = None
    embedding_dim: int | None = None
    max_tokens: int | None = None
    mean_task: float | None = None
    mean_task_type: float | None = None
    mean_public: float | None = None
    mean_private: float | None = None
    #: A missing score is an absent key, never null.
    scores_by_task_type: dict[str, float] = {}
    scores_by_task: dict[str, float] = {}
    #: Custom grouping name -> group label -> score (complete groups only).
    scores_by_custom_group: dict[str, dict[str, float]] = {}
    trained_on_tasks: list[str] = []
    #: The experiment's settings for a variant row (several rows may share a model), else null.
    experiments: dict[str, Any] | None = None
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
    raw_scores_by_task: dict[str, float] | None = None


class ScoresOut(Schema):
    benchmark_name: str
    task_types: list[str]
    tasks: list[str]
    tasks_meta: list[BenchmarkTaskOut]
    rows: list[ScoreRowOut]
    aggregations: list[str] = []
    custom_groupings: list[CustomGroupingOut] = []
    show_zero_shot: bool = False
    languages: list[str] = []
    rank_method: str = "borda"
    normalized: bool = False


class PerLanguageRowOut(Schema):
    model_name: str
    scores_by_language: dict[str, float]
    experiments: dict[str, Any] | None = None


class PerLanguageOut(Schema):
    benchmark_name: str
    languages: list[str] = []
    rows: list[PerLanguageRowOut]


class LeaderModelOut(Schema):
    name: str
    model_type: str = "dense"


class LeaderOut(Schema):
    rank: int
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
    rank: int
    model: ModelBriefOut
    #: Mean over subsets of each subset's best split; null unless every subset is covered.
    score: float | None
    subset_scores: dict[str, dict[str, float]]
    benchmarks: list[str]
    #: True: trained on the task; false: declared training data without it; null: unknown.
    trained_on: bool | None = None


class TaskScoresOut(Schema):
    task: TaskOut
    benchmarks: list[str]
    subsets: list[str]
    splits: list[str]
    rows: list[TaskScoreRowOut]


class ModelScoreRowOut(Schema):
    benchmark_name: str
    benchmark_display_name: str
    rank: int
    total_models: int
    mean_task: float | None
    mean_task_type: float | None
    zero_shot_pct: int = -1
    task_types: list[str]
    scores_by_task_type: dict[str, float]
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
    #: The operational store (submissions, votes, keys): ``ok``, an error, or None when
    #: the write side is off.  It does not gate readiness: reads never need it.
    state_store: str | None = None
