"""Hardening of the API against broken datasets, careless settings and hostile requests.

Each test reproduces one finding of issue 13: a dataset ``validate`` must refuse, admin
tokens that cannot be safe, CORS responses a shared cache would mix up, languages the
filter refused although ``/v1/benchmarks`` lists them, error bodies that echo huge names,
and a watcher that logged the same ERROR every interval.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pydantic
import pytest

from leaderboard_api.app import create_app, with_vary_origin
from leaderboard_api.lifecycle import reload_now
from leaderboard_api.settings import Settings
from tests.api_support import client_for, copy_sample, running, server_process, settings
from tests.conftest import bench, cell, write_dataset

ENG = "TEB(eng, v1)"
SCORES = f"/v1/benchmarks/{quote(ENG)}/scores"
ORIGIN = "https://board.example"


# --- 1. a rank method validate does not know ------------------------------------------------


def test_validate_refuses_an_unknown_rank_method(tmp_path: Path) -> None:
    data = copy_sample(tmp_path / "data")
    path = data / "benchmarks.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    entries[0].setdefault("scoring", {})["rank_method"] = "coinflip"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    done = subprocess.run(
        [sys.executable, "-m", "leaderboard_api", "validate", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "benchmarks.jsonl" in done.stderr
    assert "rank_method" in done.stderr
    assert "Traceback" not in done.stderr


# --- 6. admin tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["x", "short-token", " ", "\t\n", " padded-token-of-length "])
def test_short_or_blank_admin_tokens_are_refused(token: str) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        Settings(admin_token=token)
    assert "admin_token" in str(refused.value)
    if token.strip():
        assert token.strip() not in str(refused.value), "the refused token is echoed"


def test_empty_admin_token_disables_and_long_one_enables() -> None:
    assert Settings(admin_token="").admin_token is None
    assert Settings(admin_token="a" * 16).admin_token is not None


def test_server_with_a_one_character_token_does_not_start(tmp_path: Path) -> None:
    env = {**os.environ, "LEADERBOARD_ADMIN_TOKEN": "z", "LEADERBOARD_CACHE_DIR": ""}
    done = subprocess.run(
        [sys.executable, "-m", "leaderboard_api", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "at least 16 characters" in done.stderr
    assert "input_value" not in done.stderr


# --- 4. CORS and shared caches --------------------------------------------------------------


def test_vary_origin_is_merged_once() -> None:
    assert with_vary_origin([(b"vary", b"Accept-Encoding")]) == [
        (b"vary", b"Accept-Encoding, Origin")
    ]
    assert with_vary_origin([(b"Vary", b"origin")]) == [(b"Vary", b"origin")]
    assert with_vary_origin([]) == [(b"vary", b"Origin")]


def _vary(response: httpx.Response) -> set[str]:
    return {
        token.strip().lower()
        for value in response.headers.get_list("vary")
        for token in value.split(",")
    }


def test_every_response_varies_by_origin_when_origins_are_listed() -> None:
    """On a real server: with and without Origin, allowed or not, fast path or cold, error."""
    with server_process(env={"LEADERBOARD_CORS_ORIGINS": ORIGIN}) as base:
        cases = {
            "no origin": {},
            "allowed": {"origin": ORIGIN},
            "refused": {"origin": "https://evil.example"},
        }
        for path in (SCORES, SCORES + "?languages=eng", "/v1/benchmarks/NoSuch", "/ready"):
            for label, headers in cases.items():
                response = httpx.get(base + path, headers=headers)
                assert "origin" in _vary(response), (path, label, response.headers)
                allowed = response.headers.get("access-control-allow-origin")
                assert allowed == (ORIGIN if label == "allowed" else None), (path, label)
        first = httpx.get(base + SCORES)
        assert "accept-encoding" in _vary(first)
        assert len(first.headers.get_list("vary")) == 1


async def test_any_origin_needs_no_vary() -> None:
    async with client_for(cors_origins=["*"]) as client:
        response = await client.get(SCORES)
        assert "origin" not in _vary(response)
        cors = await client.get(SCORES, headers={"origin": ORIGIN})
        assert cors.headers["access-control-allow-origin"] == "*"


def test_nginx_recipe_keys_its_cache_on_origin() -> None:
    template = Path(__file__).resolve().parents[1] / "deploy" / "nginx"
    text = (template / "leaderboard.conf.template").read_text()
    key_lines = [line for line in text.splitlines() if line.strip().startswith("proxy_cache_key")]
    assert key_lines
    assert all("$http_origin" in line for line in key_lines), key_lines


# --- 7. programming languages ---------------------------------------------------------------


def _code_dataset(root: Path) -> Path:
    rows = [
        cell(model, task, score, languages=[tag])
        for model, base in (("org/a", 0.5), ("org/b", 0.7))
        for task, tag, score in (
            ("PyTask", "python-Code", base),
            ("GoTask", "go-Code", base + 0.1),
            ("CppTask", "c++-Code", base + 0.05),
            ("EngTask", "eng-Latn", base - 0.1),
        )
    ]
    tasks = [
        {"name": "PyTask", "type": "Retrieval", "languages": ["python-Code"]},
        {"name": "GoTask", "type": "Retrieval", "languages": ["go-Code"]},
        {"name": "CppTask", "type": "Retrieval", "languages": ["c++-Code"]},
        {"name": "EngTask", "type": "Retrieval", "languages": ["eng-Latn"]},
    ]
    benchmarks = [bench("Code(v1)", ["PyTask", "GoTask", "CppTask", "EngTask"])]
    return write_dataset(root, rows, tasks=tasks, benchmarks=benchmarks)


async def test_every_listed_language_is_a_working_filter(tmp_path: Path) -> None:
    data = _code_dataset(tmp_path / "code")
    async with client_for(data=str(data)) as client:
        listed = (await client.get("/v1/benchmarks")).json()
        languages = sorted({lang for b in listed for lang in b["languages"]})
        assert {"python", "go", "c++", "eng"} <= set(languages)
        for lang in languages:
            tasks = await client.get("/v1/tasks", params={"language": lang})
            assert tasks.status_code == 200, (lang, tasks.text)
            assert tasks.json(), lang
            scores = await client.get("/v1/benchmarks/Code(v1)/scores", params={"languages": lang})
            assert scores.status_code == 200, (lang, scores.text)
        python = (await client.get("/v1/tasks", params={"language": "python"})).json()
        assert [t["name"] for t in python] == ["PyTask"]
        per_language = (await client.get("/v1/benchmarks/Code(v1)/per-language")).json()
        assert {"python", "go", "c++", "eng"} <= set(per_language["languages"])
        refused = await client.get("/v1/tasks", params={"language": "klingon-ish"})
        assert refused.status_code == 422


# --- 9. error bodies of bounded size --------------------------------------------------------


async def test_errors_never_echo_a_huge_name() -> None:
    name = "x" * 10_000
    async with client_for() as client:
        for path in (
            f"/v1/benchmarks/{name}",
            f"/v1/models/{name}/scores",
            f"/v1/tasks/{name}",
            f"/v1/icon/{name}",
            f"/v1/nothing/{name}",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json"
            assert len(response.content) < 1500, (path, len(response.content))
            assert "characters cut" in response.json()["detail"]
        bad = await client.get("/v1/tasks", params={"language": name})
        assert bad.status_code == 422
        assert len(bad.content) < 2500
        unknown = await client.get("/v1/benchmarks", params={name: "1"})
        assert unknown.status_code == 422
        assert len(unknown.content) < 2500


# --- 10. one ERROR for a dataset that stays broken ------------------------------------------


async def test_a_dataset_that_stays_broken_logs_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = copy_sample(tmp_path / "data")
    app = create_app(settings(data=str(data)))
    async with running(app):
        state = app.state.lb
        (data / "benchmarks.jsonl").write_text("{not json\n")
        with caplog.at_level(logging.INFO, logger="leaderboard_api.lifecycle"):
            outcomes = [await reload_now(state) for _ in range(4)]
        assert {o.result for o in outcomes} == {"error"}
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert state.last_error is not None
        # A different failure is news again.
        (data / "benchmarks.jsonl").write_text("[]\n")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="leaderboard_api.lifecycle"):
            await reload_now(state)
        assert [r.levelno for r in caplog.records].count(logging.ERROR) == 1
