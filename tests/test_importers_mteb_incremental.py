"""The MTEB importer's re-imports, variants, skipped files, atomicity and CLI, on real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from leaderboard_api.cli import main
from leaderboard_api.dataset.contract import DatasetError
from leaderboard_api.dataset.importers import common
from leaderboard_api.dataset.importers.mteb import import_mteb
from leaderboard_api.dataset.importers.mteb_scan import MANIFEST_FILE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mteb"
SAMPLE = DATA / "results-sample" / "results"
CATALOG = DATA / "catalog"

pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="real MTEB data not available")

E5 = "intfloat__e5-large"
BGE = "BAAI__bge-m3"
OPENAI = "openai__text-embedding-3-small"
MODELS = [E5, BGE, OPENAI, "BAAI__bge-base-zh"]


def copy_sample(dst: Path, models: list[str] = MODELS) -> Path:
    """A results tree holding real sample folders; returns its ``results`` folder."""
    root = dst / "results"
    for name in models:
        shutil.copytree(SAMPLE / name, root / name)
    return root


def tree_bytes(out: Path) -> dict[str, bytes]:
    """Every dataset file of an output (the manifest aside), by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }


def results(out: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted((out / "results").glob("*.parquet"))])


def result_files(root: Path, model: str) -> list[Path]:
    return sorted(p for p in (root / model).rglob("*.json") if p.name != "model_meta.json")


def test_reimport_reads_only_changes_and_matches_a_fresh_import(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "src")
    out = tmp_path / "out"
    first = import_mteb(root, out=out, catalog=CATALOG, jobs=1)
    again = import_mteb(root, out=out, catalog=CATALOG, jobs=1)
    assert again.imported["result files re-read"] == 0
    assert again.imported["result files reused"] == first.imported["result files"]
    # change one file's score, add one (a copy under a new name), delete one, touch one
    bge = result_files(root, BGE)
    data = json.loads(bge[0].read_text())
    data["scores"]["test"][0]["main_score"] = 0.123456
    bge[0].write_text(json.dumps(data))
    shutil.copyfile(result_files(root, E5)[0], root / E5 / "external" / "CopiedTask.json")
    result_files(root, OPENAI)[0].unlink()
    touched = result_files(root, E5)[3]
    os.utime(touched, ns=(1, 1))
    report = import_mteb(root, out=out, catalog=CATALOG, jobs=1)
    assert report.imported["result files re-read"] <= 6
    fresh = tmp_path / "fresh"
    import_mteb(root, out=fresh, catalog=CATALOG, jobs=1)
    assert tree_bytes(out) == tree_bytes(fresh)
    rows = results(out)
    assert 0.123456 in rows["score"].to_list()
    # parallel workers give the same bytes
    parallel = tmp_path / "parallel"
    import_mteb(root, out=parallel, catalog=CATALOG, jobs=2)
    assert tree_bytes(parallel) == tree_bytes(fresh)


def test_removing_a_whole_model_folder_and_renaming_a_model(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "src")
    out = tmp_path / "out"
    import_mteb(root, out=out, jobs=1)
    shutil.rmtree(root / OPENAI)
    meta_path = next((root / E5).glob("*/model_meta.json"))
    meta = json.loads(meta_path.read_text())
    meta["name"] = "intfloat/e5-large-renamed"
    meta_path.write_text(json.dumps(meta))
    report = import_mteb(root, out=out, jobs=1)
    assert report.imported["result files re-read"] == 0
    fresh = tmp_path / "fresh"
    import_mteb(root, out=fresh, jobs=1)
    assert tree_bytes(out) == tree_bytes(fresh)
    assert not (out / "results" / f"{OPENAI}.parquet").exists()
    assert "intfloat/e5-large-renamed" in set(results(out)["model_name"])


def test_experiments_are_variant_rows(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "src", [BGE])
    rev = next(p for p in (root / BGE).iterdir() if p.is_dir())
    exp = rev / "experiments" / "no_instructions"
    exp.mkdir(parents=True)
    tasks = sorted(p for p in rev.glob("*.json") if p.name != "model_meta.json")[:3]
    for path in tasks:
        shutil.copyfile(path, exp / path.name)
    kwargs = {"use_instructions": False, "batch_size": 8}
    (exp / "model_meta.json").write_text(json.dumps({"name": "x", "experiment_kwargs": kwargs}))
    other = rev / "experiments" / "bare"
    other.mkdir()
    shutil.copyfile(tasks[0], other / tasks[0].name)
    out = tmp_path / "out"
    report = import_mteb(root, out=out, catalog=CATALOG, jobs=1)
    assert report.imported["variant result files"] == 4
    df = results(out)
    assert df.schema["variant"] == pl.String()
    base = df.filter(pl.col("variant").is_null())
    variant = df.filter(pl.col("variant") == "no_instructions")
    assert variant.height
    assert base.height
    key = ["model_name", "model_revision", "task_name", "split", "subset", "metric"]
    assert variant.select(key).join(base.select(key), on=key).height == variant.height
    assert set(variant["model_name"]) == {"BAAI/bge-m3"}
    models = {
        (e := json.loads(line))["name"]: e
        for line in (out / "models.jsonl").read_text().splitlines()
    }
    assert models["BAAI/bge-m3"]["variants"] == {"bare": {}, "no_instructions": kwargs}


def test_unreadable_and_odd_files_are_skipped_by_reason(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "src", [OPENAI])
    rev = root / OPENAI / "1"
    (rev / "Dangling.json").symlink_to(tmp_path / "nowhere.json")
    (rev / "Broken.json").write_text("{not json")
    (rev / "Deep.json").write_text("[" * 5000 + "]" * 5000)
    (rev / "Other.json").write_text('{"hello": "world"}')
    good = json.loads((rev / "BIOSSES.json").read_text())
    good["task_name"] = "InfTask"
    inf = json.dumps(good).replace("0.8872250353", "Infinity")
    assert "Infinity" in inf
    (rev / "InfTask.json").write_text(inf)
    (rev / "NaNTask.json").write_text(json.dumps(good).replace("0.8872250353", "NaN"))
    out = tmp_path / "out"
    report = import_mteb(root, out=out, jobs=1)
    assert dict(report.skipped) == {
        "unreadable file": 1,
        "invalid JSON": 1,
        "JSON nested too deeply": 1,
        "not an MTEB result file": 1,
    }
    assert report.notes["infinite scores skipped"] == 1
    assert report.notes["NaN scores written as null"] >= 1
    df = results(out)
    assert df.filter(pl.col("task_name") == "InfTask").height == 0  # its only value was inf
    nan = df.filter(pl.col("task_name") == "BIOSSES", pl.col("model_revision") == "1")
    assert nan.height
    text = report.render()
    assert "JSON nested too deeply: 1" in text
    assert "re-read" in text


def test_files_listed_in_git_but_absent_are_counted(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = copy_sample(tmp_path / "repo", [OPENAI])
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
    }
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path / "repo", check=True, env=env)
    gone = result_files(root, OPENAI)[0]
    gone.unlink()
    report = import_mteb(tmp_path / "repo", out=tmp_path / "out", jobs=1)
    reason = "missing from the work tree (listed in git)"
    assert report.skipped[reason] == 1
    assert report.skipped_examples[reason] == [gone.relative_to(root).as_posix()]


def test_a_failed_import_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_sample(tmp_path / "src", [OPENAI, E5])
    out = tmp_path / "out"
    import_mteb(root, out=out, jobs=1)
    (out / "README.md").write_text("kept")
    before = tree_bytes(out)
    manifest = (out / MANIFEST_FILE).read_bytes()
    for path in result_files(root, E5)[:2]:
        path.write_text(path.read_text().replace('"test"', '"test2"'))
    calls = []

    def broken(df: pl.DataFrame, path: Path, **_: object) -> int:
        calls.append(path)
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(common, "write_results", broken)
    with pytest.raises(OSError, match="disk full"):
        import_mteb(root, out=out, jobs=1)
    assert calls
    assert tree_bytes(out) == before
    assert (out / MANIFEST_FILE).read_bytes() == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temp folder left
    monkeypatch.undo()
    import_mteb(root, out=out, jobs=1)
    assert (out / "README.md").read_text() == "kept"  # files the import does not own stay


def test_no_readable_result_file_is_an_error(tmp_path: Path) -> None:
    rev = tmp_path / "src" / "results" / "org__m" / "rev"
    rev.mkdir(parents=True)
    (rev / "Broken.json").write_text("{")
    with pytest.raises(DatasetError, match="no readable MTEB result files"):
        import_mteb(tmp_path / "src", out=tmp_path / "out", jobs=1)
    assert not (tmp_path / "out").exists()


def test_dataset_file_and_descriptive_stats(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    stats = catalog / "descriptive_stats"
    stats.mkdir()
    (stats / "BIOSSES.json").write_bytes(b'{"num_samples": 100}\n')
    (stats / "NotATask.json").write_bytes(b"{}")
    root = copy_sample(tmp_path / "src", [OPENAI])
    out = tmp_path / "out"
    report = import_mteb(root, out=out, catalog=catalog, jobs=1)
    assert json.loads((out / "dataset.json").read_text()) == {
        "name": "MTEB",
        "scoring": {"registered_only": True, "revisions": "per_task"},
    }
    assert sorted(p.name for p in (out / "descriptive_stats").iterdir()) == ["BIOSSES.json"]
    assert (out / "descriptive_stats" / "BIOSSES.json").read_bytes() == b'{"num_samples": 100}\n'
    assert report.imported["descriptive stats files"] == 1


def test_cli_main_only_and_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_sample(tmp_path / "src", [OPENAI, E5])
    out = tmp_path / "out"
    args = ["import", "mteb", str(root), "--catalog", str(CATALOG), "--out", str(out)]
    assert main([*args, "--main-only", "--jobs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "result files re-read" in printed
    assert "skipped: 0" in printed
    main_rows = results(out)
    tasks = {
        (e := json.loads(line))["name"]: e["main_metric"]
        for line in (out / "tasks.jsonl").read_text().splitlines()
    }
    assert all(tasks[t] == m for t, m in main_rows.select("task_name", "metric").iter_rows())
    assert main([*args, "--jobs", "2", "--quiet"]) == 0  # other settings: everything re-read
    assert "0 result files reused" in capsys.readouterr().out
    assert results(out).height > main_rows.height
