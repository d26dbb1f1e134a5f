"""Live data: reload on demand and by watching, failed reloads, the admin token, the swap."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from leaderboard_api.app import create_app
from leaderboard_api.fingerprints import fingerprint_values
from leaderboard_api.payloads import fingerprint_of
from tests.api_support import copy_sample, running, settings

ENG = "TEB(eng, v1)"
SCORES = f"/v1/benchmarks/{ENG}/scores"
TOKEN = "correct horse battery staple"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def drop_model(dataset: Path, model: str) -> None:
    """Rewrite every results file without one model's rows (a new dataset version)."""
    for file in sorted((dataset / "results").glob("*.parquet")):
        frame = pl.read_parquet(file)
        frame.filter(pl.col("model_name") != model).write_parquet(file)


def etag_matches_body(etag: str, body: bytes) -> bool:
    """The service's ETags name the identity bytes: ``"<blake2b-128 hex>[-coding]"``."""
    digest = etag.strip('"').split("-")[0]
    return hashlib.blake2b(body, digest_size=16).hexdigest() == digest


async def test_admin_token_rules(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    async with running(create_app(settings(data=str(data)))) as client:
        # No admin token and no key with the admin scope: nobody may reload.
        refused = await client.post("/admin/reload", headers=AUTH)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
    app = create_app(settings(data=str(data), admin_token=TOKEN))
    async with running(app) as client:
        missing = await client.post("/admin/reload")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.headers["content-type"] == "application/problem+json"
        basic = await client.post("/admin/reload", headers={"authorization": "Basic eDp5"})
        assert basic.status_code == 401
        wrong = await client.post("/admin/reload", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        ok = await client.post("/admin/reload", headers=AUTH)
        assert ok.status_code == 200
        assert ok.json()["result"] == "unchanged"
        assert (await client.get("/admin/reload")).status_code == 405


async def test_reload_swaps_to_new_data_and_frees_old_payloads(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data), admin_token=TOKEN))
    async with running(app) as client:
        state = app.state.lb
        before = await client.get(SCORES)
        old_id = state.loaded.snapshot.id
        names = {r["model"]["name"] for r in before.json()["rows"]}
        assert "acme/embed-large-v2" in names
        drop_model(data, "acme/embed-large-v2")
        swapped = await client.post("/admin/reload", headers=AUTH)
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["result"] == "swapped"
        assert swapped.json()["previous"] == old_id
        after = await client.get(SCORES)
        assert after.headers["etag"] != before.headers["etag"]
        assert "acme/embed-large-v2" not in {r["model"]["name"] for r in after.json()["rows"]}
        # Revalidating with the old validator now gets the new content.
        revalidated = await client.get(SCORES, headers={"if-none-match": before.headers["etag"]})
        assert revalidated.status_code == 200
        new_id = state.loaded.snapshot.id
        assert new_id != old_id
        keys = state.cache.pinned_keys()
        assert keys
        # Only payloads the new snapshot reads are kept (by their fingerprint).
        current = fingerprint_values(state.loaded.fingerprints)
        assert all(fingerprint_of(k) in current for k in keys)
        assert before.content not in {state.cache.get_ready(k).identity for k in keys}
        ready = (await client.get("/ready")).json()
        assert ready["snapshot"] == new_id
        assert ready["lastError"] is None


async def test_failed_reload_keeps_serving_and_reports(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data), admin_token=TOKEN))
    async with running(app) as client:
        before = await client.get(SCORES)
        victim = sorted((data / "results").glob("*.parquet"))[0]
        victim.write_bytes(victim.read_bytes()[:100])  # truncated parquet
        failed = await client.post("/admin/reload", headers=AUTH)
        assert failed.status_code == 422
        assert victim.name in failed.json()["detail"]
        still = await client.get(SCORES)
        assert still.status_code == 200
        assert still.headers["etag"] == before.headers["etag"]
        assert still.content == before.content
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert victim.name in ready.json()["lastError"]


async def test_watcher_picks_up_a_new_version(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data), watch_seconds=1))
    async with running(app) as client:
        before = (await client.get(SCORES)).headers["etag"]
        drop_model(data, "acme/embed-large-v2")
        deadline = time.monotonic() + 30
        while (await client.get(SCORES)).headers["etag"] == before:
            assert time.monotonic() < deadline, "the watcher did not reload"
            await asyncio.sleep(0.2)


@pytest.mark.timeout(120)
def test_zero_failed_requests_across_three_swaps(tmp_path: Path) -> None:
    """Concurrent clients for about 10 s against a real server while the data changes 3 times."""
    import threading

    from tests.api_support import server_process

    data = copy_sample(tmp_path / "data")
    paths = [
        "/v1/benchmarks",
        SCORES,
        f"/v1/benchmarks/{ENG}/scores.csv",
        "/v1/models/acme/embed-large-v2/scores",
        "/v1/tasks/NewsHeadlineSTS/scores",
        f"{SCORES}?languages=eng",
    ]
    failures: list[str] = []
    seen_etags: dict[str, set[str]] = {p: set() for p in paths}
    counts = {"200": 0, "304": 0}
    stop = threading.Event()

    def client_loop(base: str, worker: int) -> None:
        last: dict[str, str] = {}
        with httpx.Client(base_url=base, timeout=10) as client:
            index = worker
            while not stop.is_set():
                path = paths[index % len(paths)]
                index += 1
                headers = {"accept-encoding": "identity"}
                if worker % 2 and path in last:
                    headers["if-none-match"] = last[path]
                try:
                    response = client.get(path, headers=headers)
                except httpx.HTTPError as exc:
                    failures.append(f"{path}: {type(exc).__name__} {exc}")
                    continue
                if response.status_code == 304:
                    counts["304"] += 1
                    continue
                if response.status_code != 200:
                    failures.append(f"{path}: status {response.status_code}")
                    continue
                counts["200"] += 1
                etag = response.headers["etag"]
                if int(response.headers["content-length"]) != len(response.content):
                    failures.append(f"{path}: truncated body")
                if not etag_matches_body(etag, response.content):
                    failures.append(f"{path}: body does not match its ETag {etag}")
                seen_etags[path].add(etag)
                last[path] = etag

    victims = ["acme/embed-large-v2", "northwind/nw-e5-base", "acme/embed-small-v1"]
    with server_process("--data", str(data), env={"LEADERBOARD_ADMIN_TOKEN": TOKEN}) as base:
        threads = [threading.Thread(target=client_loop, args=(base, i)) for i in range(6)]
        for thread in threads:
            thread.start()
        try:
            for victim in victims:
                time.sleep(2.5)
                drop_model(data, victim)
                response = httpx.post(f"{base}/admin/reload", headers=AUTH, timeout=60)
                assert response.status_code == 200, response.text
                assert response.json()["result"] == "swapped"
            time.sleep(2.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert not failures, failures[:10]
    assert counts["200"] > 100
    assert counts["304"] > 10
    # Every swap changed the leaderboard: four versions were served.
    assert len(seen_etags[SCORES]) == 4


def write_big_version(dataset: Path, *, version: int) -> None:
    """About 180k result rows (300 models x 30 tasks x 20 subsets), scores by version."""
    models = [f"org{m % 7}/model-{m:03d}" for m in range(300)]
    tasks = [f"Task{t:02d}" for t in range(30)]
    subsets = [f"sub{s:02d}" for s in range(20)]
    n = len(models) * len(tasks) * len(subsets)
    index = pl.int_range(n, eager=True)
    frame = pl.DataFrame(
        {
            "model_name": [models[i // (len(tasks) * len(subsets))] for i in range(n)],
            "task_name": [tasks[(i // len(subsets)) % len(tasks)] for i in range(n)],
            "subset": [subsets[i % len(subsets)] for i in range(n)],
            "score": ((index * 7919 + version * 104729) % 1000 / 1000).cast(pl.Float64),
        }
    )
    (dataset / "results").mkdir(parents=True, exist_ok=True)
    frame.write_parquet(dataset / "results" / "results.parquet")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(240)
def test_old_snapshots_are_released(tmp_path: Path) -> None:
    """RSS after 5 reloads stays within 1.3x of RSS after the first one."""
    from tests.api_support import server_process

    data = tmp_path / "big"
    write_big_version(data, version=0)
    with server_process(
        "--data", str(data), env={"LEADERBOARD_ADMIN_TOKEN": TOKEN}, with_pid=True
    ) as (base, pid):
        after: list[float] = []
        for version in range(1, 6):
            write_big_version(data, version=version)
            response = httpx.post(f"{base}/admin/reload", headers=AUTH, timeout=120)
            assert response.json()["result"] == "swapped", response.text
            assert httpx.get(f"{base}/v1/benchmarks/all/scores").status_code == 200
            after.append(rss_mb(pid))
    print(f"RSS after reloads 1..5: {[round(x) for x in after]} MB")
    assert after[-1] <= 1.3 * after[0], after
