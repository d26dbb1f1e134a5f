"""The finite set of unparameterized routes of a snapshot, as build jobs for warmup and export."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial

from leaderboard_api.lifecycle import AppState
from leaderboard_api.routes.v1 import CSV, JSON, csv_filename, encode, make_payload
from leaderboard_api.serving.payload import Payload
from leaderboard_api.views import Views

WarmItem = tuple[Hashable, Callable[[], Payload], tuple[Hashable, ...]]


@dataclass(frozen=True, slots=True)
class RouteJob:
    """One unparameterized route: its cache key, its URL paths, and how to build its body."""

    route: str
    paths: tuple[str, ...]
    build: Callable[[Views], bytes]
    media_type: str = JSON
    extra_headers: tuple[tuple[str, str], ...] = ()


def _call_json(method: str, name: str, views: Views) -> bytes:
    return encode(getattr(views, method)(name))


def _scores_json(name: str, views: Views) -> bytes:
    return encode(views.scores(name, languages=()))


def _scores_csv(name: str, views: Views) -> bytes:
    return views.scores_csv(name, languages=())


def _leaders_json(name: str, views: Views) -> bytes:
    return encode(views.leaders(name, buckets=None))


def route_jobs(views: Views) -> tuple[list[RouteJob], list[RouteJob]]:
    """Jobs for every unparameterized route: (lists and benchmarks first, then tasks, models)."""
    first: list[RouteJob] = [
        RouteJob("benchmarks", ("/v1/benchmarks",), lambda v: encode(v.benchmarks())),
        RouteJob("menu", ("/v1/benchmarks/menu",), lambda v: encode(v.menu())),
        RouteJob("tasks", ("/v1/tasks",), lambda v: encode(v.tasks())),
        RouteJob("models", ("/v1/models",), lambda v: encode(v.models())),
    ]
    # Readiness waits for the lists and every leaderboard; the rest follows in the background.
    rest: list[RouteJob] = []
    aliases: dict[str, list[str]] = {}
    for alias, canonical in sorted(views.aliases.items()):
        aliases.setdefault(canonical, []).append(alias)
    for name in views.benchmark_names():
        # An alias serves the canonical payload (same bytes, same ETag) under its own paths.
        bases = [f"/v1/benchmarks/{n}" for n in [name, *aliases.get(name, [])]]

        def paths(suffix: str, bases: list[str] = bases) -> tuple[str, ...]:
            return tuple(f"{b}{suffix}" for b in bases)

        first += [
            RouteJob(f"benchmark:{name}", paths(""), partial(_call_json, "benchmark", name)),
            RouteJob(
                f"benchmark-scores:{name}",
                paths("/scores") + paths("/summary"),
                partial(_scores_json, name),
            ),
        ]
        rest += [
            RouteJob(
                f"benchmark-csv:{name}",
                paths("/scores.csv"),
                partial(_scores_csv, name),
                media_type=CSV,
                extra_headers=(
                    ("content-disposition", f'attachment; filename="{csv_filename(name)}"'),
                ),
            ),
            RouteJob(
                f"benchmark-leaders:{name}",
                paths("/leaders"),
                partial(_leaders_json, name),
            ),
            RouteJob(
                f"benchmark-per-language:{name}",
                paths("/per-language"),
                partial(_call_json, "per_language", name),
            ),
        ]
    for name in views.task_names():
        rest += [
            RouteJob(f"task:{name}", (f"/v1/tasks/{name}",), partial(_call_json, "task", name)),
            RouteJob(
                f"task-scores:{name}",
                (f"/v1/tasks/{name}/scores",),
                partial(_call_json, "task_scores", name),
            ),
        ]
    for name in views.model_names():
        rest += [
            RouteJob(f"model:{name}", (f"/v1/models/{name}",), partial(_call_json, "model", name)),
            RouteJob(
                f"model-scores:{name}",
                (f"/v1/models/{name}/scores",),
                partial(_call_json, "model_scores", name),
            ),
        ]
    return first, rest


def warm_plan(state: AppState, views: Views) -> tuple[list[WarmItem], list[WarmItem]]:
    """Cache keys, builders and raw-path aliases exactly as the route handlers make them."""
    snapshot_id = views.snapshot.id

    def items(jobs: list[RouteJob]) -> list[WarmItem]:
        out: list[WarmItem] = []
        for job in jobs:

            def build(job: RouteJob = job) -> Payload:
                started = time.perf_counter()
                body = job.build(views)
                payload = make_payload(
                    state,
                    views,
                    body,
                    media_type=job.media_type,
                    extra=job.extra_headers,
                    route=job.route,
                )
                if state.metrics is not None:
                    kind = job.route.split(":")[0]
                    state.metrics.observe_build(kind, time.perf_counter() - started)
                return payload

            aliases = tuple((snapshot_id, path, b"") for path in job.paths)
            out.append(((snapshot_id, job.route, ()), build, aliases))
        return out

    first, rest = route_jobs(views)
    return items(first), items(rest)
