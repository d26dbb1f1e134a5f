"""Per-snapshot views: scoring results turned into response schemas, memoized per snapshot."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic.alias_generators import to_camel

from leaderboard_api import schemas
from leaderboard_api.dataset.contract import BenchmarkInfo, MenuEntry, MenuLeaf, ModelInfo, TaskInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.scoring import views as sv
from leaderboard_api.scoring.errors import UnknownBenchmark, UnknownModel, UnknownTask
from leaderboard_api.scoring.summary import summary_ratings

T = TypeVar("T")


def _extras(entry: Any, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    skipped = set(skip)
    return {to_camel(k): v for k, v in entry.extras().items() if k not in skipped}


def _lang_code(code: str) -> str:
    return code.split("-", 1)[0]


def _model_fields(model: ModelInfo) -> dict[str, Any]:
    """The fields every model object shares (``ModelBriefOut``'s), from the catalog entry."""

    def billions(value: float | None) -> float | None:
        return None if value is None else value / 1e9

    active = model.n_active_parameters
    return {
        "name": model.name,
        "revision": model.revision,
        "url": model.reference,
        "total_params_b": billions(model.n_parameters),
        "active_params_b": billions(active if active is not None else model.n_parameters),
        "embedding_dim": model.embed_dim,
        "max_tokens": model.max_tokens,
        "release_date": None if model.release_date is None else str(model.release_date),
        "model_type": model.model_type,
        "open_weights": model.open_weights,
        "license": model.license,
        "modalities": model.modalities,
        "languages": model.languages,
        "memory_usage_mb": model.memory_usage_mb,
    }


def model_out(model: ModelInfo, *, num_benchmarks: int | None = None) -> schemas.ModelOut:
    return schemas.ModelOut(
        **_model_fields(model),
        training_datasets=model.training_datasets,
        num_benchmarks=num_benchmarks,
        **_extras(model),
    )


class Views:
    """Everything the API serves for one snapshot; expensive parts computed once, on demand.

    Thread-safe: builds run in worker threads, and each memo entry is computed once.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._lock = threading.Lock()
        self._memo: dict[Any, Any] = {}
        self._key_locks: dict[Any, threading.Lock] = {}
        self._briefs: dict[str, schemas.ModelBriefOut] = {}
        self.index = sv.build_index(snapshot)
        self._task_models = sv.task_model_counts(snapshot)
        self._task_benchmarks: dict[str, list[str]] = {}
        for bench in snapshot.benchmarks.values():
            for item in bench.tasks:
                self._task_benchmarks.setdefault(item.task, []).append(bench.name)

    # --- memo -------------------------------------------------------------------------

    def _once(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._memo:
                return self._memo[key]  # type: ignore[no-any-return]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._memo:
                    return self._memo[key]  # type: ignore[no-any-return]
            value = make()
            with self._lock:
                self._memo[key] = value
            return value

    # --- lookups ----------------------------------------------------------------------

    def require_benchmark(self, name: str) -> BenchmarkInfo:
        bench = self.snapshot.benchmarks.get(name)
        if bench is None:
            raise UnknownBenchmark(name)
        return bench

    def require_task(self, name: str) -> TaskInfo:
        task = self.snapshot.tasks.get(name)
        if task is None:
            raise UnknownTask(name)
        return task

    def require_model(self, name: str) -> ModelInfo:
        model = self.snapshot.models.get(name)
        if model is None:
            raise UnknownModel(name)
        return model

    def benchmark_names(self) -> list[str]:
        return list(self.snapshot.benchmarks)

    def task_names(self) -> list[str]:
        return list(self.snapshot.tasks)

    def model_names(self) -> list[str]:
        return list(self.snapshot.models)

    def normalize_languages(self, values: Iterable[str]) -> tuple[str, ...]:
        return sv.normalize_languages(values)

    # --- benchmarks -------------------------------------------------------------------

    def summary(self, name: str, languages: tuple[str, ...] = ()) -> sv.Summary:
        """The benchmark's summary.

        The unfiltered one is memoized (every benchmark, model and leaders page reads it)
        and carries Bradley–Terry intervals when the benchmark asks for them, built at
        warmup.  Language-filtered ones are built fresh and not kept: their bytes live in
        the bounded LRU, and keeping every filter's frames here would defeat that bound.
        """
        bench = self.require_benchmark(name)
        if languages:
            return sv.benchmark_summary(self.snapshot, name, languages=languages, index=self.index)

        def build() -> sv.Summary:
            summary = sv.benchmark_summary(self.snapshot, name, index=self.index)
            if bench.scoring.bradley_terry and summary.num_models > 1:
                summary = summary.with_ratings(summary_ratings(summary))
            return summary

        return self._once(("summary", name), build)

    def memo_size(self) -> int:
        """How many results are memoized (bounded by the snapshot, not by requests)."""
        with self._lock:
            return len(self._memo)

    def _benchmark_out(self, bench: BenchmarkInfo, cls: type[Any] = schemas.BenchmarkOut) -> Any:
        tasks = [self.snapshot.tasks.get(t.task) or TaskInfo(name=t.task) for t in bench.tasks]
        extras = bench.extras()
        langs = sorted({_lang_code(lang) for t in tasks for lang in t.languages})
        summary = self.summary(bench.name)
        fields: dict[str, Any] = {
            "name": bench.name,
            "display_name": bench.display_name or bench.name,
            "icon": bench.icon,
            "description": bench.description,
            "reference": bench.reference,
            "citation": bench.citation,
            "languages": langs,
            "task_types": sorted({t.type for t in tasks}),
            "tasks": [t.name for t in tasks],
            "domains": sorted({d for t in tasks for d in t.domains}),
            "modalities": sorted({m for t in tasks for m in t.modalities}),
            "display_on_leaderboard": not bench.hidden,
            "aggregations": list(extras.get("aggregations") or ["mean_task", "mean_task_type"]),
            "show_zero_shot": bool(extras.get("show_zero_shot", False)),
            "num_models": summary.num_models,
            "hidden": bench.hidden,
            "rank_method": bench.scoring.rank_method,
            "normalize": bench.scoring.normalize,
            "has_rank_intervals": bench.scoring.bradley_terry,
        }
        if cls is schemas.BenchmarkDetailOut:
            fields["tasks_meta"] = [self._bench_task(bench, t.task) for t in bench.tasks]
        skip = {"aggregations", "show_zero_shot", "display_on_leaderboard", "tasks", "n_tasks"}
        return cls(**fields, **_extras(bench, skip=skip))

    def _bench_task(self, bench: BenchmarkInfo, task_name: str) -> schemas.BenchmarkTaskOut:
        task = self.snapshot.tasks.get(task_name) or TaskInfo(name=task_name)
        item = next(t for t in bench.tasks if t.task == task_name)
        return schemas.BenchmarkTaskOut(
            name=task.name,
            type=task.type,
            splits=item.splits,
            subsets=item.subsets,
            higher_is_better=task.higher_is_better,
            unit=task.unit,
            main_score=task.main_metric,
            is_public=task.is_public,
        )

    def benchmarks(self, *, include_hidden: bool = False) -> list[schemas.BenchmarkOut]:
        return [
            self._benchmark_out(b)
            for b in self.snapshot.benchmarks.values()
            if include_hidden or not b.hidden
        ]

    def benchmark(self, name: str) -> schemas.BenchmarkDetailOut:
        out: schemas.BenchmarkDetailOut = self._benchmark_out(
            self.require_benchmark(name), schemas.BenchmarkDetailOut
        )
        return out

    def menu(self) -> list[schemas.MenuGroupOut]:
        def convert(entry: MenuEntry | MenuLeaf) -> schemas.MenuGroupOut | schemas.BenchmarkOut:
            if isinstance(entry, MenuLeaf):
                out: schemas.BenchmarkOut = self._benchmark_out(
                    self.snapshot.benchmarks[entry.benchmark]
                )
                if entry.display_name:
                    out = out.model_copy(update={"display_name": entry.display_name})
                return out
            return schemas.MenuGroupOut(
                name=entry.name,
                description=entry.description,
                open=entry.open,
                children=[convert(c) for c in entry.children],
            )

        if self.snapshot.menu:
            return [
                g
                for g in (convert(e) for e in self.snapshot.menu)
                if isinstance(g, schemas.MenuGroupOut)
            ]
        visible = [b for b in self.snapshot.benchmarks.values() if not b.hidden]
        return [
            schemas.MenuGroupOut(
                name="Benchmarks",
                open=True,
                children=[self._benchmark_out(b) for b in visible],
            )
        ]

    def scores(self, name: str, *, languages: tuple[str, ...]) -> schemas.ScoresOut:
        bench = self.require_benchmark(name)
        summary = self.summary(name, languages)
        return schemas.ScoresOut(
            benchmark_name=name,
            task_types=summary.task_types,
            tasks=summary.tasks,
            tasks_meta=[self._bench_task(bench, t.task) for t in bench.tasks],
            rows=[self._row_out(r) for r in summary.rows()],
            aggregations=list(
                bench.extras().get("aggregations") or ["mean_task", "mean_task_type"]
            ),
            show_zero_shot=bool(bench.extras().get("show_zero_shot", False)),
            languages=list(languages),
            rank_method=bench.scoring.rank_method,
            normalized=bench.scoring.normalize,
            snapshot=self.snapshot.id,
        )

    def model_brief(self, name: str) -> schemas.ModelBriefOut:
        """The model's metadata as served inside tables (memoized: it repeats everywhere)."""
        found = self._briefs.get(name)
        if found is None:
            model = self.snapshot.models.get(name) or ModelInfo(name=name)
            found = self._briefs.setdefault(name, schemas.ModelBriefOut(**_model_fields(model)))
        return found

    def _row_out(self, row: dict[str, Any]) -> schemas.ScoreRowOut:
        fields = dict(row)
        fields["model"] = self.model_brief(row["model"])
        return schemas.ScoreRowOut(**fields)

    def scores_csv(self, name: str, *, languages: tuple[str, ...]) -> bytes:
        scores = self.scores(name, languages=languages)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = [
            "rank",
            "model",
            "complete",
            "tasks_covered",
            "mean_task",
            "mean_task_type",
            "total_params_b",
            "zero_shot_pct",
        ]
        header += [f"type:{t}" for t in scores.task_types] + list(scores.tasks)
        writer.writerow(header)

        def cell(value: object) -> object:
            if value is None:
                return ""
            if isinstance(value, float):
                return repr(value)
            return value

        for row in scores.rows:
            values: list[object] = [
                row.rank,
                row.model.name,
                str(row.complete).lower(),
                row.tasks_covered,
                row.mean_task,
                row.mean_task_type,
                row.total_params_b,
                row.zero_shot_pct,
            ]
            values += [row.scores_by_task_type.get(t) for t in scores.task_types]
            values += [row.scores_by_task.get(t) for t in scores.tasks]
            writer.writerow([cell(v) for v in values])
        return buffer.getvalue().encode()

    def per_language(self, name: str) -> schemas.PerLanguageOut:
        self.require_benchmark(name)
        table = sv.per_language(self.snapshot, name, index=self.index)
        return schemas.PerLanguageOut(
            benchmark_name=name,
            languages=table.languages,
            rows=[
                schemas.PerLanguageRowOut(model_name=m, scores_by_language=s)
                for m, s in table.rows()
            ],
        )

    def leaders(
        self, name: str, *, buckets: tuple[tuple[float, float | None], ...] | None
    ) -> schemas.LeadersOut:
        summary = self.summary(name)
        chosen = buckets if buckets is not None else sv.DEFAULT_SIZE_BUCKETS
        out = []
        for low, high, leader in sv.leaders(summary, chosen):
            lead = None
            if leader is not None:
                model = self.snapshot.models.get(leader["model"]) or ModelInfo(name=leader["model"])
                lead = schemas.LeaderOut(
                    rank=leader["rank"],
                    model=schemas.LeaderModelOut(name=model.name, model_type=model.model_type),
                    mean_task=leader["mean_task"],
                    total_params_b=leader["total_params_b"],
                )
            out.append(schemas.LeaderBucketOut(min=low, max=high, leader=lead))
        return schemas.LeadersOut(benchmark_name=name, buckets=out)

    # --- tasks ------------------------------------------------------------------------

    def task(self, name: str) -> schemas.TaskOut:
        task = self.require_task(name)
        return schemas.TaskOut(
            name=task.name,
            type=task.type,
            main_score=task.main_metric,
            higher_is_better=task.higher_is_better,
            unit=task.unit,
            random_baseline=task.random_baseline,
            languages=task.languages,
            domains=task.domains,
            modalities=task.modalities,
            description=task.description,
            reference=task.reference,
            is_public=task.is_public,
            num_models=self._task_models.get(name, 0),
            benchmarks=sorted(self._task_benchmarks.get(name, [])),
            **_extras(task),
        )

    def tasks(
        self,
        *,
        type: str | None = None,
        language: str | None = None,
        domain: str | None = None,
        name: str | None = None,
    ) -> list[schemas.TaskOut]:
        needle = name.lower() if name else None
        out = []
        for task in self.snapshot.tasks.values():
            if type and task.type.lower() != type.lower():
                continue
            if language and language not in {_lang_code(x) for x in task.languages}:
                continue
            if domain and domain.lower() not in {d.lower() for d in task.domains}:
                continue
            if needle and needle not in task.name.lower():
                continue
            out.append(self.task(task.name))
        return out

    def task_scores(self, name: str) -> schemas.TaskScoresOut:
        task = self.require_task(name)
        view = sv.task_view(self.snapshot, name, index=self.index)
        rows = [
            schemas.TaskScoreRowOut(
                rank=r["rank"],
                model=self.model_brief(r["model"]),
                score=r["score"],
                subset_scores=r["subset_scores"],
                benchmarks=r["benchmarks"],
            )
            for r in view.rows()
        ]
        return schemas.TaskScoresOut(
            task=self.task(task.name),
            benchmarks=sorted(self._task_benchmarks.get(name, [])),
            subsets=view.subsets,
            splits=view.splits,
            rows=rows,
        )

    # --- models -----------------------------------------------------------------------

    def _rows_by_model(self, benchmark: str) -> dict[str, dict[str, Any]]:
        """A benchmark's summary rows by model name (one pass, reused by every model page)."""

        def build() -> dict[str, dict[str, Any]]:
            return {row["model"]: row for row in self.summary(benchmark).rows()}

        return self._once(("rows-by-model", benchmark), build)

    def _model_rows(self, name: str) -> list[schemas.ModelScoreRowOut]:
        return self._once(("model-rows", name), lambda: self._compute_model_rows(name))

    def _compute_model_rows(self, name: str) -> list[schemas.ModelScoreRowOut]:
        rows = []
        for bench in self.snapshot.benchmarks.values():
            summary = self.summary(bench.name)
            row = self._rows_by_model(bench.name).get(name)
            if row is None:
                continue
            rows.append(
                schemas.ModelScoreRowOut(
                    benchmark_name=bench.name,
                    benchmark_display_name=bench.display_name or bench.name,
                    rank=row["rank"],
                    total_models=summary.num_ranked,
                    mean_task=row["mean_task"],
                    mean_task_type=row["mean_task_type"],
                    zero_shot_pct=row["zero_shot_pct"],
                    task_types=summary.task_types,
                    scores_by_task_type=row["scores_by_task_type"],
                    complete=row["complete"],
                )
            )
        return rows

    def model(self, name: str) -> schemas.ModelOut:
        return model_out(self.require_model(name), num_benchmarks=len(self._model_rows(name)))

    def models(
        self,
        *,
        type: str | None = None,
        open_weights: bool | None = None,
        min_params_b: float | None = None,
        max_params_b: float | None = None,
        name: str | None = None,
    ) -> list[schemas.ModelOut]:
        needle = name.lower() if name else None
        out = []
        for model in self.snapshot.models.values():
            kinds = model.model_type if isinstance(model.model_type, list) else [model.model_type]
            if type and type.lower() not in {str(k).lower() for k in kinds if k}:
                continue
            if open_weights is not None and model.open_weights is not open_weights:
                continue
            params = None if model.n_parameters is None else model.n_parameters / 1e9
            if min_params_b is not None and (params is None or params < min_params_b):
                continue
            if max_params_b is not None and (params is None or params > max_params_b):
                continue
            if needle and needle not in model.name.lower():
                continue
            out.append(model_out(model))
        return out

    def model_scores(self, name: str) -> schemas.ModelScoresOut:
        model = self.require_model(name)
        rows = self._model_rows(name)
        return schemas.ModelScoresOut(model=model_out(model, num_benchmarks=len(rows)), rows=rows)
