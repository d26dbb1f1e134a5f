"""The dataset writer (dataset/writer.py) on real directories and real git repositories.

Repositories are made with the git CLI in ``tmp_path``: a work tree, a bare remote and two
clones racing to push (the rejected one fetches and writes again on top).  A pre-commit hook
that exits 1 makes a commit fail.  What an ingest writes is loaded with the real loader and
checked with ``leaderboard-api validate``.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from leaderboard_api.cli import main
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.loader import build_snapshot
from leaderboard_api.dataset.sources import resolve
from leaderboard_api.dataset.writer import (
    INGEST_DIR,
    Batch,
    CatalogConflict,
    GitOptions,
    NotWritable,
    WriteFailed,
    batch_from_file,
    batch_from_json,
    batch_from_parquet,
    ingest,
    writable_root,
)
from tests.api_support import copy_sample

TASK = "ClaimCheckRetrieval"  # a task of the embedded sample, main metric ndcg_at_10
KNOWN_MODEL = "acme/embed-base-v1"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "tester",
    "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "tester",
    "GIT_COMMITTER_EMAIL": "tester@example.com",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return done.stdout.strip()


def rows_for(model: str, score: float = 0.5, task: str = TASK) -> list[dict[str, Any]]:
    return [{"model_name": model, "task_name": task, "metric": "ndcg_at_10", "score": score}]


def batch(model: str, score: float = 0.5, *, entry: dict[str, Any] | None = None) -> Batch:
    doc: dict[str, Any] = {"rows": rows_for(model, score)}
    if entry is not None:
        doc["models"] = [entry]
    return batch_from_json(doc, source="test batch")


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (outside .git) with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def served_score(root: Path, model: str) -> float | None:
    snapshot = build_snapshot(resolve(str(root)))
    found = snapshot.results.filter(
        (pl.col("model_name").cast(pl.String) == model)
        & (pl.col("task_name").cast(pl.String) == TASK)
    )
    return None if found.is_empty() else float(found.get_column("score")[0])


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "plain")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_sample(tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "dataset")
    return root


def remote_with_clones(tmp_path: Path, *names: str) -> tuple[Path, list[Path]]:
    """A bare remote holding the sample dataset, and clones of it."""
    seed = copy_sample(tmp_path / "seed")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "dataset")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    clones = []
    for name in names:
        git(tmp_path, "clone", "-q", str(bare), str(tmp_path / name))
        clones.append(tmp_path / name)
    return bare, clones


# --- plain directories ----------------------------------------------------------------------


def test_ingest_writes_a_new_file_the_loader_serves(plain: Path) -> None:
    before = tree(plain)
    entry = {"name": "new/model-a", "n_parameters": 1.5e9, "license": "mit", "custom": "kept"}
    result = ingest(plain, batch("new/model-a", 0.61, entry=entry))
    assert result.created
    assert result.file.startswith(f"{INGEST_DIR}/")
    assert result.file.endswith(".parquet")
    assert (result.rows, result.models, result.tasks) == (1, ("new/model-a",), ())
    assert result.version == resolve(str(plain)).snapshot_id
    assert result.commit is None
    after = tree(plain)
    # Nothing served was rewritten: old files keep their bytes, models.jsonl only grew.
    assert set(after) == {*before, result.file}
    for name, data in before.items():
        if name == "models.jsonl":
            assert after[name].startswith(data)
        else:
            assert after[name] == data, name
    snapshot = build_snapshot(resolve(str(plain)))
    info = snapshot.models["new/model-a"]
    assert (info.n_parameters, info.license, info.extras()["custom"]) == (1.5e9, "mit", "kept")
    assert served_score(plain, "new/model-a") == pytest.approx(0.61)
    assert main(["validate", str(plain), "--strict"]) == 0


def test_the_same_batch_twice_writes_nothing_the_second_time(plain: Path) -> None:
    first = ingest(plain, batch("new/model-a", entry={"name": "new/model-a"}))
    files = tree(plain)
    again = ingest(plain, batch("new/model-a", entry={"name": "new/model-a"}))
    assert not again.created
    assert (again.file, again.version, again.models) == (first.file, first.version, ())
    assert tree(plain) == files


def test_rows_without_catalog_entries_are_taken_as_the_loader_takes_them(plain: Path) -> None:
    result = ingest(plain, batch("unlisted/model"))
    assert result.models == ()
    snapshot = build_snapshot(resolve(str(plain)))
    assert "unlisted/model" in snapshot.models  # a bare entry, as for any dataset file
    assert served_score(plain, "unlisted/model") == pytest.approx(0.5)


def test_new_task_entries_are_appended(plain: Path) -> None:
    doc = {
        "rows": [{"model_name": KNOWN_MODEL, "task_name": "BrandNewTask", "score": 0.25}],
        "tasks": [{"name": "BrandNewTask", "type": "Retrieval", "main_metric": "ndcg_at_10"}],
    }
    result = ingest(plain, batch_from_json(doc, source="body"))
    assert result.tasks == ("BrandNewTask",)
    snapshot = build_snapshot(resolve(str(plain)))
    assert snapshot.tasks["BrandNewTask"].type == "Retrieval"


def test_an_equal_entry_for_a_known_name_is_no_change(plain: Path) -> None:
    snapshot = build_snapshot(resolve(str(plain)))
    known = snapshot.models[KNOWN_MODEL].model_dump(mode="json")
    result = ingest(plain, batch(KNOWN_MODEL, 0.9, entry=known))
    assert result.created
    assert result.models == ()
    assert (plain / "models.jsonl").read_bytes() == (
        copy_sample(plain.parent / "again") / "models.jsonl"
    ).read_bytes()


@pytest.mark.parametrize(
    ("doc", "column", "kind"),
    [
        ({"rows": [{"model_name": "m", "score": 0.1}]}, "task_name", DatasetError),
        ({"rows": [{"model_name": "m", "task_name": "t", "score": "high"}]}, "score", DatasetError),
        (
            {"rows": [{"model_name": "", "task_name": "t", "score": 0.1}]},
            "model_name",
            DatasetError,
        ),
        (
            {"rows": [{"model_name": "m", "task_name": "t", "score": float("inf")}]},
            "score",
            DatasetError,
        ),
        (
            {
                "rows": [
                    {"model_name": "m", "task_name": "t", "score": 0.1, "languages": ["eng"]},
                    {"model_name": "m", "task_name": "u", "score": 0.1, "languages": "fra"},
                ]
            },
            "languages",
            DatasetError,
        ),
        (
            {"rows": [{"model_name": "m", "task_name": "t", "score": 1, "evaluated_at": "soon"}]},
            "evaluated_at",
            DatasetError,
        ),
        (
            {"rows": rows_for("m"), "models": [{"name": "m", "n_parameters": "many"}]},
            "n_parameters",
            DatasetError,
        ),
        (
            {"rows": rows_for("m"), "models": [{"name": KNOWN_MODEL, "license": "other"}]},
            "name",
            CatalogConflict,
        ),
    ],
)
def test_refused_batches_name_the_column_and_leave_the_tree_as_it_was(
    repo: Path, doc: dict[str, Any], column: str, kind: type[Exception]
) -> None:
    before, head = tree(repo), git(repo, "rev-parse", "HEAD")
    with pytest.raises(kind) as caught:
        ingest(repo, batch_from_json(doc, source="test batch"))
    error = caught.value
    assert isinstance(error, DatasetError)
    assert error.column == column, error.render()
    assert tree(repo) == before
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "rev-parse", "HEAD") == head


def test_errors_name_the_file_and_rows(tmp_path: Path) -> None:
    doc = {"rows": [{"model_name": "m", "task_name": None, "score": 0.1}]}
    with pytest.raises(DatasetError) as caught:
        batch_from_json(doc, source="upload.json")
    assert caught.value.file == "upload.json"
    assert caught.value.examples
    assert "row 0" in str(caught.value.examples[0])
    with pytest.raises(DatasetError, match="cannot read parquet"):
        batch_from_parquet(b"not parquet at all", source="upload.parquet")
    with pytest.raises(DatasetError, match="holds no result rows"):
        batch_from_json({"rows": []}, source="x")
    with pytest.raises(DatasetError, match="unknown fields"):
        batch_from_json({"rows": rows_for("m"), "extra": 1}, source="x")


def test_parquet_batches_and_timestamps(plain: Path, tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "model_name": ["pq/model", "pq/model"],
            "task_name": [TASK, TASK],
            "metric": ["ndcg_at_10", "ndcg_at_10"],
            "score": [0.3, 0.4],
            "evaluated_at": ["2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"],
        }
    ).with_columns(pl.col("evaluated_at").str.to_datetime(time_zone="UTC"))
    path = tmp_path / "batch.parquet"
    frame.write_parquet(path)
    result = ingest(plain, batch_from_file(path))
    assert result.rows == 2
    assert served_score(plain, "pq/model") == pytest.approx(0.4)  # the newer evaluation wins
    rows = batch_from_json(
        {"rows": [{**rows_for("json/model")[0], "evaluated_at": "2024-01-02T03:04:05+01:00"}]},
        source="x",
    )
    stamp = rows.frame.get_column("evaluated_at")[0]
    assert stamp.isoformat() == "2024-01-02T02:04:05+00:00"


def test_writers_in_threads_of_one_process_all_land(plain: Path) -> None:
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            ingest(plain, batch(f"thread/model-{i}", entry={"name": f"thread/model-{i}"}))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    snapshot = build_snapshot(resolve(str(plain)))
    assert {f"thread/model-{i}" for i in range(6)} <= set(snapshot.models)
    assert len(list((plain / INGEST_DIR).glob("*.parquet"))) == 6


def test_read_only_sources_are_refused(tmp_path: Path) -> None:
    for spec in (None, "sample", "hf://datasets/org/name"):
        with pytest.raises(NotWritable):
            writable_root(spec)
    with pytest.raises(NotWritable, match="does not exist"):
        writable_root(str(tmp_path / "missing"))
    assert writable_root(str(tmp_path)) == tmp_path.resolve()


# --- git ------------------------------------------------------------------------------------


def test_ingest_commits_only_its_files(repo: Path) -> None:
    (repo / "notes.txt").write_text("someone else's uncommitted file\n")
    opts = GitOptions(author_name="Ingest Bot", author_email="bot@example.com")
    entry = {"name": "git/model"}
    result = ingest(repo, batch("git/model", 0.7, entry=entry), author="alice", git=opts)
    assert result.created
    assert result.commit is not None
    assert not result.pushed
    assert result.version == result.commit == git(repo, "rev-parse", "HEAD")
    shown = git(repo, "show", "--name-only", "--format=%an <%ae>%n%B", "HEAD")
    assert shown.startswith("Ingest Bot <bot@example.com>")
    assert "Ingested-by: alice" in shown
    changed = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").split()
    assert sorted(changed) == sorted(["models.jsonl", result.file])
    assert git(repo, "status", "--porcelain") == "?? notes.txt"
    (repo / "notes.txt").unlink()
    # A committed, clean dataset resolves to the commit: the id replicas will serve.
    assert resolve(str(repo)).snapshot_id == result.commit
    assert served_score(repo, "git/model") == pytest.approx(0.7)
    assert main(["validate", str(repo)]) == 0


def test_a_failed_commit_leaves_dataset_index_and_branch_as_they_were(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'refused by hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    before, head = tree(repo), git(repo, "rev-parse", "HEAD")
    with pytest.raises(WriteFailed, match="commit"):
        ingest(repo, batch("hooked/model", entry={"name": "hooked/model"}))
    assert tree(repo) == before
    assert not (repo / INGEST_DIR).exists()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert git(repo, "rev-parse", "HEAD") == head


def test_uncommitted_catalog_edits_are_not_committed_for_someone(repo: Path) -> None:
    with (repo / "models.jsonl").open("a") as fh:
        fh.write('{"name": "half/done"}\n')
    before = tree(repo)
    with pytest.raises(NotWritable, match="uncommitted"):
        ingest(repo, batch("x/model", entry={"name": "x/model"}))
    assert tree(repo) == before


def test_push_to_the_upstream(tmp_path: Path) -> None:
    bare, (clone,) = remote_with_clones(tmp_path, "a")
    result = ingest(clone, batch("pushed/model", entry={"name": "pushed/model"}))
    assert result.pushed
    assert git(bare, "rev-parse", "main") == result.commit


def test_a_rejected_push_fetches_and_writes_again_on_top(tmp_path: Path) -> None:
    bare, (first, second) = remote_with_clones(tmp_path, "a", "b")
    one = ingest(first, batch("first/model", 0.1, entry={"name": "first/model"}))
    # ``second`` has not fetched: its push is not a fast-forward, and both append an entry
    # to models.jsonl, which a plain rebase would find in conflict.
    two = ingest(second, batch("second/model", 0.2, entry={"name": "second/model"}))
    assert one.pushed
    assert two.pushed
    assert git(bare, "rev-parse", "main") == two.commit
    assert git(bare, "rev-parse", f"{two.commit}^") == one.commit
    assert git(second, "status", "--porcelain", "--untracked-files=all") == ""
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(bare), str(fresh))
    snapshot = build_snapshot(resolve(str(fresh)))
    assert {"first/model", "second/model"} <= set(snapshot.models)
    assert served_score(fresh, "second/model") == pytest.approx(0.2)
    assert main(["validate", str(fresh), "--strict"]) == 0


def test_two_clones_racing_to_push_both_land(tmp_path: Path) -> None:
    bare, clones = remote_with_clones(tmp_path, "a", "b")
    results: dict[int, Any] = {}
    barrier = threading.Barrier(len(clones))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = [
                ingest(clones[i], batch(f"race/model-{i}-{n}", entry={"name": f"race/m{i}{n}"}))
                for n in range(3)
            ]
        except BaseException as exc:  # collected for the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clones))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for value in results.values():
        assert isinstance(value, list), value
        assert all(r.pushed for r in value)
    log = git(bare, "log", "--format=%H", "main").split()
    assert {r.commit for value in results.values() for r in value} <= set(log)
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(bare), str(fresh))
    snapshot = build_snapshot(resolve(str(fresh)))
    assert {f"race/m{i}{n}" for i in range(2) for n in range(3)} <= set(snapshot.models)
    assert len(list((fresh / INGEST_DIR).glob("*.parquet"))) == 6


def test_a_push_that_keeps_failing_takes_the_commit_back(tmp_path: Path) -> None:
    _bare, (first, second) = remote_with_clones(tmp_path, "a", "b")
    ingest(first, batch("first/model"))
    before, head = tree(second), git(second, "rev-parse", "HEAD")
    with pytest.raises(WriteFailed, match="push"):
        ingest(second, batch("second/model", entry={"name": "s"}), git=GitOptions(push_retries=0))
    assert tree(second) == before
    assert git(second, "rev-parse", "HEAD") == head
    assert git(second, "status", "--porcelain", "--untracked-files=all") == ""


# --- the command line -----------------------------------------------------------------------


def test_cli_ingest(plain: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "rows.json"
    good.write_text(
        f'{{"rows": [{{"model_name": "cli/model", "task_name": "{TASK}", "score": 0.4}}],'
        ' "models": [{"name": "cli/model"}]}'
    )
    assert main(["ingest", str(good), "--data", str(plain)]) == 0
    out = capsys.readouterr().out
    assert f"ingested: {INGEST_DIR}/" in out
    assert f"version {resolve(str(plain)).snapshot_id}" in out
    assert main(["ingest", str(good), "--data", str(plain)]) == 0
    assert "already there" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('[{"model_name": "cli/model", "score": 0.4}]')
    before = tree(plain)
    assert main(["ingest", str(bad), "--data", str(plain)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "'task_name'" in err
    assert "missing required column" in err
    assert tree(plain) == before
    assert main(["ingest", str(good), "--data", "sample"]) == 1
    assert "read-only" in capsys.readouterr().err
