"""Tests of dataset sources: content hash, git identity and the Hugging Face cache (offline)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.loader import build_snapshot
from leaderboard_api.dataset.sources import (
    content_hash,
    dataset_files,
    parse_hub_spec,
    resolve,
    sample_path,
)

COMMIT_TIME = "2024-06-01T12:00:00+00:00"
SHA_MAIN = "1" * 40
SHA_OLD = "2" * 40


def make_dataset(root: Path, *, score: float = 0.5) -> Path:
    """A tiny dataset: one results file and a tasks catalog."""
    (root / "results").mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame({"model_name": ["org/m"], "task_name": ["T"], "score": [score]})
    frame.write_parquet(root / "results" / "a.parquet")
    (root / "tasks.jsonl").write_text(json.dumps({"name": "T", "type": "STS"}) + "\n")
    return root


# --- content hash ------------------------------------------------------------------------


def test_content_hash_is_the_same_for_copies_anywhere(tmp_path: Path) -> None:
    one = make_dataset(tmp_path / "one")
    two = tmp_path / "deeper" / "two"
    shutil.copytree(one, two)
    os.utime(two / "results" / "a.parquet", (1, 1))  # mtimes do not count
    (two / "README.md").write_text("not a dataset file")  # nor do other files
    assert content_hash(one) == content_hash(two)
    assert content_hash(one).startswith("sha256-")
    assert len(content_hash(one)) == len("sha256-") + 40
    source = resolve(str(two))
    assert source.kind == "directory"
    assert source.snapshot_id == content_hash(one)
    assert source.path == two.resolve()


def test_content_hash_changes_with_one_byte(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    before = content_hash(root)
    tasks = root / "tasks.jsonl"
    data = bytearray(tasks.read_bytes())
    data[-2] = ord("X")  # '"STS"}' -> '"STSX' keeps the size, changes one byte
    tasks.write_bytes(bytes(data))
    assert content_hash(root) != before


def test_content_hash_covers_paths(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    before = content_hash(root)
    (root / "results" / "a.parquet").rename(root / "results" / "b.parquet")
    assert content_hash(root) != before


def test_dataset_files_are_results_and_catalogs_sorted(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    (root / "results" / "sub").mkdir()
    shutil.copy(root / "results" / "a.parquet", root / "results" / "sub" / "0.parquet")
    (root / "results" / "notes.txt").write_text("ignored")
    (root / "menu.json").write_text("[]")
    rels = [p.relative_to(root).as_posix() for p in dataset_files(root)]
    assert rels == ["menu.json", "results/a.parquet", "results/sub/0.parquet", "tasks.jsonl"]


def test_directory_updated_at_is_the_newest_file(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    os.utime(root / "results" / "a.parquet", (1_700_000_000, 1_700_000_000))
    os.utime(root / "tasks.jsonl", (1_600_000_000, 1_600_000_000))
    assert resolve(str(root)).updated_at == datetime.fromtimestamp(1_700_000_000, tz=UTC)


def test_missing_directory_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        resolve(str(tmp_path / "nope"))


@pytest.mark.parametrize("spec", [None, "", "sample"])
def test_sample_spec(spec: str | None) -> None:
    source = resolve(spec)
    assert source.kind == "sample"
    assert source.path == sample_path()
    assert source.snapshot_id == content_hash(sample_path())


# --- git ---------------------------------------------------------------------------------


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
        monkeypatch.setenv(f"GIT_{who}_DATE", COMMIT_TIME)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.mark.usefixtures("git_env")
def test_git_head_is_the_id_of_a_clean_committed_dataset(tmp_path: Path) -> None:
    repo = make_dataset(tmp_path / "repo")
    git(repo, "init", "-q")
    head = commit_all(repo, "data")
    source = resolve(str(repo))
    assert source.kind == "git"
    assert source.snapshot_id == head
    assert source.updated_at == datetime.fromisoformat(COMMIT_TIME)
    # A dirty tree falls back to the content hash.
    make_dataset(repo, score=0.75)
    dirty = resolve(str(repo))
    assert dirty.kind == "directory"
    assert dirty.snapshot_id == content_hash(repo)
    # Committing makes it clean again, with the new HEAD.
    new_head = commit_all(repo, "new scores")
    assert resolve(str(repo)).snapshot_id == new_head != head


@pytest.mark.usefixtures("git_env")
def test_untracked_dataset_file_falls_back_to_content_hash(tmp_path: Path) -> None:
    repo = make_dataset(tmp_path / "repo")
    git(repo, "init", "-q")
    commit_all(repo, "data")
    shutil.copy(repo / "results" / "a.parquet", repo / "results" / "b.parquet")
    source = resolve(str(repo))
    assert source.kind == "directory"
    assert source.snapshot_id == content_hash(repo)


@pytest.mark.usefixtures("git_env")
def test_dataset_in_a_subfolder_is_identified_by_its_last_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    data = make_dataset(repo / "data")
    git(repo, "init", "-q")
    data_commit = commit_all(repo, "data")
    (repo / "NOTES.md").write_text("unrelated\n")
    assert commit_all(repo, "notes") != data_commit
    # Commits that do not touch the dataset folder do not change its id (nor the cache).
    source = resolve(str(data))
    assert (source.kind, source.snapshot_id) == ("git", data_commit)


# --- Hugging Face cache (offline, real huggingface_hub) ---------------------------------


def hub_cache(cache: Path, repo: str, revisions: dict[str, Path], refs: dict[str, str]) -> Path:
    """A huggingface_hub cache as ``snapshot_download`` leaves it: blobs, refs, snapshots.

    Snapshot files are relative symlinks into ``blobs/`` named by content hash.
    """
    storage = cache / ("datasets--" + repo.replace("/", "--"))
    (storage / "blobs").mkdir(parents=True)
    for sha, source in revisions.items():
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            data = file.read_bytes()
            blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = storage / "snapshots" / sha / file.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir()
    for name, sha in refs.items():
        (storage / "refs" / name).write_text(sha)  # no newline, as huggingface_hub writes it
    return storage


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    new = make_dataset(tmp_path / "v2", score=0.9)
    old = make_dataset(tmp_path / "v1", score=0.1)
    hub_cache(cache, "acme/leaderboard", {SHA_MAIN: new, SHA_OLD: old}, {"main": SHA_MAIN})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_the_cache_layout_is_one_huggingface_hub_recognizes(hub: Path) -> None:
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hub)
    assert info.warnings == []
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type) == ("acme/leaderboard", "dataset")
    assert sorted(r.commit_hash for r in repo.revisions) == [SHA_MAIN, SHA_OLD]


def test_hub_default_revision_resolves_to_the_snapshot_folder(hub: Path) -> None:
    source = resolve("hf://datasets/acme/leaderboard", hf_cache_dir=hub)
    assert source.kind == "hub"
    assert source.snapshot_id == SHA_MAIN
    assert source.path == hub / "datasets--acme--leaderboard" / "snapshots" / SHA_MAIN
    snap = build_snapshot(source)
    assert snap.id == SHA_MAIN
    assert snap.results.item(0, "score") == 0.9
    assert snap.tasks["T"].type == "STS"


@pytest.mark.parametrize(("rev", "score"), [(SHA_OLD, 0.1), (SHA_MAIN, 0.9), ("main", 0.9)])
def test_hub_revision_after_at(hub: Path, rev: str, score: float) -> None:
    source = resolve(f"hf://datasets/acme/leaderboard@{rev}", hf_cache_dir=hub)
    assert source.snapshot_id == (SHA_OLD if rev == SHA_OLD else SHA_MAIN)
    assert build_snapshot(source).results.item(0, "score") == score


@pytest.mark.parametrize(
    "spec",
    [
        "hf://datasets/acme/unknown",
        "hf://datasets/acme/leaderboard@" + "3" * 40,
        "hf://datasets/acme/leaderboard@no-such-branch",
    ],
)
def test_hub_unknown_repo_or_revision_is_a_dataset_error(hub: Path, spec: str) -> None:
    with pytest.raises(DatasetError) as caught:
        resolve(spec, hf_cache_dir=hub)
    assert caught.value.message.startswith(f"{spec}: not in the local Hugging Face cache")
    assert caught.value.hint is not None


@pytest.mark.parametrize(
    "spec", ["hf://datasets/acme", "hf://datasets/a/b/c", "hf://models/acme/x", "hf://datasets/"]
)
def test_hub_malformed_address_is_a_dataset_error(spec: str) -> None:
    with pytest.raises(DatasetError, match="not a Hugging Face dataset address"):
        resolve(spec)


def test_hub_invalid_repo_name_is_a_dataset_error(hub: Path) -> None:
    with pytest.raises(DatasetError, match="not a valid Hugging Face repository name"):
        resolve("hf://datasets/acme/bad..name", hf_cache_dir=hub)


def test_parse_hub_spec() -> None:
    assert parse_hub_spec("hf://datasets/a/b") == ("a/b", None)
    assert parse_hub_spec("hf://datasets/a/b@refs/pr/3") == ("a/b", "refs/pr/3")


def test_hub_cache_from_the_environment_alone(hub: Path) -> None:
    """A fresh process configured only by HF_HUB_CACHE and HF_HUB_OFFLINE (as a deployment is)."""
    code = (
        "from leaderboard_api.dataset.sources import resolve;"
        "s = resolve('hf://datasets/acme/leaderboard');"
        "print(s.kind, s.snapshot_id, s.path)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=os.environ
    )
    kind, sha, path = done.stdout.split()
    assert (kind, sha) == ("hub", SHA_MAIN)
    assert Path(path) == hub / "datasets--acme--leaderboard" / "snapshots" / SHA_MAIN
