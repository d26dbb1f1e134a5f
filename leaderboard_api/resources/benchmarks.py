"""Benchmark pages: the list, one benchmark, the menu, its scores table, per-language scores
and size-bucket leaders."""

from __future__ import annotations

from typing import Any

from leaderboard_api import fields as f
from leaderboard_api import schemas
from leaderboard_api.dataset.contract import BenchmarkInfo, MenuEntry, MenuLeaf, ModelInfo, TaskInfo
from leaderboard_api.resources.base import Context, declared, declared_means, present, zero_shot
from leaderboard_api.resources.tasks import TaskPages
from leaderboard_api.scoring.groupings import custom_groupings
from leaderboard_api.scoring.rowkeys import split_key
from leaderboard_api.scoring.standings import DEFAULT_SIZE_BUCKETS, language_scores, leaders
from leaderboard_api.scoring.summary import BenchmarkSummary

#: Benchmark extras that ``BenchmarkOut`` serves under other names, or not at all.
_SKIP_EXTRAS = frozenset(
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


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


def _aggregations(bench: BenchmarkInfo, *, has_groupings: bool) -> list[str]:
    """The declared aggregation names; ``custom_groups`` stands for custom groupings."""
    found = bench.extras().get("aggregations") or ["mean_task", "mean_task_type"]
    names = [str(a) for a in found if isinstance(a, str)]
    if has_groupings and "custom_groups" not in names:
        names.append("custom_groups")
    return names


class BenchmarkPages:
    def __init__(self, ctx: Context, tasks: TaskPages) -> None:
        self.ctx = ctx
        self._tasks = tasks

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
            for g in custom_groupings(bench, self.ctx.snapshot.tasks)
        ]

    def _scored_groupings(
        self, bench: BenchmarkInfo, summary: BenchmarkSummary
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
            task = self._tasks.task(item.task) if item.task in self.ctx.snapshot.tasks else None
            base = task.model_dump() if task else {"name": item.task, "type": "Unknown"}
            base |= {"splits": item.splits, "subsets": item.subsets}
            out.append(schemas.BenchmarkTaskOut(**base))
        return out

    def _benchmark_out(self, bench: BenchmarkInfo, cls: type[Any] = schemas.BenchmarkOut) -> Any:
        snapshot = self.ctx.snapshot
        tasks = [snapshot.tasks.get(t.task) or TaskInfo(name=t.task) for t in bench.tasks]
        extras = bench.extras()
        langs = sorted(f.benchmark_languages(bench, snapshot.tasks))
        summary = self.ctx.summary(bench.name)
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
            "aggregations": _aggregations(bench, has_groupings=bool(groupings)),
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
        return cls(**fields, **f.extras(bench, skip=_SKIP_EXTRAS))

    def benchmarks(self, *, include_hidden: bool = False) -> list[schemas.BenchmarkOut]:
        return [
            self._benchmark_out(b)
            for b in self.ctx.snapshot.benchmarks.values()
            if include_hidden or not b.hidden
        ]

    def benchmark(self, name: str) -> schemas.BenchmarkDetailOut:
        out: schemas.BenchmarkDetailOut = self._benchmark_out(
            self.ctx.require_benchmark(name), schemas.BenchmarkDetailOut
        )
        return out

    def menu(self) -> list[schemas.MenuGroupOut]:
        snapshot = self.ctx.snapshot

        def convert(entry: MenuEntry | MenuLeaf) -> schemas.MenuGroupOut | schemas.BenchmarkOut:
            if isinstance(entry, MenuLeaf):
                out: schemas.BenchmarkOut = self._benchmark_out(
                    snapshot.benchmarks[entry.benchmark]
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

        if snapshot.menu:
            return [
                g
                for g in (convert(e) for e in snapshot.menu)
                if isinstance(g, schemas.MenuGroupOut)
            ]
        visible = [b for b in snapshot.benchmarks.values() if not b.hidden]
        return [
            schemas.MenuGroupOut(
                name="Benchmarks",
                open=True,
                children=[self._benchmark_out(b) for b in visible],
            )
        ]

    def scores(self, name: str, *, languages: tuple[str, ...]) -> schemas.ScoresOut:
        bench = self.ctx.require_benchmark(name)
        summary = self.ctx.summary(name, languages)
        groupings = self._scored_groupings(bench, summary)
        names = declared(bench)
        return schemas.ScoresOut(
            benchmark_name=name,
            task_types=summary.task_types,
            tasks=summary.tasks,
            tasks_meta=self._bench_tasks(bench),
            rows=[self._row_out(r | declared_means(names, r)) for r in summary.rows()],
            aggregations=_aggregations(bench, has_groupings=bool(self.custom_groupings(bench))),
            custom_groupings=groupings,
            show_zero_shot=bool(bench.extras().get("show_zero_shot", False)),
            languages=list(languages),
            rank_method=bench.scoring.rank_method,
            normalized=bench.scoring.normalize,
        )

    def _row_out(self, row: dict[str, Any]) -> schemas.ScoreRowOut:
        fields = dict(row)
        shot = zero_shot(row["zero_shot_pct"])
        fields["model"] = self.ctx.row_model(row["model"], zero_shot_pct=shot)
        fields["zero_shot_pct"] = shot
        fields["max_tokens"] = _int_or_none(row["max_tokens"])
        fields["scores_by_task"] = present(row["scores_by_task"])
        fields["scores_by_task_type"] = present(row["scores_by_task_type"])
        raw = row.get("raw_scores_by_task")
        fields["raw_scores_by_task"] = None if raw is None else present(raw)
        fields["experiments"] = self.ctx.experiments(row["model"])
        return schemas.ScoreRowOut(**fields)

    def per_language(self, name: str) -> schemas.PerLanguageOut:
        ctx = self.ctx
        ctx.require_benchmark(name)
        table = language_scores(ctx.snapshot, name, index=ctx.index)
        return schemas.PerLanguageOut(
            benchmark_name=name,
            languages=table.languages,
            rows=[
                schemas.PerLanguageRowOut(
                    model_name=ctx.row_name(m),
                    scores_by_language=present(s),
                    experiments=ctx.experiments(m),
                )
                for m, s in table.rows()
            ],
        )

    def leaders(
        self, name: str, *, buckets: tuple[tuple[float, float | None], ...] | None
    ) -> schemas.LeadersOut:
        ctx = self.ctx
        summary = ctx.summary(name)
        chosen = buckets if buckets is not None else DEFAULT_SIZE_BUCKETS
        out = []
        for low, high, leader in leaders(summary, chosen):
            lead = None
            if leader is not None:
                base, _ = split_key(leader["model"])
                model = ctx.snapshot.models.get(base) or ModelInfo(name=base)
                lead = schemas.LeaderOut(
                    rank=leader["rank"],
                    model=schemas.LeaderModelOut(
                        name=ctx.row_name(leader["model"]),
                        model_type=f.model_type(model),
                    ),
                    mean_task=leader["mean_task"],
                    total_params_b=leader["total_params_b"],
                )
            out.append(schemas.LeaderBucketOut(min=low, max=high, leader=lead))
        return schemas.LeadersOut(benchmark_name=name, buckets=out)
