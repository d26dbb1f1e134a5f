"""Incremental loads: re-reading only the results files that changed gives a fresh load's snapshot.

The dataset is the real MTEB results sample imported with every metric (28 model files),
copied per test; each change is loaded with ``previous=`` (or from the disk cache alone) and
compared with ``build_snapshot`` of the same files: results rows and their order, catalogs,
warnings, stats and every metric row of every task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
import polars as pl
import pytest

from leaderboard_api.dataset import incremental
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.diskcache import cache_entry
from leaderboard_api.dataset.importers.mteb import import_mteb
from leaderboard_api.dataset.loader import (
    Timings,
    build_snapshot,
    compact,
    load_snapshot,
    needs_compaction,
    read_cache,
)
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource, resolve
from tests.api_support import SHARED

MTEB = SHARED / "mteb"
pytestmark = pytest.mark.skipif(
    not (MTEB / "results-sample" / "results").is_dir(), reason="real MTEB data not available"
)
NEW_MODEL = "incremental/new-model"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mteb-incremental") / "data"
    import_mteb(MTEB / "results-sample", out=out, catalog=MTEB / "catalog")
    return out


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


# --- changes -----------------------------------------------------------------------------


def results_files(data: Path) -> list[Path]:
    return sorted((data / "results").glob("*.parquet"))


def edit_scores(path: Path, factor: float) -> None:
    frame = pl.read_parquet(path)
    frame.with_columns(pl.col("score") * factor).write_parquet(path)


def add_model(data: Path, *, name: str = NEW_MODEL, tasks: int = 12) -> Path:
    """A new model: a copy of the first model's rows for some tasks, with a catalog line."""
    first = results_files(data)[0]
    frame = pl.read_parquet(first)
    original = frame["model_name"][0]
    some = frame.get_column("task_name").unique().sort().head(tasks)
    frame = frame.filter(pl.col("task_name").is_in(some.implode()))
    path = data / "results" / f"{name.replace('/', '__')}.parquet"
    frame.with_columns(pl.lit(name).alias("model_name")).write_parquet(path)
    lines = (data / "models.jsonl").read_bytes().splitlines()
    entry = next(orjson.loads(x) for x in lines if orjson.loads(x)["name"] == original)
    with (data / "models.jsonl").open("ab") as fh:
        fh.write(orjson.dumps({**entry, "name": name}) + b"\n")
    return path


def edit_model_entry(data: Path, name: str, **fields: object) -> None:
    path = data / "models.jsonl"
    out = []
    for line in path.read_bytes().splitlines():
        doc = orjson.loads(line)
        out.append(orjson.dumps({**doc, **fields} if doc["name"] == name else doc))
    path.write_bytes(b"\n".join(out) + b"\n")


def edit_json(path: Path, **fields: object) -> None:
    doc = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**doc, **fields}))


# --- loading and comparing ---------------------------------------------------------------


def step(
    data: Path,
    previous: Snapshot | None,
    *,
    cache_dir: Path | None = None,
    every_task: bool = False,
) -> tuple[Snapshot, Timings, Snapshot]:
    """Load the current files incrementally and afresh: (incremental, timings, fresh)."""
    source = resolve(str(data))
    timings = Timings()
    snapshot = load_snapshot(source, cache_dir=cache_dir, previous=previous, timings=timings)
    fresh = build_snapshot(source)
    assert_same(snapshot, fresh, every_task=every_task)
    return snapshot, timings, fresh


def was_incremental(timings: Timings) -> bool:
    return "read changed files" in timings.steps and "full load" not in timings.steps


def plain(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def assert_same(got: Snapshot, want: Snapshot, *, every_task: bool = False) -> None:
    """Equal served content; ``every_task``: read each task's metric rows one by one too
    (else the whole store at once and a few tasks)."""
    assert got.id == want.id
    assert got.results.schema == want.results.schema
    # Same rows in the same order (stronger than equal sorted frames).
    assert plain(got.results).equals(plain(want.results))
    assert (got.all_revisions is None) == (want.all_revisions is None)
    if got.all_revisions is not None and want.all_revisions is not None:
        assert plain(got.all_revisions).equals(plain(want.all_revisions))
    assert dict(got.models) == dict(want.models)
    assert dict(got.tasks) == dict(want.tasks)
    assert dict(got.benchmarks) == dict(want.benchmarks)
    assert dict(got.stats_files) == dict(want.stats_files)
    assert got.menu == want.menu
    assert got.dataset == want.dataset
    assert got.warnings == want.warnings
    assert got.stats == want.stats
    assert (got.metrics is None) == (want.metrics is None)
    if got.metrics is None or want.metrics is None:
        return
    assert dict(got.metrics.names) == dict(want.metrics.names)
    assert dict(got.metrics.schema) == dict(want.metrics.schema)
    assert got.metrics.frame().equals(want.metrics.frame())
    tasks = list(want.metrics.names)
    for task in tasks if every_task else tasks[:: max(1, len(tasks) // 6)]:
        assert got.metrics.rows(task).equals(want.metrics.rows(task)), task
    for task in tasks[:4]:
        for metric in want.metrics.names[task]:
            assert got.metrics.rows(task, metric).equals(want.metrics.rows(task, metric))
    assert got.metrics.rows("no such task").equals(want.metrics.rows("no such task"))


# --- edits, additions, deletions ---------------------------------------------------------


def test_edits_additions_and_deletions_match_a_fresh_load(data: Path) -> None:
    first = build_snapshot(resolve(str(data)))
    files = results_files(data)

    edit_scores(files[3], 0.9)
    edited, timings, _ = step(data, first)
    assert was_incremental(timings)
    assert (timings.files_read, timings.files_reused) == (1, len(files) - 1)

    add_model(data)
    added, timings, _ = step(data, edited)
    assert was_incremental(timings)
    assert timings.files_read == 1
    assert NEW_MODEL in added.models
    assert added.results.filter(pl.col("model_name") == NEW_MODEL).height > 0

    files[5].unlink()
    removed, timings, _ = step(data, added)
    assert "full load" not in timings.steps
    assert (timings.files_read, timings.files_removed) == (0, 1)

    edit_scores(files[3], 1.05)
    edit_scores(files[8], 0.95)
    again, timings, _ = step(data, removed, every_task=True)
    assert was_incremental(timings)
    assert timings.files_read == 2
    # The edited file's first version is no longer used: its layer is dropped.
    assert again.file_index is not None
    assert len(again.file_index.layers) <= incremental.MAX_LAYERS


def test_the_same_bytes_under_another_stat_are_not_read_again(data: Path, tmp_path: Path) -> None:
    first = build_snapshot(resolve(str(data)))
    target = results_files(data)[2]
    os.utime(target, ns=(1, 1))  # another mtime, the same bytes
    _, timings, _ = step(data, first)
    assert (timings.files_read, timings.files_reused) == (0, len(results_files(data)))
    # A copy of the whole folder (new inodes and mtimes) with one real change.
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    edit_scores(results_files(copy)[0], 0.5)
    _, timings, _ = step(copy, first)
    assert timings.files_read == 1


def test_a_file_changed_just_before_a_load_is_compared_by_content_next_time(
    data: Path,
) -> None:
    first = build_snapshot(resolve(str(data)))
    target = results_files(data)[3]
    rel = f"results/{target.name}"
    edit_scores(target, 0.9)  # its mtime is now: a same-size rewrite could follow unseen
    second, timings, _ = step(data, first)
    assert timings.files_read == 1
    assert second.file_index is not None
    assert {f.rel: f for f in second.file_index.files}[rel].signature is None
    past = time.time_ns() - 60 * 10**9
    os.utime(target, ns=(past, past))
    third, timings, _ = step(data, second)
    assert (timings.files_read, timings.files_reused) == (0, len(results_files(data)))
    assert third.file_index is not None
    assert {f.rel: f for f in third.file_index.files}[rel].signature is not None


def test_many_changes_load_afresh(data: Path) -> None:
    first = build_snapshot(resolve(str(data)))
    for path in results_files(data)[::2] + results_files(data)[1:4:2]:
        edit_scores(path, 0.8)
    _, timings, _ = step(data, first)
    assert "full load" in timings.steps


def test_dead_rows_are_compacted_off_the_reload_path(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = load_snapshot(resolve(str(data)), cache_dir=cache)
    files = results_files(data)
    for path in files[: len(files) * 2 // 3]:
        path.unlink()
    # A reload stays quick: the rows of the deleted files stay in the base layer, unread.
    later, timings, fresh = step(data, base, cache_dir=cache)
    assert not timings.merged
    assert later.file_index is not None
    assert later.file_index.dead_rows() > 0
    assert needs_compaction(later)
    # Compacting gives the same content from one layer without dead rows, cached too.
    compacted = compact(later, cache_dir=cache)
    assert_same(compacted, fresh, every_task=True)
    assert compacted.file_index is not None
    assert len(compacted.file_index.layers) == 1
    assert compacted.file_index.dead_rows() == 0
    assert not needs_compaction(compacted)
    restarted = read_cache(cache, resolve(str(data)))
    assert restarted is not None
    assert restarted.file_index is not None
    assert len(restarted.file_index.layers) == 1
    assert_same(restarted, fresh)
    assert compact(compacted) is compacted


def test_a_start_from_the_cache_merges_dead_rows(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = load_snapshot(resolve(str(data)), cache_dir=cache)
    files = results_files(data)
    for path in files[: len(files) * 2 // 3]:
        path.unlink()
    step(data, base, cache_dir=cache)
    files[-1].unlink()
    started, timings, _ = step(data, None, cache_dir=cache)
    assert timings.merged
    assert started.file_index is not None
    assert len(started.file_index.layers) == 1
    assert started.file_index.dead_rows() == 0


def test_many_layers_are_merged(data: Path) -> None:
    snapshot = build_snapshot(resolve(str(data)))
    merges = 0
    for i in range(incremental.MAX_LAYERS + 1):
        add_model(data, name=f"incremental/model-{i}", tasks=3 + i)
        last = i == incremental.MAX_LAYERS
        snapshot, timings, _ = step(data, snapshot, every_task=last)
        assert "full load" not in timings.steps
        merges += timings.merged
        assert snapshot.file_index is not None
        assert len(snapshot.file_index.layers) <= incremental.MAX_LAYERS
    assert merges == 1


def test_a_column_changing_type_loads_afresh(data: Path) -> None:
    target = results_files(data)[4]
    frame = pl.read_parquet(target)
    frame.with_columns(pl.lit(3, dtype=pl.Int64).alias("run_id")).write_parquet(target)
    first = build_snapshot(resolve(str(data)))
    assert first.results.schema["run_id"] == pl.Int64
    frame.with_columns(pl.lit(3.5).alias("run_id")).write_parquet(target)
    later, timings, _ = step(data, first)
    assert "full load" in timings.steps
    assert later.results.schema["run_id"] == pl.Float64
    # The only file with the column goes: so does the column.
    target.unlink()
    gone, timings, _ = step(data, later)
    assert "full load" not in timings.steps
    assert "run_id" not in gone.results.columns


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["wrong type", "truncated", "missing column"])
def test_an_invalid_file_raises_the_fresh_error_and_leaves_the_previous_alone(
    data: Path, tmp_path: Path, damage: str
) -> None:
    cache = tmp_path / "cache"
    previous = load_snapshot(resolve(str(data)), cache_dir=cache)
    kept = plain(previous.results).clone()
    layers_before = sorted(p.name for p in (cache / "layers").iterdir())
    edit_scores(results_files(data)[0], 0.5)  # a valid change next to the bad one
    bad = results_files(data)[6]
    if damage == "wrong type":
        frame = pl.read_parquet(bad)
        frame.with_columns(pl.col("score").cast(pl.String)).write_parquet(bad)
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    else:
        pl.read_parquet(bad).drop("task_name").write_parquet(bad)
    source = resolve(str(data))
    with pytest.raises(DatasetError) as fresh:
        build_snapshot(source)
    with pytest.raises(DatasetError) as quick:
        load_snapshot(source, cache_dir=cache, previous=previous)
    assert str(quick.value) == str(fresh.value)
    assert quick.value.file == f"results/{bad.name}"
    # Nothing written, and the previous snapshot still answers as before.
    assert not cache_entry(cache, source.snapshot_id).exists()
    assert sorted(p.name for p in (cache / "layers").iterdir()) == layers_before
    assert not list(cache.glob(".*"))
    assert plain(previous.results).equals(kept)
    assert previous.metrics is not None
    task = next(iter(previous.metrics.names))
    assert previous.metrics.rows(task).height > 0


def test_a_failed_temporary_load_leaves_no_layer(data: Path) -> None:
    previous = build_snapshot(resolve(str(data)))
    before = set(Path(tempfile.gettempdir()).glob("leaderboard-layer-*"))
    bad = results_files(data)[1]
    bad.write_bytes(b"not parquet")
    with pytest.raises(DatasetError):
        load_snapshot(resolve(str(data)), previous=previous)
    assert set(Path(tempfile.gettempdir()).glob("leaderboard-layer-*")) == before


# --- catalogs and dataset settings -------------------------------------------------------


def test_catalog_edits_are_read(data: Path) -> None:
    first = build_snapshot(resolve(str(data)))
    name = first.results.get_column("model_name").cast(pl.String).sort()[0]
    edit_model_entry(data, name, license="proprietary-test", n_parameters=123)
    edited, timings, _ = step(data, first)
    assert "full load" not in timings.steps
    assert timings.files_read == 0
    assert edited.models[name].license == "proprietary-test"
    # Unregistering a model drops its rows (dataset.json says registered_only).
    edit_model_entry(data, name, registered=False)
    unregistered, timings, _ = step(data, edited)
    assert "full load" not in timings.steps
    assert name not in unregistered.models
    # A task's description changes: only the catalog is read again.
    tasks = data / "tasks.jsonl"
    lines = [orjson.loads(x) for x in tasks.read_bytes().splitlines()]
    lines[0]["description"] = "changed"
    tasks.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    _, timings, _ = step(data, unregistered)
    assert "full load" not in timings.steps


def test_a_main_metric_change_loads_afresh(data: Path) -> None:
    first = build_snapshot(resolve(str(data)))
    assert first.metrics is not None
    task = next(t for t, m in first.metrics.names.items() if len(m) > 1)
    tasks = data / "tasks.jsonl"
    lines = [orjson.loads(x) for x in tasks.read_bytes().splitlines()]
    for line in lines:
        if line["name"] == task:
            line["main_metric"] = next(
                m for m in first.metrics.names[task] if m != line.get("main_metric")
            )
    tasks.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    _, timings, _ = step(data, first)
    assert "full load" in timings.steps


@pytest.mark.parametrize(
    "scoring",
    [
        {"revisions": "per_model", "registered_only": True},
        {"revisions": "per_task", "registered_only": False},
    ],
)
def test_dataset_settings_are_applied(data: Path, scoring: dict[str, object]) -> None:
    first = build_snapshot(resolve(str(data)))
    edit_json(data / "dataset.json", scoring=scoring)
    later, _, _ = step(data, first)
    assert later.dataset.scoring.model_dump() == scoring


# --- the disk cache ----------------------------------------------------------------------


def test_restart_from_the_new_cache_entry_equals_a_fresh_load(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = load_snapshot(resolve(str(data)), cache_dir=cache)
    add_model(data)
    later, timings, fresh = step(data, base, cache_dir=cache)
    assert was_incremental(timings)
    source = resolve(str(data))
    entry = cache_entry(cache, source.snapshot_id)
    index = orjson.loads((entry / "index.json").read_bytes())
    # The entry references the base layer and adds one layer holding just the new file.
    assert len(index["layers"]) == 2
    assert len(list((cache / "layers").iterdir())) == 2
    new_layer = cache / index["layers"][1]
    assert len(orjson.loads((new_layer / "layer.json").read_bytes())["files"]) == 1
    restarted = read_cache(cache, source)
    assert restarted is not None
    assert_same(restarted, fresh, every_task=True)
    # A restart after a change made while no process ran: incremental from the cache alone.
    edit_scores(results_files(data)[0], 0.7)
    offline, timings, _ = step(data, None, cache_dir=cache)
    assert was_incremental(timings)
    assert timings.files_read == 1
    # And the next start on that id reads its entry.
    timings = Timings()
    again = load_snapshot(resolve(str(data)), cache_dir=cache, timings=timings)
    assert list(timings.steps) == ["disk cache"]
    assert_same(again, build_snapshot(resolve(str(data))))
    del later, offline


def test_a_temporary_previous_is_copied_into_the_cache(data: Path, tmp_path: Path) -> None:
    previous = build_snapshot(resolve(str(data)))
    edit_scores(results_files(data)[2], 0.6)
    cache = tmp_path / "cache"
    later, timings, fresh = step(data, previous, cache_dir=cache)
    assert was_incremental(timings)
    assert len(list((cache / "layers").iterdir())) == 2
    restarted = read_cache(cache, resolve(str(data)))
    assert restarted is not None
    assert_same(restarted, fresh)
    del later


@pytest.mark.parametrize("lost", ["candidates.parquet", "metrics/bucket-07.parquet"])
def test_lost_layer_files_load_afresh(data: Path, tmp_path: Path, lost: str) -> None:
    cache = tmp_path / "cache"
    base = load_snapshot(resolve(str(data)), cache_dir=cache)
    (layer,) = (cache / "layers").iterdir()
    (layer / lost).unlink()
    # The entry using the layer is refused (not served with rows missing) and rebuilt.
    timings = Timings()
    load_snapshot(resolve(str(data)), cache_dir=cache, timings=timings)
    assert "full load" in timings.steps
    # The snapshot still in memory does not lend its damaged layer to the next version.
    edit_scores(results_files(data)[0], 0.3)
    _, timings, _ = step(data, base, cache_dir=cache)
    assert "full load" in timings.steps


# --- a git repository --------------------------------------------------------------------


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
def test_git_commits_and_checkouts(data: Path, tmp_path: Path) -> None:
    git(data, "init", "-q")
    one = commit_all(data, "one")
    source = resolve(str(data))
    assert (source.kind, source.snapshot_id) == ("git", one)
    cache = tmp_path / "cache"
    first = load_snapshot(source, cache_dir=cache)
    edit_scores(results_files(data)[1], 0.5)
    add_model(data)
    two = commit_all(data, "two")
    second, timings, _ = step(data, first, cache_dir=cache)
    assert second.id == two
    assert timings.files_read == 2
    # Back to the first commit: git rewrites the files that differ, nothing else.
    git(data, "checkout", "-q", one)
    back, timings, _ = step(data, second)
    assert back.id == one
    assert timings.files_read == 1
    assert timings.files_removed == 1


def test_sources_resolved_elsewhere_are_compared_by_content(data: Path) -> None:
    first = build_snapshot(resolve(str(data)))
    edit_scores(results_files(data)[0], 0.4)
    source = resolve(str(data))
    moved = ResolvedSource(
        spec="elsewhere",
        path=source.path,
        snapshot_id=source.snapshot_id,
        updated_at=source.updated_at,
        kind=source.kind,
    )
    later = load_snapshot(moved, previous=first)
    assert_same(later, build_snapshot(source))
