"""The app's cache through HTTP: single flight, bounded memory, warm preloading, determinism."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import httpx

from leaderboard_api.app import create_app
from tests.api_support import running, server_process, settings

ENG = "TEB(eng, v1)"
LANGS = ["eng", "fra", "deu", "spa", "English", "French", "German"]


async def test_hundred_concurrent_cold_requests_build_once() -> None:
    app = create_app(settings())
    async with running(app) as client:
        cache = app.state.lb.cache
        before = cache.stats.builds
        path = f"/v1/benchmarks/{ENG}/leaders"
        responses = await asyncio.gather(
            *(client.get(path, params={"buckets": "[[0,300],[300,null]]"}) for _ in range(100))
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        assert cache.stats.builds - before == 1


async def test_parameterized_routes_stay_bounded() -> None:
    app = create_app(settings(lru_max_entries=64, lru_max_bytes=2_000_000))
    async with running(app) as client:
        cache = app.state.lb.cache
        pinned_before = cache.stats.pinned_entries
        buckets = [
            json.dumps([[low, low + width]])
            for low, width in itertools.product(range(0, 2000, 2), (5, 50))
        ]
        for spec in buckets:
            response = await client.get(f"/v1/benchmarks/{ENG}/leaders", params={"buckets": spec})
            assert response.status_code == 200
        # Language filters: every combination builds once, yet nothing per filter stays in
        # the per-snapshot memo (only the bounded LRU holds their bytes).
        views = app.state.lb.loaded.views
        memo = views.memo_size()
        codes = ["eng", "fra", "deu", "spa"]
        for size in range(1, len(codes) + 1):
            for combo in itertools.combinations(codes, size):
                response = await client.get(
                    "/v1/benchmarks/TEB(multi, v1)/scores", params={"languages": ",".join(combo)}
                )
                assert response.status_code == 200, response.text
        assert views.memo_size() == memo
        stats = cache.stats
        assert stats.lru_entries <= 64
        assert stats.lru_bytes <= 2_000_000
        assert stats.pinned_entries == pinned_before
        assert stats.evictions > 0


async def test_equivalent_language_filters_share_one_cache_entry() -> None:
    app = create_app(settings())
    async with running(app) as client:
        cache = app.state.lb.cache
        name = "TEB(multi, v1)"
        await client.get(f"/v1/benchmarks/{name}/scores", params={"languages": "fra,deu"})
        builds = cache.stats.builds
        for spelling in ("deu,fra", "German,French", "fra-Latn,deu-Latn"):
            response = await client.get(
                f"/v1/benchmarks/{name}/scores", params={"languages": spelling}
            )
            assert response.status_code == 200
        assert cache.stats.builds == builds


async def test_every_unparameterized_route_is_preloaded() -> None:
    app = create_app(settings())
    async with running(app) as client:
        state = app.state.lb
        views = state.loaded.views
        paths = ["/v1/benchmarks", "/v1/benchmarks/menu", "/v1/tasks", "/v1/models"]
        paths += [f"/v1/benchmarks/{n}/scores" for n in views.benchmark_names()]
        paths += [f"/v1/tasks/{n}/scores" for n in views.task_names()]
        paths += [f"/v1/models/{n}/scores" for n in views.model_names()]
        for path in paths:
            assert state.lookup(path, b"") is not None, path
        builds = state.cache.stats.builds
        for path in paths:
            assert (await client.get(path)).status_code == 200
        assert state.cache.stats.builds == builds


async def _all_payloads(data: str | None = None) -> dict[str, tuple[bytes, str]]:
    app = create_app(settings(data=data))
    out: dict[str, tuple[bytes, str]] = {}
    async with running(app):
        state = app.state.lb
        for path, payload in state.built_routes().items():
            out[path] = (payload.identity, payload.etag)
    return out


async def test_two_cold_starts_give_identical_bytes_and_etags() -> None:
    first = await _all_payloads()
    second = await _all_payloads()
    assert len(first) > 50
    assert first == second


def test_restarted_processes_serve_identical_etags(tmp_path: Path) -> None:
    paths = [
        "/v1/benchmarks",
        f"/v1/benchmarks/{ENG}/scores",
        f"/v1/benchmarks/{ENG}/scores.csv",
        "/v1/models/acme/embed-large-v2/scores",
    ]
    seen: list[dict[str, tuple[str, bytes]]] = []
    for _ in range(2):
        with server_process() as base:
            seen.append(
                {
                    p: (r.headers["etag"], r.content)
                    for p in paths
                    for r in [httpx.get(base + p, headers={"accept-encoding": "identity"})]
                }
            )
    assert seen[0] == seen[1]


async def test_the_warmup_forgets_what_only_model_pages_reuse() -> None:
    """After the background warmup, per-model rows are not held; a rebuild gives the same bytes."""
    from leaderboard_api.payloads import ROUTES

    app = create_app(settings())
    async with running(app) as client:
        state = app.state.lb
        context = state.loaded.views.context
        kinds = {key[0] for key in context._memo if isinstance(key, tuple)}
        assert not kinds & {"model-rows", "rows-by-model"}
        model = state.loaded.views.model_names()[0]
        served = await client.get(f"/v1/models/{model}/scores")
        assert served.status_code == 200
        rebuilt = ROUTES["model-scores"].build(state.loaded.views, model, None)
        assert served.content == rebuilt
