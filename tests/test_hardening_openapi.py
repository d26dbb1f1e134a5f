"""The OpenAPI document says what the server answers: schemathesis finds no difference.

A real ``leaderboard-api serve`` on 127.0.0.1 and the schemathesis command line with every
check, a few examples per operation (seconds); ``make fuzz`` runs the same with many more
examples, also on the whole MTEB data. No network beyond loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from leaderboard_api.dataset.importers.mteb import convert_mteb_catalog
from tests.api_support import server_process

CONFIG = Path(__file__).resolve().parent / "fuzz" / "schemathesis.toml"
EXAMPLES = int(os.environ.get("LEADERBOARD_FUZZ_EXAMPLES", "3"))
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
#: Icons of the data point at public hosts: allowing only loopback keeps the run offline
#: (they answer the documented 403); the proxy itself is tested in test_icon.py.  The
#: cold-build limit is off: thousands of distinct parameter sets from one address would
#: otherwise test little beyond the (documented) 429; tests/test_api_cold_limit.py has it.
OFFLINE = {"LEADERBOARD_ICON_ALLOWED_HOSTS": "127.0.0.1", "LEADERBOARD_RATE_LIMIT_COLD_BUILDS": ""}


def run_schemathesis(base: str, *, examples: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SCHEMATHESIS is not None
    return subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            # One worker: hypothesis under threads trips a CPython 3.11.7 ast bug
            # ("AST constructor recursion depth mismatch"), a tool error, not an API one.
            "--workers",
            "1",
            "--seed",
            "13",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,  # schemathesis keeps a cache folder in the working directory
    )


def test_problem_json_is_documented_on_every_route() -> None:
    with server_process() as base:
        doc = httpx.get(base + "/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "{name}" in path:
                assert "application/problem+json" in responses["404"]["content"], (method, path)
            if path.startswith("/v1/"):
                assert "application/problem+json" in responses["422"]["content"], (method, path)
            for param in operation.get("parameters", []):
                assert "anyOf" not in param["schema"], (path, param["name"])


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")
def test_schemathesis_finds_no_failure_on_the_sample(tmp_path: Path) -> None:
    with server_process(env=OFFLINE) as base:
        done = run_schemathesis(base, examples=EXAMPLES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


MTEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "mteb"


@pytest.mark.slow
@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")
@pytest.mark.skipif(
    os.environ.get("LEADERBOARD_FUZZ_MTEB") != "1" or not (MTEB / "full").is_dir(),
    reason="the whole-MTEB run is `make fuzz` (LEADERBOARD_FUZZ_MTEB=1)",
)
def test_schemathesis_finds_no_failure_on_the_whole_mteb_data(tmp_path: Path) -> None:
    data = tmp_path / "mteb"
    (data / "results").mkdir(parents=True)
    (data / "results" / "results.parquet").symlink_to(MTEB / "full" / "results.parquet")
    convert_mteb_catalog(MTEB / "catalog", out=data)
    with server_process("--data", str(data), env=OFFLINE, timeout=300) as base:
        done = run_schemathesis(base, examples=EXAMPLES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
