"""The command line as a user runs it: validate, get, import, warm, serve on bad data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.api_support import SHARED, copy_sample, free_port


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaderboard_api", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "LEADERBOARD_CACHE_DIR": "", **(env or {})},
    )


def test_validate_a_good_dataset(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    done = cli("validate", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ")
    assert "models" in done.stdout
    assert "benchmarks" in done.stdout


def test_validate_a_bad_dataset_names_file_and_column_without_traceback(tmp_path: Path) -> None:
    data = tmp_path / "bad"
    (data / "results").mkdir(parents=True)
    pl.DataFrame({"model_name": ["a"], "task_name": ["t"], "score": ["high"]}).write_parquet(
        data / "results" / "part-0.parquet"
    )
    done = cli("validate", str(data))
    assert done.returncode == 1
    assert "results/part-0.parquet" in done.stderr
    assert "'score'" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_a_bad_dataset_and_exits_non_zero(tmp_path: Path) -> None:
    data = tmp_path / "bad"
    (data / "results").mkdir(parents=True)
    (data / "results" / "broken.parquet").write_bytes(b"PAR1 not really")
    done = cli("serve", "--data", str(data), "--port", str(free_port()), timeout=60)
    assert done.returncode == 1
    assert "broken.parquet" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_setting_is_one_line_without_traceback() -> None:
    for env in ({"LEADERBOARD_ADMIN_TOKEN": "short"}, {"LEADERBOARD_PORT": "not-a-port"}):
        done = cli("serve", env=env, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("error: setting ")
        assert "short" not in done.stderr  # a secret is never echoed


def test_get_runs_one_request_in_process() -> None:
    done = cli("get", "/v1/benchmarks")
    assert done.returncode == 0, done.stderr
    names = [b["name"] for b in json.loads(done.stdout)]
    assert "TEB(eng, v1)" in names
    missing = cli("get", "-i", "/v1/benchmarks/Nope")
    assert missing.returncode == 1
    assert missing.stdout.startswith("HTTP 404")
    assert "application/problem+json" in missing.stdout


def test_warm_fills_the_disk_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = cli("warm", "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr
    # One snapshot entry (beside the shared layers and the per-source pointers).
    entries = [p for p in cache.iterdir() if p.is_dir() and ".c" in p.name]
    assert len(entries) == 1
    assert (entries[0] / "results.parquet").is_file()


@pytest.mark.skipif(
    not (SHARED / "llmperf" / "summary").is_dir(), reason="../shared/data not available"
)
def test_import_then_validate_and_serve_lower_is_better_first(tmp_path: Path) -> None:
    out = tmp_path / "llmperf"
    done = cli("import", "llmperf", str(SHARED / "llmperf"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert cli("validate", str(out)).returncode == 0
    got = cli("get", "--data", str(out), "/v1/benchmarks")
    benchmark = json.loads(got.stdout)[0]["name"]
    table = json.loads(cli("get", "--data", str(out), f"/v1/benchmarks/{benchmark}/scores").stdout)
    lower = [t["name"] for t in table["tasksMeta"] if not t["higherIsBetter"]]
    higher = [t["name"] for t in table["tasksMeta"] if t["higherIsBetter"]]
    assert lower, "latency tasks are lower-is-better"
    assert higher, "throughput is higher-is-better"
    for task, ascending in ((lower[0], True), (higher[0], False)):
        page = json.loads(cli("get", "--data", str(out), f"/v1/tasks/{task}/scores").stdout)
        ranked = [r["score"] for r in page["rows"] if r["rank"] is not None]
        assert len(ranked) > 2
        assert ranked == sorted(ranked, reverse=not ascending), task
        assert page["rows"][0]["rank"] == 1
