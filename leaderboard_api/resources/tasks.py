"""Task pages: one task, the task list, its descriptive statistics, its scores (any metric)."""

from __future__ import annotations

from pathlib import Path

import orjson

from leaderboard_api import fields as f
from leaderboard_api import schemas
from leaderboard_api.queries import TaskQuery
from leaderboard_api.resources.base import Context, present
from leaderboard_api.scoring.errors import BadParameter, NoStatistics
from leaderboard_api.scoring.rowkeys import split_key
from leaderboard_api.scoring.standings import task_model_counts, task_view
from leaderboard_api.scoring.tasks import metric_cells


class TaskPages:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        snapshot = ctx.snapshot
        self._task_models = task_model_counts(snapshot)
        self._task_benchmarks: dict[str, list[str]] = {}
        for bench in snapshot.benchmarks.values():
            for item in bench.tasks:
                self._task_benchmarks.setdefault(item.task, []).append(bench.name)

    def task(self, name: str) -> schemas.TaskOut:
        task = self.ctx.require_task(name)
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
        return [self.task(t.name) for t in self.ctx.snapshot.tasks.values() if q.matches(t)]

    def require_statistics(self, name: str) -> str:
        """The dataset file of the task's descriptive statistics; raises NoStatistics."""
        snapshot = self.ctx.snapshot
        found = snapshot.stats_files.get(name)
        if found is None or snapshot.root is None:
            raise NoStatistics(name)
        return found

    def task_statistics(self, name: str) -> bytes:
        """The task's descriptive statistics as JSON (keys sorted: the same file, the same
        bytes), read from the dataset when first asked for."""
        path = Path(self.ctx.snapshot.root or ".") / self.require_statistics(name)
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise NoStatistics(name, f"descriptive statistics of {name!r} unreadable") from exc
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def require_metric(self, task: str, metric: str) -> str:
        """``metric`` if the task has rows of it; raises BadParameter naming the ones it has."""
        info = self.ctx.require_task(task)
        metrics = self.ctx.snapshot.metrics
        have = metrics.metrics_of(task) if metrics else ()
        if metric == info.main_metric or metric in have:
            return metric
        shown = ", ".join(have[:40]) + (" ..." if len(have) > 40 else "")
        raise BadParameter(
            "metric", metric, f"task {task!r} has no such metric (available: {shown or 'none'})"
        )

    def task_scores(self, name: str, *, metric: str | None = None) -> schemas.TaskScoresOut:
        ctx = self.ctx
        task = ctx.require_task(name)
        cells = None
        if metric is not None and metric != task.main_metric:
            cells = metric_cells(ctx.snapshot, name, metric)
        view = task_view(ctx.snapshot, name, index=ctx.index, metric_cells=cells)
        rows = [
            schemas.TaskScoreRowOut(
                rank=r["rank"],
                model=ctx.row_model(r["model"]),
                score=r["score"],
                subset_scores={
                    subset: present(splits) for subset, splits in r["subset_scores"].items()
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
        info = self.ctx.snapshot.models.get(model)
        trained = info.training_datasets if info else None
        return None if trained is None else task in trained
