"""A replica's fast-forward to its upstream (dataset/gitsync.py) on real git repositories.

A bare remote holds the embedded sample dataset; two clones of it stand for two replicas.
Nothing is mocked: the git CLI runs for real, the app reloads through ``POST /admin/reload``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from leaderboard_api.app import create_app
from leaderboard_api.dataset.gitops import dataset_lock
from leaderboard_api.dataset.gitsync import FAILURE_FILE, fast_forward, pull
from leaderboard_api.dataset.writer import ingest
from leaderboard_api.lifecycle import resolve_source
from tests.api_support import copy_sample, running, settings
from tests.test_dataset_writer import batch, git

TOKEN = "correct horse battery staple"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def remote_and_clones(tmp_path: Path, *names: str) -> tuple[Path, list[Path]]:
    """A bare repository holding the sample dataset, and one clone of it per name."""
    seed = copy_sample(tmp_path / "seed")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "sample")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    clones = [tmp_path / name for name in names]
    for clone in clones:
        git(tmp_path, "clone", "-q", str(remote), str(clone))
    return remote, clones


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def test_fast_forwards_to_what_another_clone_pushed(tmp_path: Path) -> None:
    _remote, (a, b) = remote_and_clones(tmp_path, "a", "b")
    before = head(b)
    pushed = ingest(a, batch("org/from-a"))
    assert pushed.pushed

    synced = fast_forward(b)
    assert (synced.outcome, synced.before, synced.after) == ("forwarded", before, pushed.commit)
    assert head(b) == pushed.commit
    assert git(b, "log", "--merges", "--format=%H") == ""  # no merge commit
    assert resolve_source(settings(data=str(b))).snapshot_id == pushed.commit
    assert fast_forward(b).outcome == "current"


def test_resolve_source_pulls_unless_turned_off(tmp_path: Path) -> None:
    _remote, (a, b) = remote_and_clones(tmp_path, "a", "b")
    local = head(b)
    pushed = ingest(a, batch("org/from-a"))
    assert resolve_source(settings(data=str(b), dataset_pull=False)).snapshot_id == local
    assert head(b) == local
    assert resolve_source(settings(data=str(b))).snapshot_id == pushed.commit


def test_local_work_is_never_merged_or_rebased(tmp_path: Path) -> None:
    _remote, (a, b) = remote_and_clones(tmp_path, "a", "b")
    # A local commit the remote does not have: b is ahead, nothing moves.
    (b / "notes.txt").write_text("local\n")
    git(b, "add", "notes.txt")
    git(b, "commit", "-q", "-m", "local work")
    local = head(b)
    assert fast_forward(b).outcome == "ahead"
    assert head(b) == local
    # Then the remote moves too: the histories diverged, and b stays where it is.
    ingest(a, batch("org/from-a"))
    synced = fast_forward(b)
    assert synced.outcome == "diverged"
    assert "diverged" in synced.detail
    assert head(b) == local
    assert git(b, "status", "--porcelain") == ""
    assert git(b, "rev-list", "--count", "HEAD") == "2"


def test_an_uncommitted_change_in_the_way_is_kept(tmp_path: Path) -> None:
    _remote, (a, b) = remote_and_clones(tmp_path, "a", "b")
    ingest(a, batch("org/from-a", entry={"name": "org/from-a"}))  # appends to models.jsonl
    (b / "models.jsonl").write_text((b / "models.jsonl").read_text() + '{"name": "mine"}\n')
    local = head(b)
    synced = fast_forward(b)
    assert synced.outcome == "failed"
    assert head(b) == local
    assert '"mine"' in (b / "models.jsonl").read_text()


def test_a_failed_fetch_is_logged_once_and_the_local_head_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, (b,) = remote_and_clones(tmp_path, "b")
    local = head(b)
    git(b, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    caplog.set_level(logging.DEBUG, logger="leaderboard_api.dataset.gitsync")
    for _ in range(3):
        synced = fast_forward(b)
        assert synced.outcome == "failed"
        assert resolve_source(settings(data=str(b))).snapshot_id == local
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "cannot fetch" in warnings[0].getMessage()
    git_dir = Path(git(b, "rev-parse", "--absolute-git-dir"))
    assert (git_dir / FAILURE_FILE).is_file()
    assert git(b, "status", "--porcelain") == ""  # the note is not in the work tree

    git(b, "remote", "set-url", "origin", str(remote))
    assert fast_forward(b).outcome == "current"
    assert not (git_dir / FAILURE_FILE).exists()
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_remote_slower_than_the_timeout_is_a_failed_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _remote, (b,) = remote_and_clones(tmp_path, "b")
    local = head(b)
    # An ssh remote whose "ssh" never answers: git itself waits until it is killed.
    git(b, "remote", "set-url", "origin", "ssh://replica.invalid/remote.git")
    monkeypatch.setenv("GIT_SSH_COMMAND", "sleep 3 #")
    caplog.set_level(logging.WARNING, logger="leaderboard_api.dataset.gitsync")
    for _ in range(2):
        synced = fast_forward(b, timeout=0.5)
        assert synced.outcome == "failed"
        assert "TimeoutExpired" in synced.detail
        assert head(b) == local
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]


def test_waits_for_an_ingest_holding_the_lock(tmp_path: Path) -> None:
    _remote, (a, b) = remote_and_clones(tmp_path, "a", "b")
    pushed = ingest(a, batch("org/from-a"))
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with dataset_lock(b, in_git=True, timeout=5):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        busy = fast_forward(b, lock_wait=0.3)
        assert busy.outcome == "failed"
        assert "held" in busy.detail
        assert head(b) != pushed.commit
    finally:
        release.set()
        thread.join()
    assert fast_forward(b).outcome == "forwarded"


def test_sources_that_are_not_clones_are_left_alone(tmp_path: Path) -> None:
    plain = copy_sample(tmp_path / "plain")
    assert fast_forward(plain).outcome == "no-upstream"
    git(plain, "init", "-q", "-b", "main")
    assert fast_forward(plain).outcome == "no-upstream"
    for spec in (None, "", "sample", "hf://datasets/org/name"):
        assert pull(spec).outcome == "no-upstream"


async def test_reload_serves_another_replicas_push_and_survives_a_dead_remote(
    tmp_path: Path,
) -> None:
    remote, (a, b) = remote_and_clones(tmp_path, "a", "b")
    app = create_app(settings(data=str(b), admin_token=TOKEN))
    async with running(app) as client:
        pushed = ingest(a, batch("org/from-a"))
        reloaded = await client.post("/admin/reload", headers=AUTH)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["snapshot"] == pushed.commit
        assert (await client.get("/v1/models/org/from-a")).status_code == 200

        git(b, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
        ingest(a, batch("org/unseen"))  # pushed to the remote b cannot reach now
        unchanged = await client.post("/admin/reload", headers=AUTH)
        assert unchanged.status_code == 200, unchanged.text
        assert unchanged.json()["result"] == "unchanged"
        assert (await client.get("/ready")).status_code == 200
        assert (await client.get("/v1/models/org/from-a")).status_code == 200

        git(b, "remote", "set-url", "origin", str(remote))
        caught_up = await client.post("/admin/reload", headers=AUTH)
        assert caught_up.json()["snapshot"] == head(a)
