"""The Open LLM Leaderboard backend's API (routes/openllm.py) on a real app.

The dataset is the real v2 table (``../shared/data/openllm``) imported by the real importer;
requests go through httpx's ASGI transport into ``create_app`` with a SQLite store.  The
shapes are checked field by field against the backend's (its README and
``transform_data``), and the raw rows against the CSV they were imported from.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leaderboard_api.app import LeaderboardApp, create_app
from leaderboard_api.dataset.importers.openllm import import_openllm
from leaderboard_api.operational.records import Actor
from leaderboard_api.operational.repository import StateStore
from leaderboard_api.routes.openllm import formatted_row
from leaderboard_api.state import AppState
from tests.api_support import running, settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openllm"
V2 = DATA / "open-llm-leaderboard_new.csv"
V1 = DATA / "open-llm-leaderboard_old.csv"

pytestmark = pytest.mark.skipif(not V2.is_file(), reason="real Open LLM data not available")

TASKS = ("IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO")
RAW_COLUMNS = [
    "eval_name",
    "Precision",
    "Type",
    "T",
    "Weight type",
    "Architecture",
    "Model",
    "fullname",
    "Model sha",
    "Average ⬆️",
    "Hub License",
    "Hub ❤️",
    "#Params (B)",
    "Available on the hub",
    "Merged",
    "MoE",
    "Flagged",
    "Chat Template",
    *(column for task in TASKS for column in (f"{task} Raw", task)),
    "Maintainer's Highlight",
    "Official Providers",
    "Upload To Hub Date",
    "Submission Date",
]
#: A v2 model of the table (its values as published).
SAMPLE = "0-hero/Matter-0.2-7B-DPO"
SAMPLE_SHA = "26a66f0d862e2024ce4ad0a09c37052ac36e8af6"


@pytest.fixture(scope="module")
def v2_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("openllm-v2")
    import_openllm(V2, out=out)
    return out


@pytest.fixture(scope="module")
def table() -> dict[tuple[str, str], dict[str, str]]:
    with V2.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        out.setdefault((row["Model"], row["Precision"]), row)  # the importer keeps the first
    return out


@contextlib.asynccontextmanager
async def started(
    data: Path | None, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[LeaderboardApp, httpx.AsyncClient]]:
    base: dict[str, Any] = {
        "state": f"sqlite:///{tmp_path}/state.db",
        "warmup": False,  # the OLL routes build on first request; saves 10 s per app
    }
    if data is not None:
        base["data"] = str(data)
    app = create_app(settings(**{**base, **overrides}))
    async with running(app) as client:
        yield app, client


def store(app: LeaderboardApp) -> StateStore:
    state: AppState = app.state.lb
    assert state.ops is not None
    return state.ops


def key(app: LeaderboardApp, name: str, *scopes: str) -> dict[str, str]:
    raw = store(app).keys.create(name, list(scopes), by=Actor("test")).raw
    return {"Authorization": f"Bearer {raw}"}


def flag(text: str) -> bool:
    return text.strip().lower() == "true"


def number(text: str) -> float:
    return float(text)


# --- the table ------------------------------------------------------------------------------


async def test_raw_rows_are_the_table(
    v2_dataset: Path, tmp_path: Path, table: dict[tuple[str, str], dict[str, str]]
) -> None:
    async with started(v2_dataset, tmp_path) as (app, client):
        got = await client.get("/api/leaderboard")
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/json"
        assert got.headers["cache-control"] == app.state.lb.settings.cache_control
        rows = got.json()
        # Served from the fast path from now on, with the same bytes and ETag.
        assert ("/api/leaderboard", b"") in app.state.lb.routing.routes
        again = await client.get("/api/leaderboard", headers={"Accept-Encoding": "br"})
        assert again.headers["content-encoding"] == "br"
        assert again.json() == rows
        not_modified = await client.get(
            "/api/leaderboard", headers={"If-None-Match": got.headers["etag"]}
        )
        assert not_modified.status_code == 304
    assert len(rows) == len(table) == 729
    for row in rows:
        assert list(row) == RAW_COLUMNS
    averages = [r["Average ⬆️"] for r in rows]
    assert averages == sorted(averages, reverse=True)
    for row in rows:
        published = table[(row["fullname"], row["Precision"])]
        assert row["eval_name"] == f"{row['fullname'].replace('/', '_')}_{row['Precision']}"
        assert row["Model"] == published["Model"]
        for column in ("Type", "T", "Weight type", "Architecture", "Model sha", "Hub License"):
            assert row[column] == (published[column] or None), column
        scores = (c for t in TASKS for c in (t, f"{t} Raw"))
        for column in ("Average ⬆️", "#Params (B)", *scores):
            assert row[column] == pytest.approx(number(published[column])), column
        assert row["Hub ❤️"] == int(published["Hub ❤️"])
        assert row["Available on the hub"] == flag(published["Available on the hub"])
        assert row["Chat Template"] == flag(published["Chat Template"])
        assert row["Maintainer's Highlight"] == flag(published["Maintainer's Highlight"])
        assert row["Official Providers"] == row["Maintainer's Highlight"]
        # The published table negates these three (see the importer); the rows do not.
        assert row["Merged"] is not flag(published["Not_Merged"])
        assert row["MoE"] is not flag(published["MoE"])
        assert row["Flagged"] is not flag(published["Flagged"])
        assert row["Upload To Hub Date"] == (published["Upload To Hub Date"] or None)
        assert row["Submission Date"] == (published["Submission Date"] or None)


async def test_formatted_rows_have_the_backend_shape(v2_dataset: Path, tmp_path: Path) -> None:
    async with started(v2_dataset, tmp_path) as (_, client):
        raw = (await client.get("/api/leaderboard")).json()
        got = await client.get("/api/leaderboard/formatted")
        assert got.status_code == 200
        formatted = got.json()
        assert got.headers["etag"] != (await client.get("/api/leaderboard")).headers["etag"]
    assert len(formatted) == len(raw)
    assert [f["model"]["name"] for f in formatted] == [r["fullname"] for r in raw]
    assert [f["model"]["precision"] for f in formatted] == [r["Precision"] for r in raw]
    for entry in formatted:
        assert list(entry) == ["id", "model", "evaluations", "features", "metadata"]
        assert list(entry["model"]) == [
            "name",
            "sha",
            "precision",
            "type",
            "weight_type",
            "architecture",
            "average_score",
            "has_chat_template",
        ]
        assert list(entry["evaluations"]) == ["ifeval", "bbh", "math", "gpqa", "musr", "mmlu_pro"]
        for evaluation in entry["evaluations"].values():
            assert list(evaluation) == ["name", "value", "normalized_score"]
        assert list(entry["features"]) == [
            "is_not_available_on_hub",
            "is_merged",
            "is_moe",
            "is_flagged",
            "is_highlighted_by_maintainer",
            "is_official_provider",
        ]
        assert list(entry["metadata"]) == [
            "upload_date",
            "submission_date",
            "generation",
            "base_model",
            "hub_license",
            "hub_hearts",
            "params_billions",
            "co2_cost",
        ]
    # One entry, every value: the backend's own example row of this model agrees on id,
    # names, type and the score pairs (rounded as the published table is).
    entry = next(f for f in formatted if f["model"]["name"] == SAMPLE)
    row = next(r for r in raw if r["fullname"] == SAMPLE)
    assert entry["id"] == f"{SAMPLE}_bfloat16_{SAMPLE_SHA}_True"
    assert entry["model"] == {
        "name": SAMPLE,
        "sha": SAMPLE_SHA,
        "precision": "bfloat16",
        "type": "chatmodels",
        "weight_type": "Original",
        "architecture": "MistralForCausalLM",
        "average_score": row["Average ⬆️"],
        "has_chat_template": True,
    }
    assert entry["evaluations"]["ifeval"] == {
        "name": "IFEval",
        "value": pytest.approx(0.33),
        "normalized_score": pytest.approx(33.03),
    }
    assert entry["evaluations"]["math"]["name"] == "MATH Level 5"
    assert entry["evaluations"]["mmlu_pro"] == {
        "name": "MMLU-PRO",
        "value": row["MMLU-PRO Raw"],
        "normalized_score": row["MMLU-PRO"],
    }
    assert entry["features"] == {
        "is_not_available_on_hub": True,  # the backend's: it carries "Available on the hub"
        "is_merged": False,
        "is_moe": False,
        "is_flagged": False,
        "is_highlighted_by_maintainer": False,
        "is_official_provider": False,
    }
    assert entry["metadata"] == {
        "upload_date": "2024-04-13",
        "submission_date": "2024-08-05",
        "generation": None,
        "base_model": None,
        "hub_license": "apache-2.0",
        "hub_hearts": row["Hub ❤️"],
        "params_billions": row["#Params (B)"],
        "co2_cost": 0,
    }
    types = {f["model"]["type"] for f in formatted}
    assert types == {
        "chatmodels",
        "pretrained",
        "continuouslypretrained",
        "fine-tunedondomain-specificdatasets",
        "basemergesandmoerges",
        "❓other",  # the backend strips only the symbols it knew
    }


def test_formatted_row_follows_transform_data_defaults() -> None:
    """A row lacking columns gets the backend's defaults (``data.get(column, default)``)."""
    entry = formatted_row({"fullname": "org/m", "Type": "🔶 fine-tuned"})
    assert entry["id"] == "org/m_Unknown_Unknown_False"
    assert entry["model"]["type"] == "fined-tuned-on-domain-specific-dataset"
    assert entry["evaluations"]["bbh"] == {"name": "BBH", "value": 0, "normalized_score": 0}
    assert entry["features"]["is_merged"] is False
    assert entry["metadata"]["co2_cost"] == 0


async def test_the_v1_table_and_other_datasets(tmp_path: Path) -> None:
    if not V1.is_file():
        pytest.skip("v1 table not available")
    v1 = tmp_path / "v1"
    import_openllm(V1, out=v1)
    async with started(v1, tmp_path) as (_, client):
        rows = (await client.get("/api/leaderboard")).json()
        formatted = (await client.get("/api/leaderboard/formatted")).json()
    assert rows
    assert {"ARC", "GSM8K", "Merged"} <= set(rows[0])
    assert "ARC Raw" not in rows[0]
    assert "Chat Template" not in rows[0]
    assert list(formatted[0]["evaluations"]) == [
        "arc",
        "hellaswag",
        "mmlu",
        "truthfulqa",
        "winogrande",
        "gsm8k",
    ]
    arc = formatted[0]["evaluations"]["arc"]
    assert arc["value"] == arc["normalized_score"] == rows[0]["ARC"]

    async with started(None, tmp_path / "sample") as (_, client):
        other = await client.get("/api/leaderboard/formatted")
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    assert "not an Open LLM Leaderboard dataset" in other.json()["detail"]


# --- the queue and votes --------------------------------------------------------------------

QUEUE_ENTRY = [
    "name",
    "submitter",
    "revision",
    "wait_time",
    "submission_time",
    "status",
    "precision",
    "model_type",
    "weight_type",
]


async def test_submissions_and_the_queue(v2_dataset: Path, tmp_path: Path) -> None:
    async with started(v2_dataset, tmp_path) as (app, client):
        alice = key(app, "alice", "submit", "vote")
        evaluator = key(app, "ev", "evaluate")
        model = "dnhkng/RYS-XLarge"  # in the served table (its hub name)
        body = {
            "user_id": "alice",
            "model_id": model,
            "base_model": "",
            "revision": "main",
            "precision": "bfloat16",
            "model_type": "fine-tuned",
            "weight_type": "Original",
            "use_chat_template": False,
        }
        # Credentials, and the body's user_id must be theirs.
        assert (await client.post("/api/models/submit", json=body)).status_code == 401
        not_you = await client.post(
            "/api/models/submit", json={**body, "user_id": "mallory"}, headers=alice
        )
        assert not_you.status_code == 403
        assert "mallory" in not_you.json()["detail"]
        voter = key(app, "vera", "vote")
        assert (
            await client.post("/api/models/submit", json=body, headers=voter)
        ).status_code == 403

        done = await client.post("/api/models/submit", json=body, headers=alice)
        assert done.status_code == 200, done.text
        assert done.json() == {
            "status": "success",
            "message": "The model was submitted successfully, and the vote has been recorded",
        }
        again = await client.post("/api/models/submit", json=body, headers=alice)
        assert again.status_code == 400
        assert again.json()["detail"] == (
            f"Model {model} revision main is already in the system with status: pending"
        )
        for missing, detail in (("user_id", "user_id is required"), ("model_id", None)):
            reply = await client.post(
                "/api/models/submit", json={**body, missing: ""}, headers=alice
            )
            assert reply.status_code in (400, 403)
            if detail is not None:
                assert reply.json()["detail"] == detail
        no_model = {k: v for k, v in body.items() if k != "model_id"}
        reply = await client.post("/api/models/submit", json=no_model, headers=alice)
        assert reply.json()["detail"] == "Missing required field: model_id"
        unknown = await client.post(
            "/api/models/submit", json={**body, "model_id": "nobody/nothing"}, headers=alice
        )
        assert unknown.status_code == 400
        assert "submission_allow" in unknown.json()["detail"]

        # The submitter's up-vote came with it, as in the backend.
        assert store(app).votes.counts(model).up == 1
        # Three more: one to run, one to finish, one to fail.
        for revision in ("r1", "r2", "r3"):
            reply = await client.post(
                "/api/models/submit", json={**body, "revision": revision}, headers=alice
            )
            assert reply.status_code == 200, reply.text
        queue = (await client.get("/api/models/status")).json()
        assert list(queue) == ["pending", "evaluating", "finished"]
        assert [e["revision"] for e in queue["pending"]] == ["main", "r1", "r2", "r3"]
        entry = queue["pending"][0]
        assert list(entry) == QUEUE_ENTRY
        assert entry["name"] == model
        assert entry["submitter"] == "alice"
        assert entry["status"] == "PENDING"
        assert entry["precision"] == "bfloat16"
        assert (entry["model_type"], entry["weight_type"]) == ("fine-tuned", "Original")
        assert entry["wait_time"].endswith("s")
        assert entry["submission_time"].endswith("Z")
        assert len(entry["submission_time"]) == len("2024-01-01T00:00:00Z")

        status = f"/api/models/{model}/status"
        reply = (await client.get(status)).json()
        assert list(reply) == ["status", "submitted_time", "job_id"]
        assert reply["status"] == "PENDING"
        for _ in range(3):
            await client.post("/v1/submissions/claim", headers=evaluator)
        ids = {s.revision: s.id for s in store(app).submissions.list()}
        await client.post(
            f"/v1/submissions/{ids['r1']}/status",
            json={"status": "finished", "datasetVersion": "v9"},
            headers=evaluator,
        )
        await client.post(
            f"/v1/submissions/{ids['r2']}/status",
            json={"status": "failed", "reason": "oom"},
            headers=evaluator,
        )
        queue = (await client.get("/api/models/status")).json()
        assert [e["revision"] for e in queue["pending"]] == ["r3"]
        assert [(e["revision"], e["status"]) for e in queue["evaluating"]] == [
            ("main", "EVALUATING")
        ]
        assert [(e["revision"], e["status"]) for e in queue["finished"]] == [("r1", "FINISHED")]
        pending = (await client.get("/api/models/pending")).json()

        def timeless(entries: list[dict[str, object]]) -> list[dict[str, object]]:
            # wait_time is as of when each answer was built (the two are built apart).
            return [{k: v for k, v in e.items() if k != "wait_time"} for e in entries]

        assert timeless(pending) == timeless(queue["pending"])
        newest = (await client.get(status)).json()
        assert newest == {
            "status": "PENDING",
            "submitted_time": queue["pending"][0]["submission_time"],
            "job_id": ids["r3"],
        }
        gone = await client.get("/api/models/nobody/nothing/status")
        assert gone.json() == {"status": "not_found"}


async def test_votes(v2_dataset: Path, tmp_path: Path) -> None:
    async with started(v2_dataset, tmp_path) as (app, client):
        alice = key(app, "alice", "submit", "vote")
        bob = key(app, "bob", "vote")
        model = "dnhkng/RYS-XLarge"
        # The frontend's call: query parameters, a body with the configuration.
        url = f"/api/votes/{model}?vote_type=up&user_id=alice"
        reply = await client.post(url, json={"precision": "bfloat16", "revision": "main"})
        assert reply.status_code == 401
        reply = await client.post(url, json={"precision": "bfloat16"}, headers=alice)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "success": True,
            "status": "success",
            "message": "Vote added successfully",
        }
        # The README's call: everything in the body.
        reply = await client.post(
            f"/api/votes/{model}", json={"vote_type": "down", "user_id": "bob"}, headers=bob
        )
        assert reply.status_code == 200
        mismatch = await client.post(f"/api/votes/{model}?vote_type=up&user_id=alice", headers=bob)
        assert mismatch.status_code == 403
        sideways = await client.post(
            f"/api/votes/{model}?vote_type=sideways&user_id=bob", headers=bob
        )
        assert sideways.status_code == 400
        missing = await client.post(f"/api/votes/{model}?user_id=bob", headers=bob)
        assert missing.status_code == 422

        provider, name = model.split("/")
        counts = (await client.get(f"/api/votes/model/{provider}/{name}?nocache=123")).json()
        assert counts == {
            "total_votes": 2,
            "up_votes": 1,
            "down_votes": 1,
            "votes_by_revision": {},
            "votes_by_config": {},
        }
        # A queued configuration of the model shows the model's up-votes (the vote page).
        submit = {
            "user_id": "alice",
            "model_id": model,
            "precision": "bfloat16",
            "model_type": "pretrained",
        }
        assert (
            await client.post("/api/models/submit", json=submit, headers=alice)
        ).status_code == 200
        counts = (await client.get(f"/api/votes/model/{provider}/{name}")).json()
        assert counts["up_votes"] == 1  # the submission's own up-vote replaced alice's
        assert counts["votes_by_config"] == {
            "main_bfloat16": {"revision": "main", "precision": "bfloat16", "count": 1}
        }
        assert counts["votes_by_revision"] == {"main": 1}

        votes = (await client.get("/api/votes/user/alice")).json()
        assert len(votes) == 1
        assert list(votes[0]) == ["model", "model_id", "vote_type", "timestamp", "username"]
        assert (votes[0]["model"], votes[0]["vote_type"], votes[0]["username"]) == (
            model,
            "up",
            "alice",
        )
        assert (await client.get("/api/votes/user/nobody")).json() == []
        nothing = (await client.get("/api/votes/model/no/body")).json()
        assert nothing["total_votes"] == 0


async def test_rate_limits_apply(v2_dataset: Path, tmp_path: Path) -> None:
    async with started(v2_dataset, tmp_path, rate_limit_votes="1/minute") as (app, client):
        alice = key(app, "alice", "vote")
        url = "/api/votes/org/m?vote_type=up&user_id=alice"
        assert (await client.post(url, headers=alice)).status_code == 200
        over = await client.post(url, headers=alice)
        assert over.status_code == 429
        assert over.headers["content-type"] == "application/problem+json"
