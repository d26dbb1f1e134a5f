"""Concurrent writers on two replicas sharing one PostgreSQL and one git remote lose nothing.

Everything here is real and nothing is mocked: a bare git repository seeded with the embedded
sample dataset is the remote; each replica is a real ``leaderboard-api serve`` process whose
``--data`` is its own clone of it; both use one real PostgreSQL server (the private cluster
of test_operational_postgres.py, skipped like it when the binaries are missing) as their
operational store, with an API key made by the ``leaderboard-api keys create`` command.
Threads then send both replicas results batches (each a new model with its catalog entry, so
pushes race and catalog appends are redone on top), submissions and votes at the same time.
Afterwards every acknowledged ingest is in the remote's history exactly once, both replicas
serve every ingested model once a reload check has fast-forwarded their clone, every
acknowledged submission and vote reads back from both, and the audit log holds every write.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from leaderboard_api.operational.repository import StateStore
from tests.api_support import ROOT, server_process
from tests.test_dataset_gitsync import remote_and_clones
from tests.test_dataset_writer import TASK, git
from tests.test_operational_postgres import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]  # the fixtures, shared with test_operational_postgres.py

ADMIN_TOKEN = "replica-writes-admin-token"
REPLICAS = ("a", "b")
INGESTS = 4  # per replica
SUBMISSIONS = 5
VOTES = 5


@dataclass(frozen=True, slots=True)
class Acked:
    """One acknowledged write: its kind, the replica it went to, what it wrote."""

    kind: str  # "ingest" | "submission" | "vote"
    replica: str
    name: str
    answer: dict[str, Any]


def create_key(url: str) -> str:
    command = ["keys", "create", "replica-writer", "--scopes", "ingest,submit,vote"]
    done = subprocess.run(
        [sys.executable, "-m", "leaderboard_api", *command, "--state", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def write(base: str, key: str, kind: str, replica: str, index: int) -> Acked:
    auth = {"authorization": f"Bearer {key}"}
    name = f"{kind}/{replica}-{index}"
    if kind == "ingest":
        row = {"model_name": name, "task_name": TASK, "metric": "ndcg_at_10", "score": 0.5}
        body: dict[str, Any] = {"rows": [row], "models": [{"name": name}]}
        response = httpx.post(f"{base}/v1/results", json=body, headers=auth, timeout=120)
        assert response.status_code == 201, response.text
    elif kind == "submission":
        response = httpx.post(
            f"{base}/v1/submissions", json={"model": name}, headers=auth, timeout=60
        )
        assert response.status_code == 201, response.text
    else:
        vote = "up" if index % 2 else "down"
        response = httpx.post(
            f"{base}/v1/models/{quote(name)}/votes", json={"vote": vote}, headers=auth, timeout=60
        )
        assert response.status_code == 200, response.text
    return Acked(kind, replica, name, response.json())


def eventually(check: Any, *, timeout: float = 10.0) -> None:
    """``check()`` passes within ``timeout`` seconds (a replica's change counter may be up
    to a second old: it reads the other's writes on its next look at the database)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_two_replicas_writing_at_once_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    remote, clones = remote_and_clones(tmp_path, *REPLICAS)
    key = create_key(pg_url)
    env = {
        "LEADERBOARD_STATE": pg_url,
        "LEADERBOARD_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEADERBOARD_SUBMISSION_ALLOW": "submission/*",
        "LEADERBOARD_RATE_LIMIT_SUBMISSIONS": "",
        "LEADERBOARD_RATE_LIMIT_VOTES": "",
        # Both replicas push at once: a rejected push is redone on top, as often as it takes.
        "LEADERBOARD_INGEST_PUSH_RETRIES": "20",
        "LEADERBOARD_INGEST_GIT_AUTHOR_NAME": "replica",
        "LEADERBOARD_INGEST_GIT_AUTHOR_EMAIL": "replica@example.com",
    }
    with contextlib.ExitStack() as stack:
        bases = {
            name: stack.enter_context(server_process("--data", str(clone), env=env))
            for name, clone in zip(REPLICAS, clones, strict=True)
        }
        jobs = [
            (kind, replica, i)
            for i in range(max(INGESTS, SUBMISSIONS, VOTES))
            for replica in REPLICAS
            for kind, count in (("ingest", INGESTS), ("submission", SUBMISSIONS), ("vote", VOTES))
            if i < count
        ]
        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = [pool.submit(write, bases[r], key, kind, r, i) for kind, r, i in jobs]
            acked = [future.result() for future in futures]

        ingests = [a for a in acked if a.kind == "ingest"]
        assert len(ingests) == INGESTS * len(REPLICAS)
        assert all(a.answer["created"] and a.answer["pushed"] for a in ingests)

        # The remote's history: every acknowledged ingest exactly once, nothing else added.
        history = git(remote, "rev-list", "main").split()
        assert {a.answer["commit"] for a in ingests} <= set(history)
        added = git(remote, "log", "--diff-filter=A", "--name-only", "--format=", "main")
        files = Counter(line for line in added.splitlines() if line.startswith("results/ingest/"))
        assert files == Counter(a.answer["file"] for a in ingests)
        assert len(history) == 1 + len(ingests)  # the sample's commit, then one per ingest
        catalog = git(remote, "show", "main:models.jsonl")
        for a in ingests:
            assert catalog.count(f'"name":"{a.name}"') == 1, a.name

        # A reload check on each replica fast-forwards its clone to the remote and serves it.
        remote_head = history[0]
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        for name, base in bases.items():
            reloaded = httpx.post(f"{base}/admin/reload", headers=admin, timeout=120)
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["snapshot"] == remote_head, name
            clone = clones[REPLICAS.index(name)]
            assert git(clone, "rev-parse", "HEAD") == remote_head
            assert git(clone, "status", "--porcelain") == ""
            for a in ingests:
                page = httpx.get(f"{base}/v1/models/{a.name}", timeout=60)
                assert page.status_code == 200, (name, a.name, page.text[:300])

        # Every acknowledged submission and vote, read back from both replicas.
        submitted = {a.answer["id"]: a.name for a in acked if a.kind == "submission"}
        assert len(submitted) == SUBMISSIONS * len(REPLICAS)
        votes = {a.name: a.answer["vote"] for a in acked if a.kind == "vote"}
        assert len(votes) == VOTES * len(REPLICAS)
        for base in bases.values():

            def read_back(base: str = base) -> None:
                listed = httpx.get(f"{base}/v1/submissions", timeout=60).json()
                assert {s["id"]: s["model"] for s in listed} == submitted
                for model, direction in votes.items():
                    counts = httpx.get(f"{base}/v1/models/{quote(model)}/votes", timeout=60)
                    assert counts.json() == {
                        "total": 1,
                        "up": int(direction == "up"),
                        "down": int(direction == "down"),
                    }

            eventually(read_back)

    # The audit log: every write, each once (and the key's creation).
    with StateStore.open(pg_url) as store:
        entries = store.audit(limit=10_000)
        assert len(entries) == store.change_counter()
    actions = Counter(e.action for e in entries)
    assert actions == Counter(
        {
            "key.create": 1,
            "results.ingest": len(ingests),
            "submission.create": len(submitted),
            "vote.cast": len(votes),
        }
    )
    audited = {e.target: e.detail for e in entries if e.action == "results.ingest"}
    assert set(audited) == {a.answer["file"] for a in ingests}
    for a in ingests:
        assert audited[a.answer["file"]]["version"] == a.answer["commit"]
        assert audited[a.answer["file"]]["models"] == [a.name]
    assert {e.target for e in entries if e.action == "submission.create"} == {
        f"submission:{i}" for i in submitted
    }
    assert {e.target for e in entries if e.action == "vote.cast"} == {f"vote:{m}" for m in votes}
    assert all(e.identity == "replica-writer" for e in entries if e.action != "key.create")
