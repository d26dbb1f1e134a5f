"""On the whole MTEB data: one new model on one benchmark's tasks, served with no failed request.

The dataset is the shared flattening of every MTEB main score (1.29M rows) with the MTEB
catalog; a real server process serves it while clients keep asking for leaderboards,
task and model pages.  A new model's results for one benchmark's tasks arrive as a new
results file; after the reload the pages of benchmarks, tasks and models the change does
not touch keep their ETags, the touched leaderboard shows the new model, and no request
fails meanwhile.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from leaderboard_api.dataset.importers.mteb_catalog import convert_mteb_catalog
from tests.api_support import SHARED, server_process

MTEB = SHARED / "mteb"
TOKEN = "whole-mteb-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CHANGED = "MTEB(Europe, v1)"
NEW_MODEL = "test-org/brand-new-model"

pytestmark = pytest.mark.skipif(
    not (MTEB / "full" / "results.parquet").is_file(), reason="shared MTEB data not present"
)


def _dataset(root: Path) -> Path:
    data = root / "mteb"
    (data / "results").mkdir(parents=True)
    (data / "results" / "results.parquet").symlink_to(MTEB / "full" / "results.parquet")
    convert_mteb_catalog(MTEB / "catalog", out=data)
    return data


@pytest.mark.timeout(600)
def test_one_new_model_keeps_untouched_etags_and_no_request_fails(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    env = {
        "LEADERBOARD_ADMIN_TOKEN": TOKEN,
        "LEADERBOARD_WARMUP": "false",
        "LEADERBOARD_ICON_ALLOWED_HOSTS": "127.0.0.1",
    }
    failures: list[str] = []
    stop = threading.Event()
    with (
        server_process("--data", str(data), env=env, timeout=300) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        benches = {b["name"]: b for b in client.get("/v1/benchmarks").json()}
        changed_tasks = set(client.get(f"/v1/benchmarks/{CHANGED}").json()["tasks"])
        untouched = [
            name
            for name in sorted(benches)
            if not set(client.get(f"/v1/benchmarks/{name}").json()["tasks"]) & changed_tasks
        ][:8]
        assert len(untouched) >= 4
        other_tasks = sorted(
            t["name"] for t in client.get("/v1/tasks").json() if t["name"] not in changed_tasks
        )[:20]
        touched_task = sorted(changed_tasks)[0]
        paths = [f"/v1/benchmarks/{n}/scores" for n in untouched]
        paths += [f"/v1/benchmarks/{n}" for n in untouched]
        paths += [f"/v1/tasks/{t}/scores" for t in other_tasks]
        paths += [f"/v1/tasks/{t}" for t in other_tasks]
        watched = [*paths, f"/v1/benchmarks/{CHANGED}/scores", f"/v1/tasks/{touched_task}/scores"]
        before = {}
        for path in watched:
            response = client.get(path)
            assert response.status_code == 200, path
            before[path] = response.headers["etag"]

        def loop(worker: int) -> None:
            with httpx.Client(base_url=base, timeout=120) as mine:
                index = worker
                while not stop.is_set():
                    path = watched[index % len(watched)]
                    index += 1
                    try:
                        got = mine.get(path, headers={"if-none-match": before[path]})
                    except httpx.HTTPError as exc:
                        failures.append(f"{path}: {type(exc).__name__}")
                        continue
                    if got.status_code not in (200, 304):
                        failures.append(f"{path}: {got.status_code}")

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            full = pl.read_parquet(MTEB / "full" / "results.parquet")
            donor = (
                full.filter(pl.col("task_name").is_in(sorted(changed_tasks)))
                .group_by("model_name")
                .len()
                .sort("len", "model_name", descending=True)[0, 0]
            )
            rows = full.filter(
                (pl.col("model_name") == donor) & pl.col("task_name").is_in(sorted(changed_tasks))
            ).with_columns(pl.lit(NEW_MODEL).alias("model_name"))
            del full
            rows.write_parquet(data / "results" / "new-model.parquet")
            reloaded = client.post("/admin/reload", headers=AUTH)
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["result"] == "swapped"
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        after = {path: client.get(path).headers["etag"] for path in watched}
        scores = client.get(f"/v1/benchmarks/{CHANGED}/scores").json()
    assert not failures, failures[:10]
    assert NEW_MODEL in {row["model"]["name"] for row in scores["rows"]}
    for path in paths:
        assert after[path] == before[path], path
    assert after[f"/v1/benchmarks/{CHANGED}/scores"] != before[f"/v1/benchmarks/{CHANGED}/scores"]
    assert after[f"/v1/tasks/{touched_task}/scores"] != before[f"/v1/tasks/{touched_task}/scores"]
