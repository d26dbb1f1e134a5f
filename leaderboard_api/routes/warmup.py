"""The finite set of unparameterized routes of a snapshot, as build jobs for warmup and export."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from urllib.parse import quote

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
    for name in views.benchmark_names():
        base = f"/v1/benchmarks/{name}"
        first += [
            RouteJob(f"benchmark:{name}", (base,), lambda v, n=name: encode(v.benchmark(n))),
            RouteJob(
                f"benchmark-scores:{name}",
                (f"{base}/scores", f"{base}/summary"),
                lambda v, n=name: encode(v.scores(n, languages=())),
            ),
        ]
        rest += [
            RouteJob(
                f"benchmark-csv:{name}",
                (f"{base}/scores.csv",),
                lambda v, n=name: v.scores_csv(n, languages=()),
                media_type=CSV,
                extra_headers=(
                    ("content-disposition", f'attachment; filename="{csv_filename(name)}"'),
                ),
            ),
            RouteJob(
                f"benchmark-leaders:{name}",
                (f"{base}/leaders",),
                lambda v, n=name: encode(v.leaders(n, buckets=None)),
            ),
            RouteJob(
                f"benchmark-per-language:{name}",
                (f"{base}/per-language",),
                lambda v, n=name: encode(v.per_language(n)),
            ),
        ]
    for name in views.task_names():
        rest += [
            RouteJob(f"task:{name}", (f"/v1/tasks/{name}",), lambda v, n=name: encode(v.task(n))),
            RouteJob(
                f"task-scores:{name}",
                (f"/v1/tasks/{name}/scores",),
                lambda v, n=name: encode(v.task_scores(n)),
            ),
        ]
    for name in views.model_names():
        rest += [
            RouteJob(
                f"model:{name}", (f"/v1/models/{name}",), lambda v, n=name: encode(v.model(n))
            ),
            RouteJob(
                f"model-scores:{name}",
                (f"/v1/models/{name}/scores",),
                lambda v, n=name: encode(v.model_scores(n)),
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
                body = job.build(views)
                return make_payload(
                    state, views, body, media_type=job.media_type, extra=job.extra_headers
                )

            aliases = tuple((snapshot_id, path, b"") for path in job.paths)
            out.append(((snapshot_id, job.route, ()), build, aliases))
        return out

    first, rest = route_jobs(views)
    return items(first), items(rest)


def url_path(path: str) -> str:
    """A route path percent-encoded for a URL (names hold spaces, slashes are kept)."""
    return quote(path, safe="/()-_.,~")
