"""The MTEB importer on the real results sample and catalog."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from leaderboard_api.dataset.contract import (
    OPTIONAL_RESULT_COLUMNS,
    RESULT_COLUMNS,
    RESULT_KEY,
    BenchmarkInfo,
    DatasetError,
    MenuEntry,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.importers.common import ImportReport
from leaderboard_api.dataset.importers.mteb import convert_mteb_catalog, import_mteb

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mteb"
SAMPLE = DATA / "results-sample"
CATALOG = DATA / "catalog"
FULL = DATA / "full" / "results.parquet"

pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="real MTEB data not available")

QWEN = "Alibaba-NLP/gte-Qwen1.5-7B-instruct"


@dataclass
class Imported:
    out: Path
    report: ImportReport
    results: pl.DataFrame


def read_contract(out: Path) -> pl.DataFrame:
    """Check a written dataset against the contract; return its results."""
    df = pl.concat([pl.read_parquet(p) for p in sorted((out / "results").glob("*.parquet"))])
    for name, (dtype, _, _) in RESULT_COLUMNS.items():
        assert df.schema[name] == dtype, name
    for name, dtype in OPTIONAL_RESULT_COLUMNS.items():
        assert name not in df.schema or df.schema[name] == dtype, name
    assert df.select(RESULT_KEY).is_duplicated().sum() == 0
    assert df.sort(list(RESULT_KEY), nulls_last=True).equals(df)
    for file, model in [("models.jsonl", ModelInfo), ("tasks.jsonl", TaskInfo)] + (
        [("benchmarks.jsonl", BenchmarkInfo)] if (out / "benchmarks.jsonl").exists() else []
    ):
        names = [model.model_validate_json(line).name for line in lines(out / file)]  # type: ignore[attr-defined]
        assert names == sorted(names), file
    if (out / "menu.json").exists():
        for group in json.loads((out / "menu.json").read_text()):
            MenuEntry.model_validate(group)
    return df


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def jsonl(path: Path) -> dict[str, dict[str, object]]:
    return {(e := json.loads(line))["name"]: e for line in lines(path)}


def cell(df: pl.DataFrame, **where: str) -> pl.DataFrame:
    return df.filter(*(pl.col(k) == v for k, v in where.items()))


def score(df: pl.DataFrame, **where: str) -> float | None:
    found = cell(df, **where)
    assert found.height == 1, where
    value: float | None = found["score"][0]
    return value


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    out = tmp_path_factory.mktemp("mteb")
    report = import_mteb(SAMPLE, out=out, catalog=CATALOG)
    return Imported(out, report, read_contract(out))


def test_every_sample_file_is_imported(imported: Imported) -> None:
    report = imported.report
    assert report.imported["result files"] == 1614
    assert report.imported["model_meta files"] == 46
    assert report.imported["revision folders"] == 50
    assert report.imported["result files"] + report.imported["model_meta files"] == 1660
    assert report.total_skipped == 0
    # Legacy entries whose only score is under an older name than the main metric
    # (reranking `map` vs `map_at_1000`, PairClassification `cos_sim.ap` vs `max_ap`).
    assert report.notes["entries without a main score (no main row)"] == 15
    df = imported.results
    assert df["model_name"].n_unique() == 28
    assert df.select("model_name", "model_revision").n_unique() == 43  # 7 hold only metadata
    assert report.written["results/*.parquet (28 files)"] == df.height  # one per model folder
    text = report.render()
    assert "1614 result files" in text
    assert "skipped: 0" in text


def test_legacy_sts_group_becomes_the_main_metric(imported: Imported) -> None:
    df = imported.results
    tasks = jsonl(imported.out / "tasks.jsonl")
    assert tasks["BIOSSES"]["main_metric"] == "cosine_spearman"
    where = {"model_name": QWEN, "model_revision": "no_revision_available", "task_name": "BIOSSES"}
    assert score(df, **where, metric="cosine_spearman") == 0.8111570369802255
    assert score(df, **where, metric="cosine_pearson") == 0.8212591694410097
    assert score(df, **where, metric="manhattan_spearman") == 0.8121510355327713
    assert not cell(df, **where).filter(pl.col("metric").str.starts_with("cos_sim")).height
    assert cell(df, **where)["languages"][0].to_list() == ["eng-Latn"]  # from the catalog
    # The bare legacy file of openai/text-embedding-3-small has only this one value.
    openai = cell(df, model_name="openai/text-embedding-3-small", model_revision="1")
    assert score(openai, task_name="BIOSSES", metric="cosine_spearman") == 0.8872250353


def test_legacy_subsets_and_metric_groups(imported: Imported) -> None:
    df = imported.results
    zh = {"model_name": "BAAI/bge-base-zh", "task_name": "MassiveIntentClassification"}
    assert score(df, **zh, split="validation", subset="zh-CN", metric="accuracy") == (
        0.6657156910969011
    )
    assert cell(df, **zh, split="test", subset="zh-CN")["languages"][0].to_list() == ["cmo-Hans"]
    sprint = {"model_name": QWEN, "task_name": "SprintDuplicateQuestions"}
    assert score(df, **sprint, metric="max_ap") == 0.9606741547889861  # the main metric
    assert score(df, **sprint, metric="dot_f1") == 0.9054187192118227
    sts17 = {"model_name": QWEN, "task_name": "STS17", "subset": "en-en"}
    assert score(df, **sts17, metric="euclidean_spearman") == 0.8780670473078185


def test_current_format_values(imported: Imported) -> None:
    df = imported.results
    sts22 = cell(df, model_name="BAAI/bge-m3", task_name="STS22", split="test", subset="ru")
    assert score(sts22, metric="cosine_spearman") == 0.6626491471661151
    assert sts22["languages"][0].to_list() == ["rus-Cyrl"]
    assert "pearson" not in sts22["metric"].to_list()  # [value, p-value] pairs are not scores
    assert sts22["mteb_version"][0] == "1.14.12"
    bidir = cell(
        df,
        model_name="BidirLM/BidirLM-0.6B-Embedding",
        task_name="MassiveScenarioClassification",
        split="test",
        subset="nl",
    )
    assert score(bidir, metric="ap") is None  # NaN in the file
    assert score(bidir, metric="accuracy") == 0.750269
    assert bidir["evaluated_at"][0].year == 2026  # the file's `date` (epoch seconds)


def test_main_scores_match_the_flattened_full_results(imported: Imported) -> None:
    if not FULL.is_file():
        pytest.skip("full results.parquet not available")
    main = {name: e["main_metric"] for name, e in jsonl(imported.out / "tasks.jsonl").items()}
    ours = imported.results.filter(
        pl.col("metric") == pl.col("task_name").replace_strict(main, default=None)
    )
    key = ["model_name", "model_revision", "task_name", "split", "subset"]
    full = pl.read_parquet(FULL).join(ours.select(key[:3]).unique(), on=key[:3])
    both = full.join(ours, on=key, how="left", suffix="_ours")
    assert full.height == 7134
    assert both["metric"].null_count() == 0  # every published main score is there
    assert both.filter(pl.col("score") != pl.col("score_ours")).height == 0
    # ... and legacy entries without `main_score` are recovered through the catalog.
    assert ours.join(full, on=key, how="anti").height == 114


def test_catalogs_and_models(imported: Imported) -> None:
    models = jsonl(imported.out / "models.jsonl")
    assert len(models) == 969  # the registry lists all 28 sample models
    e5 = models["intfloat/e5-large"]
    assert e5["revisions"] == ["4dc6d853a804b9c8886ede6dda8a073b7dc08a81", "external"]
    assert e5["reference"] == "https://huggingface.co/intfloat/e5-large"
    assert all(isinstance(m.get("training_datasets"), list | None) for m in models.values())
    benchmarks = jsonl(imported.out / "benchmarks.jsonl")
    assert len(benchmarks) == 78
    assert len(jsonl(imported.out / "tasks.jsonl")) == 2087


def test_reimport_is_byte_identical_and_accepts_the_results_folder(
    imported: Imported, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    import_mteb(SAMPLE / "results", out=again, catalog=CATALOG)
    parquet = sorted(p.relative_to(again).as_posix() for p in again.glob("results/*.parquet"))
    assert len(parquet) == 28
    for name in [*parquet, "models.jsonl", "tasks.jsonl", "benchmarks.jsonl", "dataset.json"]:
        assert (again / name).read_bytes() == (imported.out / name).read_bytes(), name
    assert (again / "menu.json").read_bytes() == (imported.out / "menu.json").read_bytes()


def test_without_catalog_main_score_is_its_own_metric(tmp_path: Path) -> None:
    report = import_mteb(SAMPLE, out=tmp_path)
    df = read_contract(tmp_path)
    assert report.imported["result files"] == 1614
    assert not (tmp_path / "benchmarks.jsonl").exists()
    assert not (tmp_path / "menu.json").exists()
    tasks = jsonl(tmp_path / "tasks.jsonl")
    assert {t["main_metric"] for t in tasks.values()} == {"main_score"}
    assert len(jsonl(tmp_path / "models.jsonl")) == 28
    amazon = {"model_name": QWEN, "model_revision": "no_revision_available"}
    assert score(df, **amazon, task_name="AmazonPolarityClassification", metric="main_score") == (
        0.9669589999999999
    )
    # Metadata that maps task -> splits becomes a list of task names.
    rubert = jsonl(tmp_path / "models.jsonl")["DeepPavlov/rubert-base-cased"]
    assert rubert["training_datasets"] == [
        "WikipediaRerankingMultilingual",
        "WikipediaRetrievalMultilingual",
    ]


def test_main_only(tmp_path: Path, imported: Imported) -> None:
    import_mteb(SAMPLE, out=tmp_path, catalog=CATALOG, main_only=True)
    df = read_contract(tmp_path)
    main = {name: e["main_metric"] for name, e in jsonl(imported.out / "tasks.jsonl").items()}
    expected = imported.results.filter(
        pl.col("metric") == pl.col("task_name").replace_strict(main, default=None)
    )
    assert df.height == expected.height == 7248


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def test_odd_files_are_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = SAMPLE / "results" / "openai__text-embedding-3-small"
    root = tmp_path / "repo" / "results"
    model = root / "openai__text-embedding-3-small"
    for rev in ["1", "2"]:
        for path in sorted((src / rev).glob("[A-Z]*.json"))[:3]:
            _copy(path, model / rev / path.name)
    _copy(src / "1" / "model_meta.json", model / "1" / "model_meta.json")
    _copy(src / "1" / "BIOSSES.json", model / "1" / "experiments" / "no-prompt" / "BIOSSES.json")
    (model / "1" / "notes.txt").write_text("not a result")
    (model / "1" / "Broken.json").write_text("{not json")
    (model / "1" / "Other.json").write_text('{"hello": "world"}')
    (model / "1" / "deeper").mkdir()
    (model / "1" / "deeper" / "X.json").write_text("{}")
    (model / "README.md").write_text("model notes")
    (root / "paths.json").write_text("{}")
    out = tmp_path / "out"
    report = import_mteb(tmp_path / "repo", out=out, progress=True, jobs=1)
    assert report.imported["result files"] == 6
    assert report.imported["model_meta files"] == 1
    assert report.imported["variant result files"] == 1  # experiments/<name>/ is a variant
    assert dict(report.skipped) == {
        "not a JSON file": 1,
        "invalid JSON": 1,
        "not an MTEB result file": 1,
        "file in an unexpected subfolder": 1,
        "file outside a revision folder": 2,
    }
    assert "file in an unexpected subfolder: 1 (e.g. openai__text-embedding-3-small/1/deeper" in (
        report.render()
    )
    df = read_contract(out)
    assert set(df["model_revision"].unique()) == {"1", "2"}
    assert set(df["variant"].drop_nulls()) == {"no-prompt"}
    assert "mteb" in capsys.readouterr().err  # the progress bar


def test_unusable_input_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        import_mteb(tmp_path / "missing", out=tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no <model>/<revision>/ folders"):
        import_mteb(tmp_path / "empty", out=tmp_path / "out")
    foreign = tmp_path / "taken" / "results"
    foreign.mkdir(parents=True)
    (foreign / "other.parquet").write_bytes(b"")
    with pytest.raises(DatasetError, match="already holds other data"):
        import_mteb(SAMPLE, out=tmp_path / "taken")
    with pytest.raises(DatasetError, match="catalog directory not found"):
        import_mteb(SAMPLE, out=tmp_path / "out", catalog=tmp_path / "nope")


def test_convert_catalog_only(tmp_path: Path) -> None:
    convert_mteb_catalog(CATALOG, out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "benchmarks.jsonl",
        "menu.json",
        "models.jsonl",
        "tasks.jsonl",
    ]
    read_tasks = jsonl(tmp_path / "tasks.jsonl")
    assert len(read_tasks) == 2087
    assert read_tasks["STS22"]["languages"][:2] == ["eng-Latn", "deu-Latn"]  # type: ignore[index]
    benchmarks = {
        n: BenchmarkInfo.model_validate(b) for n, b in jsonl(tmp_path / "benchmarks.jsonl").items()
    }
    beir = benchmarks["BEIR"]
    assert not beir.hidden
    assert beir.scoring.rank_method == "borda"
    assert beir.extras()["aggregations"] == ["mean_task", "mean_task_type", "task_types"]
    assert benchmarks["MTEB(eng, v2)"].hidden  # not in the home menu of this mteb version
    assert len(benchmarks["MTEB(eng, v2)"].tasks) == 41
    vidore = benchmarks["ViDoRe(v3)"].scoring
    # MTEB's leaderboard ranks every benchmark by field Borda; ViDoRe sorts by its means.
    assert (vidore.rank_method, vidore.default_sort) == ("borda", "mean_task")
    menu = [MenuEntry.model_validate(g) for g in json.loads((tmp_path / "menu.json").read_text())]
    assert [g.name for g in menu] == ["Language", "Modality", "Retrieval", "Domain"]
    assert menu[0].children[0].benchmark == "MTEB(cmn, v1)"  # type: ignore[union-attr]
    assert menu[0].extras() == {"size": "sm"}
    models = [ModelInfo.model_validate_json(line) for line in lines(tmp_path / "models.jsonl")]
    assert len(models) == 969
    listed = [m for m in models if "embed_dims" in m.extras()]
    assert listed
    assert all(m.embed_dim == max(m.extras()["embed_dims"]) for m in listed)
