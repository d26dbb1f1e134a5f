"""Per-snapshot views: scoring results turned into response schemas, memoized per snapshot."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic.alias_generators import to_camel

from leaderboard_api import fields as f
from leaderboard_api import schemas
from leaderboard_api.dataset.contract import BenchmarkInfo, MenuEntry, MenuLeaf, ModelInfo, TaskInfo
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.queries import ModelQuery, TaskQuery
from leaderboard_api.scoring import views as sv
from leaderboard_api.scoring.errors import (
    BadParameter,
    NoStatistics,
    UnknownBenchmark,
    UnknownModel,
    UnknownTask,
)
from leaderboard_api.scoring.rowkeys import row_key, split_key
from leaderboard_api.scoring.summary import summary_ratings
from leaderboard_api.scoring.tasks import metric_cells

T = TypeVar("T")


def _present(scores: dict[str, Any]) -> dict[str, Any]:
    """A score map without its missing entries (the frontend reads an absent key as missing)."""
    return {k: v for k, v in scores.items() if v is not None}


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def _zero_shot(value: float | None) -> int:
    return -1 if value is None else int(value)  # truncated, as MTEB shows it


def _declared(bench: BenchmarkInfo) -> frozenset[str]:
    """The aggregation names a benchmark declares (custom groupings aside)."""
    return frozenset(a for a in bench.extras().get("aggregations") or [] if isinstance(a, str))


#: Declared aggregation -> the summary column ``meanTask`` shows for it, by precedence.
_PRIMARY = (
    ("mean_task", "mean_task"),
    ("mean_subset", "mean_subset"),
    ("mean_task_type", "mean_task_type"),
    ("public_private", "mean_public"),
)


def _declared_means(declared: frozenset[str], row: dict[str, Any]) -> dict[str, Any]:
    """The means a benchmark's declared aggregations show, MTEB's way: ``meanTask`` holds
    the first declared of mean_task, mean_subset, mean_task_type, public_private (its public
    mean); undeclared means are null.  Nothing declared: all shown (an empty update)."""
    if not declared:
        return {}
    primary = next((row[column] for agg, column in _PRIMARY if agg in declared), None)
    split = "public_private" in declared and "mean_task" in declared
    return {
        "mean_task": primary,
        "mean_task_type": row["mean_task_type"] if "mean_task_type" in declared else None,
        "mean_public": row["mean_public"] if split else None,
        "mean_private": row["mean_private"] if split else None,
    }


#: Model extras ``model_fields`` serves under other names.
_MODEL_SOURCES = frozenset({"use_instructions", "openness", "openness_score", "variants"})
#: Model extras the frontend reads as text (some catalogs hold booleans or objects there).
_MODEL_TEXT = ("public_training_code", "public_training_data", "adapted_from", "superseded_by")


def model_out(model: ModelInfo, *, num_benchmarks: int | None = None) -> schemas.ModelOut:
    more = f.extras(model, skip=_MODEL_SOURCES)
    for key in _MODEL_TEXT:
        camel = to_camel(key)
        if more.get(camel) is not None and not isinstance(more[camel], str):
            more[camel] = str(more[camel])
    return schemas.ModelOut(
        **f.model_fields(model),
        training_datasets=model.training_datasets,
        num_benchmarks=num_benchmarks,
        **more,
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
        self.aliases = f.alias_table(snapshot.benchmarks)
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
        """The benchmark named ``name`` or one of its aliases; raises UnknownBenchmark."""
        bench = self.snapshot.benchmarks.get(name)
        if bench is None:
            canonical = self.aliases.get(name)
            if canonical is None:
                raise UnknownBenchmark(name)
            bench = self.snapshot.benchmarks[canonical]
        return bench

    def canonical_benchmark(self, name: str) -> str:
        """The canonical name of a benchmark named by its name or an alias."""
        return self.require_benchmark(name).name

    def require_task(self, name: str) -> TaskInfo:
        task = self.snapshot.tasks.get(name)
        if task is None:
            raise UnknownTask(name)
        return task

    def require_model(self, name: str) -> ModelInfo:
        """The model named ``name``, or the model of a variant row's name; UnknownModel."""
        model = self.snapshot.models.get(name) or self.snapshot.models.get(
            self._variant_names().get(name, "")
        )
        if model is None:
            raise UnknownModel(name)
        return model

    def _variant_names(self) -> dict[str, str]:
        """Variant row name -> its model's name (the frontend links rows by their name)."""

        def build() -> dict[str, str]:
            out: dict[str, str] = {}
            for name, info in self.snapshot.models.items():
                variants = info.extras().get("variants")
                for variant in variants if isinstance(variants, dict) else {}:
                    out[self.row_name(row_key(name, str(variant)))] = name
            return out

        return self._once(("variant-names",), build)

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
        langs = sorted(f.benchmark_languages(bench, self.snapshot.tasks))
        summary = self.summary(bench.name)
        groupings = self.custom_groupings(bench)
        icon = f.icon_path(bench)
        fields: dict[str, Any] = {
            "name": bench.name,
            "display_name": bench.display_name or bench.name,
            "icon": icon,
            "icon_source": bench.icon if icon != bench.icon else None,
            "description": bench.description,
            "reference": bench.reference,
            "citation": bench.citation,
            "languages": langs,
            "task_types": sorted({t.type for t in tasks}),
            "simplified_task_types": sorted({f.simplified_type(t) for t in tasks}),
            "tasks": list(dict.fromkeys(t.name for t in tasks)),
            "domains": sorted({d for t in tasks for d in t.domains}),
            "modalities": sorted({m for t in tasks for m in t.modalities}),
            "display_on_leaderboard": not bench.hidden
            and extras.get("display_on_leaderboard") is not False,
            "new_version": f.new_version(bench),
            "aggregations": self._aggregations(bench, has_groupings=bool(groupings)),
            "custom_groupings": groupings,
            "show_zero_shot": bool(extras.get("show_zero_shot", False)),
            "num_models": summary.num_models,
            "language_view": f.language_view(bench, langs),
            "aliases": f.aliases(bench),
            "hidden": bench.hidden,
            "rank_method": bench.scoring.rank_method,
            "normalize": bench.scoring.normalize,
            "has_rank_intervals": bench.scoring.bradley_terry,
        }
        if cls is schemas.BenchmarkDetailOut:
            fields["tasks_meta"] = self._bench_tasks(bench)
        skip = frozenset(
            {
                "aggregations",
                "show_zero_shot",
                "display_on_leaderboard",
                "tasks",
                "n_tasks",
                "superseded_by",
                "language_view",
                "aliases",
            }
        )
        return cls(**fields, **f.extras(bench, skip=skip))

    @staticmethod
    def _aggregations(bench: BenchmarkInfo, *, has_groupings: bool) -> list[str]:
        """The declared aggregation names; ``custom_groups`` stands for custom groupings."""
        declared = bench.extras().get("aggregations") or ["mean_task", "mean_task_type"]
        names = [str(a) for a in declared if isinstance(a, str)]
        if has_groupings and "custom_groups" not in names:
            names.append("custom_groups")
        return names

    def custom_groupings(self, bench: BenchmarkInfo) -> list[schemas.CustomGroupingOut]:
        """The benchmark's declared custom groupings (MIEB-style aggregations)."""
        return [
            schemas.CustomGroupingOut(
                name=g.name,
                groups=[
                    schemas.CustomGroupOut(
                        label=group.label,
                        description=group.description,
                        tasks=list(group.whole_tasks),
                        tasks_complete=group.complete,
                    )
                    for group in g.groups
                ],
            )
            for g in sv.custom_groupings(bench, self.snapshot.tasks)
        ]

    def _scored_groupings(
        self, bench: BenchmarkInfo, summary: sv.Summary
    ) -> list[schemas.CustomGroupingOut]:
        """The declared groupings restricted to the groups some model has a score for."""
        scored = set(summary.group_scores.select("grouping", "label").unique().iter_rows())
        out = []
        for grouping in self.custom_groupings(bench):
            groups = [g for g in grouping.groups if (grouping.name, g.label) in scored]
            if groups:
                out.append(grouping.model_copy(update={"groups": groups}))
        return out

    def _bench_tasks(self, bench: BenchmarkInfo) -> list[schemas.BenchmarkTaskOut]:
        """One entry per task of the benchmark (a repeated task once: its first entry)."""
        seen: set[str] = set()
        out = []
        for item in bench.tasks:
            if item.task in seen:
                continue
            seen.add(item.task)
            task = self.task(item.task) if item.task in self.snapshot.tasks else None
            base = task.model_dump() if task else {"name": item.task, "type": "Unknown"}
            base |= {"splits": item.splits, "subsets": item.subsets}
            out.append(schemas.BenchmarkTaskOut(**base))
        return out

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
        groupings = self._scored_groupings(bench, summary)
        declared = _declared(bench)
        return schemas.ScoresOut(
            benchmark_name=name,
            task_types=summary.task_types,
            tasks=summary.tasks,
            tasks_meta=self._bench_tasks(bench),
            rows=[self._row_out(r | _declared_means(declared, r)) for r in summary.rows()],
            aggregations=self._aggregations(
                bench, has_groupings=bool(self.custom_groupings(bench))
            ),
            custom_groupings=groupings,
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
            found = self._briefs.setdefault(name, schemas.ModelBriefOut(**f.model_fields(model)))
        return found

    def experiments(self, key: str) -> dict[str, Any] | None:
        """The experiment settings of a variant row (``models.jsonl`` ``variants``), else None."""
        model, variant = split_key(key)
        if variant is None:
            return None
        info = self.snapshot.models.get(model)
        found = (info.extras().get("variants") if info else None) or {}
        settings = found.get(variant) if isinstance(found, dict) else None
        return dict(settings) if isinstance(settings, dict) else {"variant": variant}

    def row_name(self, key: str) -> str:
        """The name a table row shows: the model's, or for a variant the model's with its
        settings, ``org/model (k=v, ...)`` (the form MTEB's registry names such variants
        in), so every row of a table has a name of its own."""
        model, variant = split_key(key)
        if variant is None:
            return model
        settings = self.experiments(key) or {}
        shown = [f"{k}={v}" for k, v in sorted(settings.items()) if v not in (None, "", {}, [])]
        return f"{model} ({', '.join(shown) if shown else variant})"

    def _row_model(self, key: str, **update: Any) -> schemas.ModelBriefOut:
        model, variant = split_key(key)
        brief = self.model_brief(model)
        if variant is not None:
            update |= {"name": self.row_name(key), "variant_of": model}
        return brief.model_copy(update=update) if update else brief

    def _row_out(self, row: dict[str, Any]) -> schemas.ScoreRowOut:
        fields = dict(row)
        zero_shot = _zero_shot(row["zero_shot_pct"])
        fields["model"] = self._row_model(row["model"], zero_shot_pct=zero_shot)
        fields["zero_shot_pct"] = zero_shot
        fields["max_tokens"] = _int_or_none(row["max_tokens"])
        fields["scores_by_task"] = _present(row["scores_by_task"])
        fields["scores_by_task_type"] = _present(row["scores_by_task_type"])
        raw = row.get("raw_scores_by_task")
        fields["raw_scores_by_task"] = None if raw is None else _present(raw)
        fields["experiments"] = self.experiments(row["model"])
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
                schemas.PerLanguageRowOut(
                    model_name=self.row_name(m),
                    scores_by_language=_present(s),
                    experiments=self.experiments(m),
                )
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
                base, _ = split_key(leader["model"])
                model = self.snapshot.models.get(base) or ModelInfo(name=base)
                lead = schemas.LeaderOut(
                    rank=leader["rank"],
                    model=schemas.LeaderModelOut(
                        name=self.row_name(leader["model"]),
                        model_type=f.model_type(model),
                    ),
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
            description=task.description or "",
            reference=task.reference,
            is_public=task.is_public,
            num_models=self._task_models.get(name, 0),
            benchmarks=sorted(set(self._task_benchmarks.get(name, []))),
            **f.task_fields(task),
            **f.extras(task, skip=f.TASK_FIELD_SOURCES),
        )

    def tasks(self, query: TaskQuery | None = None) -> list[schemas.TaskOut]:
        """The tasks matching ``query`` (every facet it names; any of a facet's values)."""
        q = query or TaskQuery()
        out = []
        for task in self.snapshot.tasks.values():
            if q.matches(task):
                out.append(self.task(task.name))
        return out

    def require_statistics(self, name: str) -> str:
        """The dataset file of the task's descriptive statistics; raises NoStatistics."""
        found = self.snapshot.stats_files.get(name)
        if found is None or self.snapshot.root is None:
            raise NoStatistics(name)
        return found

    def task_statistics(self, name: str) -> bytes:
        """The task's descriptive statistics as JSON (keys sorted: the same file, the same
        bytes), read from the dataset when first asked for."""
        path = Path(self.snapshot.root or ".") / self.require_statistics(name)
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise NoStatistics(name, f"descriptive statistics of {name!r} unreadable") from exc
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def require_metric(self, task: str, metric: str) -> str:
        """``metric`` if the task has rows of it; raises BadParameter naming the ones it has."""
        info = self.require_task(task)
        have = self.snapshot.metrics.metrics_of(task) if self.snapshot.metrics else ()
        if metric == info.main_metric or metric in have:
            return metric
        shown = ", ".join(have[:40]) + (" ..." if len(have) > 40 else "")
        raise BadParameter(
            "metric", metric, f"task {task!r} has no such metric (available: {shown or 'none'})"
        )

    def task_scores(self, name: str, *, metric: str | None = None) -> schemas.TaskScoresOut:
        task = self.require_task(name)
        cells = None
        if metric is not None and metric != task.main_metric:
            cells = metric_cells(self.snapshot, name, metric)
        view = sv.task_view(self.snapshot, name, index=self.index, metric_cells=cells)
        rows = [
            schemas.TaskScoreRowOut(
                rank=r["rank"],
                model=self._row_model(r["model"]),
                score=r["score"],
                subset_scores={
                    subset: _present(splits) for subset, splits in r["subset_scores"].items()
                },
                benchmarks=r["benchmarks"],
                trained_on=self._trained_on(split_key(r["model"])[0], name),
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

    def _trained_on(self, model: str, task: str) -> bool | None:
        info = self.snapshot.models.get(model)
        trained = info.training_datasets if info else None
        return None if trained is None else task in trained

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
            row = row | _declared_means(_declared(bench), row)
            rows.append(
                schemas.ModelScoreRowOut(
                    benchmark_name=bench.name,
                    benchmark_display_name=bench.display_name or bench.name,
                    rank=row["rank"],
                    total_models=summary.num_ranked,
                    mean_task=row["mean_task"],
                    mean_task_type=row["mean_task_type"],
                    zero_shot_pct=_zero_shot(row["zero_shot_pct"]),
                    task_types=summary.task_types,
                    scores_by_task_type=_present(row["scores_by_task_type"]),
                    complete=row["complete"],
                )
            )
        return rows

    def model(self, name: str) -> schemas.ModelOut:
        model = self.require_model(name)
        return model_out(model, num_benchmarks=len(self._model_rows(model.name)))

    def models(self, query: ModelQuery | None = None) -> list[schemas.ModelOut]:
        """The models matching ``query`` (every facet it names; any of a facet's values)."""
        q = query or ModelQuery()
        return [model_out(m) for m in self.snapshot.models.values() if q.matches(m)]

    def model_scores(self, name: str) -> schemas.ModelScoresOut:
        model = self.require_model(name)
        rows = self._model_rows(model.name)
        return schemas.ModelScoresOut(model=model_out(model, num_benchmarks=len(rows)), rows=rows)
