"""Tests of the dataset loader: validation errors, normalization rules, disk cache, sample."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from leaderboard_api.dataset.contract import DatasetError, TaskInfo
from leaderboard_api.dataset.loader import (
    build_snapshot,
    cache_entry,
    load_snapshot,
    read_cache,
    write_cache,
)
from leaderboard_api.dataset.snapshot import Snapshot
from leaderboard_api.dataset.sources import ResolvedSource, content_hash, resolve, sample_path

ROOT = Path(__file__).resolve().parents[1]
#: The content hash of the committed sample; changes only when the sample is regenerated.
SAMPLE_ID = "sha256-93af1ef08d54476d88821597734a019658efb5c8"

Rows = list[dict[str, Any]]


def row(
    model: str = "org/m", task: str = "T", score: float | None = 0.5, **more: Any
) -> dict[str, Any]:
    return {"model_name": model, "task_name": task, "score": score, **more}


def write_parquet(path: Path, data: Rows | pl.DataFrame) -> Path:
    frame = data if isinstance(data, pl.DataFrame) else pl.DataFrame(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def write_jsonl(path: Path, rows: Rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def dataset(
    root: Path,
    results: dict[str, Rows | pl.DataFrame],
    *,
    models: Rows | None = None,
    tasks: Rows | None = None,
    benchmarks: Rows | None = None,
    menu: list[Any] | None = None,
) -> Path:
    """A dataset directory with ``results/<name>`` files and the catalogs that are given."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in results.items():
        write_parquet(root / "results" / name, data)
    for file, rows in (("models.jsonl", models), ("tasks.jsonl", tasks)):
        if rows is not None:
            write_jsonl(root / file, rows)
    if benchmarks is not None:
        write_jsonl(root / "benchmarks.jsonl", benchmarks)
    if menu is not None:
        (root / "menu.json").write_text(json.dumps(menu))
    return root


def load(root: Path) -> Snapshot:
    return build_snapshot(resolve(str(root)))


def rows_of(frame: pl.DataFrame) -> Rows:
    """Plain dicts with categorical columns as strings."""
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String)).to_dicts()


def load_error(root: Path, cache_dir: Path) -> DatasetError:
    """The error a load raises, checked to be the same through build_snapshot and load_snapshot."""
    with pytest.raises(DatasetError) as direct:
        load(root)
    with pytest.raises(DatasetError) as cached:
        load_snapshot(resolve(str(root)), cache_dir=cache_dir)
    assert str(direct.value) == str(cached.value)
    assert not cache_dir.exists() or not any(cache_dir.iterdir()), "a failed load wrote a cache"
    return direct.value


# --- validation errors -------------------------------------------------------------------


@pytest.mark.parametrize("column", ["model_name", "task_name", "score"])
def test_missing_required_column_names_file_and_column(tmp_path: Path, column: str) -> None:
    good = row()
    bad = {k: v for k, v in good.items() if k != column}
    root = dataset(tmp_path / "d", {"a.parquet": [good], "b.parquet": [bad]})
    err = load_error(root, tmp_path / "cache")
    assert err.file == "results/b.parquet"
    assert err.column == column
    assert "missing required column" in str(err)
    assert err.hint is not None
    assert "columns present" in err.hint
    assert str(err).startswith(f"results/b.parquet: column '{column}': missing required column")


def test_score_as_string_is_a_type_error_with_example_rows(tmp_path: Path) -> None:
    root = dataset(tmp_path / "d", {"a.parquet": [row(score=None) | {"score": "0.5"}]})
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == ("results/a.parquet", "score")
    assert "expected a float, found String" in err.message
    assert err.examples == ["row 0: score='0.5'"]


def test_model_name_as_int_is_a_type_error_with_example_rows(tmp_path: Path) -> None:
    frame = pl.DataFrame({"model_name": [7, 8], "task_name": ["T", "T"], "score": [0.1, 0.2]})
    root = dataset(tmp_path / "d", {"a.parquet": frame})
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == ("results/a.parquet", "model_name")
    assert "expected str, found Int64" in err.message
    assert err.examples == ["row 0: model_name=7", "row 1: model_name=8"]


def test_infinite_scores_are_an_error_naming_the_rows(tmp_path: Path) -> None:
    rows = [row(task="A"), row(task="B", score=float("inf")), row(task="C", score=-float("inf"))]
    root = dataset(tmp_path / "d", {"a.parquet": rows})
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == ("results/a.parquet", "score")
    assert "infinite" in err.message
    assert len(err.examples) == 2
    assert str(err.examples[0]).startswith("row 1: model_name='org/m', task_name='B'")
    assert str(err.examples[1]).endswith("score=-inf")


def test_empty_model_name_is_an_error(tmp_path: Path) -> None:
    root = dataset(tmp_path / "d", {"a.parquet": [row(), row(model="")]})
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == ("results/a.parquet", "model_name")
    assert err.examples == ["row 1: model_name=''"]


@pytest.mark.parametrize("damage", ["truncate", "not parquet"])
def test_unreadable_parquet_names_the_file(tmp_path: Path, damage: str) -> None:
    root = dataset(tmp_path / "d", {"a.parquet": [row()], "sub/b.parquet": [row(task="U")]})
    bad = root / "results" / "sub" / "b.parquet"
    if damage == "truncate":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        bad.write_text("model_name,task_name,score\norg/m,T,0.5\n")
    err = load_error(root, tmp_path / "cache")
    assert err.file == "results/sub/b.parquet"
    assert "cannot read parquet" in err.message


def test_empty_results_folder(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "results").mkdir(parents=True)
    (root / "results" / "notes.txt").write_text("no parquet here")
    err = load_error(root, tmp_path / "cache")
    assert "holds no parquet files" in str(err)
    assert err.file is not None
    assert err.file.endswith("results/")


def test_no_results_folder(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    write_jsonl(root / "tasks.jsonl", [{"name": "T"}])
    err = load_error(root, tmp_path / "cache")
    assert "no results/ folder" in str(err)
    assert err.file == str(root)


@pytest.mark.parametrize("file", ["models.jsonl", "tasks.jsonl", "benchmarks.jsonl"])
def test_duplicate_names_in_a_catalog(tmp_path: Path, file: str) -> None:
    entries = [{"name": "Dup"}, {"name": "Other"}, {"name": "Dup"}]
    root = dataset(tmp_path / "d", {"a.parquet": [row()]})
    write_jsonl(root / file, entries)
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == (file, "name")
    assert "duplicate name 'Dup' on lines 1 and 3" in err.message


def test_invalid_catalog_entry_names_line_and_field(tmp_path: Path) -> None:
    root = dataset(tmp_path / "d", {"a.parquet": [row()]}, tasks=[{"name": "T"}, {"type": "STS"}])
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == ("tasks.jsonl", "name")
    assert err.message.startswith("line 2:")


def test_menu_naming_an_unknown_benchmark_is_an_error(tmp_path: Path) -> None:
    menu = [
        {
            "name": "Top",
            "children": [
                {"benchmark": "B1"},
                {"name": "Inner", "children": [{"benchmark": "Ghost", "display_name": "?"}]},
            ],
        }
    ]
    root = dataset(
        tmp_path / "d",
        {"a.parquet": [row()]},
        benchmarks=[{"name": "B1", "tasks": [{"task": "T"}]}],
        menu=menu,
    )
    err = load_error(root, tmp_path / "cache")
    assert (err.file, err.column) == ("menu.json", "benchmark")
    assert err.examples == ["Ghost"]


# --- warnings, not failures --------------------------------------------------------------


def test_nan_scores_are_missing_counted_and_warned(tmp_path: Path) -> None:
    rows = [row(task="A", score=float("nan")), row(task="B", score=0.25)]
    root = dataset(tmp_path / "d", {"a.parquet": rows})
    for snap in (load(root), load_snapshot(resolve(str(root)), cache_dir=tmp_path / "c")):
        assert snap.stats.nan_scores == 1
        scores = {r["task_name"]: r["score"] for r in rows_of(snap.results)}
        assert scores == {"A": None, "B": 0.25}
        assert [w.render() for w in snap.warnings] == ["results: 1 NaN score(s) treated as missing"]


def test_benchmark_naming_a_task_without_results_warns(tmp_path: Path) -> None:
    root = dataset(
        tmp_path / "d",
        {"a.parquet": [row(task="T")]},
        benchmarks=[{"name": "B", "tasks": [{"task": "T"}, {"task": "Gone"}]}],
    )
    snap = load(root)
    assert list(snap.benchmarks) == ["B"]
    assert [w.render() for w in snap.warnings] == [
        "benchmarks.jsonl: benchmark 'B' names 1 task(s) with no results: Gone"
    ]


# --- normalization rules -----------------------------------------------------------------


def test_exact_duplicates_later_file_and_row_win(tmp_path: Path) -> None:
    first = [row(task="A", score=0.1), row(task="B", score=0.2), row(task="A", score=0.3)]
    second = [row(task="C", score=0.4), row(task="B", score=0.5)]
    root = dataset(tmp_path / "d", {"1.parquet": first, "2.parquet": second})
    snap = load(root)
    got = [(r["task_name"], r["score"]) for r in rows_of(snap.results)]
    # Survivors keep file order: A's second row (file 1, row 2), then file 2's rows.
    assert got == [("A", 0.3), ("C", 0.4), ("B", 0.5)]
    assert snap.stats.rows_read == 5
    assert snap.stats.duplicates_dropped == 2


def test_exact_duplicates_newest_evaluated_at_wins(tmp_path: Path) -> None:
    def at(day: int | None) -> datetime | None:
        return None if day is None else datetime(2024, 1, day, tzinfo=UTC)

    schema: dict[str, pl.DataType] = {
        "model_name": pl.String(),
        "task_name": pl.String(),
        "score": pl.Float64(),
        "evaluated_at": pl.Datetime("us", "UTC"),
    }
    early = pl.DataFrame(
        [
            row(task="A", score=0.9, evaluated_at=at(20)),
            row(task="B", score=0.1, evaluated_at=None),
        ],
        schema=schema,
        orient="row",
    )
    late = pl.DataFrame(
        [
            row(task="A", score=0.2, evaluated_at=at(5)),
            row(task="B", score=0.7, evaluated_at=at(1)),
        ],
        schema=schema,
        orient="row",
    )
    root = dataset(tmp_path / "d", {"1.parquet": early, "2.parquet": late})
    got = {r["task_name"]: r["score"] for r in rows_of(load(root).results)}
    # A: the earlier file's newer run wins; B: any timestamp beats a null one.
    assert got == {"A": 0.9, "B": 0.7}


def test_naive_evaluated_at_is_read_as_utc(tmp_path: Path) -> None:
    frame = pl.DataFrame([row() | {"evaluated_at": datetime(2024, 5, 1, 12)}])
    root = dataset(tmp_path / "d", {"a.parquet": frame})
    results = load(root).results
    assert results.schema["evaluated_at"] == pl.Datetime("us", "UTC")
    assert results.item(0, "evaluated_at") == datetime(2024, 5, 1, 12, tzinfo=UTC)


def revisions(snap: Snapshot) -> dict[str, str | None]:
    return {r["model_name"]: r["model_revision"] for r in rows_of(snap.results)}


def test_revision_named_in_the_catalog_wins_over_more_results(tmp_path: Path) -> None:
    rows = [row(task=t, model_revision="old") for t in "ABC"] + [
        row(task="A", model_revision="new")
    ]
    root = dataset(
        tmp_path / "d", {"a.parquet": rows}, models=[{"name": "org/m", "revision": "new"}]
    )
    snap = load(root)
    assert revisions(snap) == {"org/m": "new"}
    assert snap.results.height == 1
    assert snap.stats.revisions_dropped == 3


def test_revision_with_most_results_wins_then_name(tmp_path: Path) -> None:
    rows = [row("x/most", t, model_revision="b") for t in "AB"] + [
        row("x/most", "A", model_revision="a")
    ]
    rows += [row("x/tie", "A", model_revision=r) for r in ("zz", "aa", "mm")]
    rows += [row("x/null", "A", model_revision="0"), row("x/null", "A", model_revision=None)]
    rows += [row("x/empty", "A", model_revision=""), row("x/empty", "A", model_revision=None)]
    # A catalog revision with no results falls back to the count rule.
    models = [{"name": "x/most", "revision": "missing"}]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}, models=models))
    # A null revision sorts as "" and, on a full tie, before a literal "".
    assert revisions(snap) == {"x/most": "b", "x/tie": "aa", "x/null": None, "x/empty": None}
    assert snap.stats.revisions_dropped == 1 + 2 + 1 + 1


def test_revision_choice_counts_rows_in_every_file(tmp_path: Path) -> None:
    one = [row(task="A", model_revision="r1"), row(task="B", model_revision="r2")]
    two = [row(task="C", model_revision="r2")]
    snap = load(dataset(tmp_path / "d", {"1.parquet": one, "2.parquet": two}))
    assert revisions(snap) == {"org/m": "r2"}


def test_main_metric_is_kept_and_others_go_to_metrics(tmp_path: Path) -> None:
    rows = [
        row(task="R", score=0.4, metric="ndcg_at_10"),
        row(task="R", score=0.9, metric="recall_at_100"),
        row(task="S", score=0.8, metric="spearman"),
        row(task="S", score=0.7, metric="pearson"),
        row(task="N", score=0.6, metric=None),
    ]
    tasks = [{"name": "R", "main_metric": "ndcg_at_10"}, {"name": "S", "main_metric": "spearman"}]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}, tasks=tasks))
    assert "metric" not in snap.results.columns
    got = {r["task_name"]: r["score"] for r in rows_of(snap.results)}
    assert got == {"R": 0.4, "S": 0.8, "N": 0.6}
    assert snap.metrics is not None
    assert sorted((r["task_name"], str(r["metric"])) for r in rows_of(snap.metrics.frame())) == [
        ("N", "None"),
        ("R", "ndcg_at_10"),
        ("R", "recall_at_100"),
        ("S", "pearson"),
        ("S", "spearman"),
    ]
    assert snap.warnings == ()


def test_main_metric_without_catalog_is_the_first_name_with_a_warning(tmp_path: Path) -> None:
    rows = [row(score=0.2, metric="zeta"), row(score=0.3, metric="alpha")]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}))
    assert [r["score"] for r in rows_of(snap.results)] == [0.3]
    assert [w.message for w in snap.warnings] == [
        "task 'T' has no main_metric in tasks.jsonl; using 'alpha'"
    ]


def test_main_metric_absent_from_results_warns_and_keeps_no_row(tmp_path: Path) -> None:
    rows = [row(task="T", metric="f1"), row(task="U", metric="f1")]
    tasks = [{"name": "T", "main_metric": "accuracy"}]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}, tasks=tasks))
    assert [r["task_name"] for r in rows_of(snap.results)] == ["U"]
    assert "main metric 'accuracy' absent from results" in snap.warnings[0].message


def test_null_metric_and_main_metric_rows_are_one_cell(tmp_path: Path) -> None:
    old = [row(task="T", score=0.1)]  # a file without a metric column: its score is the main one
    new = [row(task="T", score=0.2, metric="acc"), row(task="T", score=0.9, metric="f1")]
    tasks = [{"name": "T", "main_metric": "acc"}]
    snap = load(dataset(tmp_path / "d", {"1.parquet": old, "2.parquet": new}, tasks=tasks))
    assert [r["score"] for r in rows_of(snap.results)] == [0.2]


def test_defaults_for_missing_optional_columns(tmp_path: Path) -> None:
    snap = load(dataset(tmp_path / "d", {"a.parquet": [row()]}))
    assert rows_of(snap.results) == [
        {
            "model_name": "org/m",
            "model_revision": None,
            "task_name": "T",
            "split": "test",
            "subset": "default",
            "languages": [],
            "score": 0.5,
        }
    ]
    assert snap.metrics is None
    for name in ("model_name", "model_revision", "task_name", "split", "subset"):
        assert snap.results.schema[name] == pl.Categorical


def test_null_optional_values_take_defaults_and_string_languages_become_lists(
    tmp_path: Path,
) -> None:
    rows = [
        row(task="A", split=None, subset=None, languages=None),
        row(task="B", split="dev", subset="fra", languages="fra-Latn"),
    ]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}))
    got = {r["task_name"]: (r["split"], r["subset"], r["languages"]) for r in rows_of(snap.results)}
    assert got == {"A": ("test", "default", []), "B": ("dev", "fra", ["fra-Latn"])}


def test_without_catalogs_every_task_is_in_benchmark_all(tmp_path: Path) -> None:
    rows = [row("b/one", "Zeta"), row("a/two", "Alpha"), row("a/two", "Mid")]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}))
    assert list(snap.benchmarks) == ["all"]
    assert [t.task for t in snap.benchmarks["all"].tasks] == ["Alpha", "Mid", "Zeta"]
    assert list(snap.tasks) == ["Alpha", "Mid", "Zeta"]
    assert snap.tasks["Zeta"] == TaskInfo(name="Zeta")
    assert snap.tasks["Zeta"].higher_is_better is True
    assert list(snap.models) == ["a/two", "b/one"]
    assert snap.menu == ()
    assert snap.warnings == ()


def test_extra_columns_are_kept_after_the_contract_columns(tmp_path: Path) -> None:
    rows = [row(evaluation_time=12.5, mteb_version="1.2.3", subset="eng")]
    snap = load(dataset(tmp_path / "d", {"a.parquet": rows}))
    assert snap.results.columns == [
        "model_name",
        "model_revision",
        "task_name",
        "split",
        "subset",
        "languages",
        "score",
        "evaluation_time",
        "mteb_version",
    ]
    assert rows_of(snap.results)[0]["mteb_version"] == "1.2.3"


def test_catalog_extras_are_kept(tmp_path: Path) -> None:
    benchmarks = [{"name": "B", "tasks": [{"task": "T"}], "show_zero_shot": True}]
    snap = load(dataset(tmp_path / "d", {"a.parquet": [row()]}, benchmarks=benchmarks))
    assert snap.benchmarks["B"].extras() == {"show_zero_shot": True}


# --- disk cache --------------------------------------------------------------------------


def assert_same_snapshot(a: Snapshot, b: Snapshot) -> None:
    assert a.id == b.id
    assert a.results.equals(b.results)
    assert a.results.schema == b.results.schema
    assert (a.metrics is None) == (b.metrics is None)
    if a.metrics is not None and b.metrics is not None:
        assert a.metrics.frame().equals(b.metrics.frame())
        assert dict(a.metrics.names) == dict(b.metrics.names)
    assert dict(a.models) == dict(b.models)
    assert dict(a.tasks) == dict(b.tasks)
    assert dict(a.benchmarks) == dict(b.benchmarks)
    assert a.menu == b.menu
    assert a.warnings == b.warnings
    assert a.stats == b.stats


def test_second_load_with_the_same_id_reads_the_cache(tmp_path: Path) -> None:
    source = resolve(str(sample_path()))
    cache = tmp_path / "cache"
    first = load_snapshot(source, cache_dir=cache)
    empty = tmp_path / "empty"
    empty.mkdir()
    # Same id, but nothing to parse: only the cache can answer.
    same_id = ResolvedSource(
        spec="elsewhere",
        path=empty,
        snapshot_id=source.snapshot_id,
        updated_at=source.updated_at,
        kind="directory",
    )
    with pytest.raises(DatasetError):
        build_snapshot(same_id)
    second = load_snapshot(same_id, cache_dir=cache)
    assert_same_snapshot(first, second)
    assert second.source == "elsewhere"


def test_cache_entry_is_written_atomically(tmp_path: Path) -> None:
    source = resolve(str(dataset(tmp_path / "d", {"a.parquet": [row()]})))
    cache = tmp_path / "cache"
    snap = load_snapshot(source, cache_dir=cache)
    entry = cache_entry(cache, snap.id)
    assert sorted(p.name for p in cache.iterdir()) == sorted([entry.name, "latest", "layers"])
    assert sorted(p.name for p in entry.iterdir()) == [
        "catalog.json",
        "index.json",
        "pair_counts.parquet",
        "results.parquet",
    ]
    (layer,) = (cache / "layers").iterdir()
    assert sorted(p.name for p in layer.iterdir()) == [
        "candidates.parquet",
        "layer.json",
        "pairs.parquet",
    ]
    # Writing again is a no-op that leaves nothing behind.
    assert write_cache(snap, cache) == entry
    assert sorted(p.name for p in cache.iterdir()) == sorted([entry.name, "latest", "layers"])
    assert len(list((cache / "layers").iterdir())) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: (e / "catalog.json").write_text("{not json"),
        lambda e: (e / "catalog.json").write_text('{"models": 5}'),
        lambda e: (e / "catalog.json").unlink(),
        lambda e: (e / "results.parquet").write_bytes(b"PAR1 garbage"),
    ],
    ids=["bad-json", "bad-shape", "no-catalog", "bad-parquet"],
)
def test_corrupt_cache_entry_is_ignored_and_rebuilt(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    rows = [row(metric="acc"), row(metric="f1")]
    source = resolve(
        str(
            dataset(
                tmp_path / "d", {"a.parquet": rows}, tasks=[{"name": "T", "main_metric": "acc"}]
            )
        )
    )
    cache = tmp_path / "cache"
    first = load_snapshot(source, cache_dir=cache)
    entry = cache_entry(cache, first.id)
    damage(entry)
    again = load_snapshot(source, cache_dir=cache)
    assert_same_snapshot(first, again)
    rebuilt = read_cache(cache, source)
    assert rebuilt is not None
    assert_same_snapshot(first, rebuilt)
    assert sorted(p.name for p in cache.iterdir()) == sorted([entry.name, "latest", "layers"])
    assert not list(cache.glob(".*")), "a temporary or discarded folder was left behind"


# --- determinism and the sample ----------------------------------------------------------


def test_two_builds_give_identical_frames(tmp_path: Path) -> None:
    rows = [row(f"m/{i % 7}", f"T{i % 5}", i / 100, subset=str(i % 3)) for i in range(60)]
    root = dataset(tmp_path / "d", {"a.parquet": rows, "b.parquet": rows[10:30]})
    a, b = load(root), load(root)
    assert a.results.equals(b.results)
    assert a.stats.duplicates_dropped == 20
    # File order: a's rows without the ones b repeats, then b's (the later file wins).
    order = [*range(10), *range(30, 60), *range(10, 30)]
    assert [r["score"] for r in rows_of(a.results)] == [i / 100 for i in order]


def test_sample_loads_cleanly(tmp_path: Path) -> None:
    source = resolve("sample")
    assert source.kind == "sample"
    snap = load_snapshot(source, cache_dir=tmp_path / "cache")
    assert snap.warnings == ()
    assert snap.stats.files == 4
    assert snap.stats.nan_scores == 0
    assert snap.stats.duplicates_dropped == 3
    assert 15 <= len(snap.models) <= 25
    assert snap.metrics is not None
    # Every benchmark's tasks have results; one benchmark is hidden and in no menu group.
    hidden = [b.name for b in snap.benchmarks.values() if b.hidden]
    assert hidden == ["TEB(eng, v0)"]
    assert snap.benchmarks["TEB(eng, v1)"].scoring.bradley_terry is True
    assert snap.benchmarks["OpenLLM(v1)"].scoring.normalize is True
    # The catalog's revision wins although the older revision has more results.
    catalog = snap.models["acme/embed-large-v2"].revision
    assert revisions(snap)["acme/embed-large-v2"] == catalog
    units = {t.unit for t in snap.tasks.values() if not t.higher_is_better}
    assert units == {"seconds"}


def test_sample_id_is_stable(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sample_path(), copy)
    assert resolve("sample").snapshot_id == SAMPLE_ID, (
        "the sample changed: if on purpose, update SAMPLE_ID"
    )
    assert content_hash(copy) == SAMPLE_ID
    assert resolve(None).snapshot_id == SAMPLE_ID


def test_sample_is_small() -> None:
    total = sum(p.stat().st_size for p in sample_path().rglob("*") if p.is_file())
    assert total < 200_000


def test_generator_reproduces_the_sample(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "make_sample.py"
    for out in ("one", "two"):
        subprocess.run(
            [sys.executable, str(script), "--out", str(tmp_path / out)],
            check=True,
            capture_output=True,
        )
    names = sorted(
        p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*")
    )
    committed = sorted(p.relative_to(sample_path()).as_posix() for p in sample_path().rglob("*"))
    assert names == [n for n in committed if "__pycache__" not in n]
    for name in names:
        one, two = tmp_path / "one" / name, tmp_path / "two" / name
        if one.is_dir():
            continue
        assert one.read_bytes() == two.read_bytes(), f"{name} differs between two runs"
        ours = sample_path() / name
        if name.endswith(".parquet"):
            # Equal content; bytes may differ only under another polars version.
            assert pl.read_parquet(one).equals(pl.read_parquet(ours)), name
        else:
            assert one.read_bytes() == ours.read_bytes(), name


def test_worked_example_of_the_docs(tmp_path: Path) -> None:
    """The numbers docs/dataset.md derives by hand from its tiny dataset."""
    cols = ["model_name", "task_name", "split", "subset", "metric", "score"]
    run1 = [
        ("a/alpha", "Ret", "test", "default", "ndcg_at_10", 0.60),
        ("a/alpha", "Ret", "test", "default", "recall_at_100", 0.95),
        ("a/alpha", "Ret", "dev", "default", "ndcg_at_10", 0.99),
        ("a/beta", "Ret", "test", "default", "ndcg_at_10", 0.50),
        ("a/gamma", "Ret", "test", "default", "ndcg_at_10", 0.40),
        ("a/alpha", "STS", "test", "eng", "spearman", 0.80),
        ("a/alpha", "STS", "test", "fra", "spearman", 0.70),
        ("a/beta", "STS", "test", "eng", "spearman", 0.86),
        ("a/beta", "STS", "test", "fra", "spearman", 0.80),
        ("a/gamma", "STS", "test", "eng", "spearman", 0.85),
        ("a/alpha", "Clf", "test", "default", "accuracy", 0.70),
        ("a/beta", "Clf", "test", "default", "accuracy", 0.65),
        ("a/gamma", "Clf", "test", "default", "accuracy", 0.75),
    ]
    run2 = [("a/beta", "STS", "test", "eng", "spearman", 0.90)]
    tasks = [
        {"name": "Clf", "type": "Classification", "main_metric": "accuracy"},
        {"name": "Ret", "type": "Retrieval", "main_metric": "ndcg_at_10"},
        {"name": "STS", "type": "STS", "main_metric": "spearman"},
    ]
    counts = [{"task": "Ret", "splits": ["test"]}, {"task": "STS", "subsets": ["eng", "fra"]}]
    bench = {"name": "Tiny", "tasks": [*counts, {"task": "Clf"}]}
    files: dict[str, Rows | pl.DataFrame] = {
        "run1.parquet": pl.DataFrame(run1, schema=cols, orient="row"),
        "run2.parquet": pl.DataFrame(run2, schema=cols, orient="row"),
    }
    snap = load(dataset(tmp_path / "d", files, tasks=tasks, benchmarks=[bench]))
    assert (snap.stats.rows_read, snap.stats.duplicates_dropped, snap.results.height) == (14, 1, 12)
    assert snap.warnings == ()
    counted = snap.results.filter(
        (pl.col("split") == "test")
        & ((pl.col("task_name") != "STS") | pl.col("subset").is_in(["eng", "fra"]))
    )
    per_task = {
        (r["model_name"], r["task_name"]): (round(r["score"], 4), r["n"])
        for r in rows_of(
            counted.group_by("model_name", "task_name").agg(pl.col("score").mean(), n=pl.len())
        )
    }
    assert per_task[("a/alpha", "STS")] == (0.75, 2)
    assert per_task[("a/beta", "STS")] == (0.85, 2)
    assert per_task[("a/gamma", "STS")] == (0.85, 1)  # incomplete: fra is missing
    assert per_task[("a/alpha", "Ret")] == (0.6, 1)
    mean = {
        m: round(sum(per_task[(m, t)][0] for t in ("Ret", "STS", "Clf")) / 3, 4)
        for m in ("a/alpha", "a/beta")
    }
    assert mean == {"a/alpha": 0.6833, "a/beta": 0.6667}
