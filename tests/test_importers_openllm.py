"""The Open LLM Leaderboard importer on the real v1 and v2 tables."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from leaderboard_api.dataset.contract import (
    RESULT_COLUMNS,
    RESULT_KEY,
    BenchmarkInfo,
    DatasetError,
    MenuEntry,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.importers.common import ImportReport
from leaderboard_api.dataset.importers.openllm import import_openllm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openllm"
V2 = DATA / "open-llm-leaderboard_new.csv"
V1 = DATA / "open-llm-leaderboard_old.csv"

pytestmark = pytest.mark.skipif(not V2.is_file(), reason="real Open LLM data not available")

Imported = tuple[Path, ImportReport, pl.DataFrame, dict[str, ModelInfo]]


def _load(out: Path) -> tuple[pl.DataFrame, dict[str, ModelInfo]]:
    (results,) = sorted((out / "results").glob("*.parquet"))
    df = pl.read_parquet(results)
    for name, (dtype, _, _) in RESULT_COLUMNS.items():
        assert df.schema[name] == dtype, name
    key = [c for c in RESULT_KEY if c in df.columns]
    assert df.select(key).is_duplicated().sum() == 0
    assert df.sort(key, nulls_last=True).equals(df)
    text = (out / "models.jsonl").read_text(encoding="utf-8").splitlines()
    models = {m.name: m for m in (ModelInfo.model_validate_json(line) for line in text)}
    assert list(models) == sorted(models)
    return df, models


def _import(source: Path, out: Path) -> Imported:
    report = import_openllm(source, out=out)
    return (out, report, *_load(out))


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    return _import(V2, tmp_path_factory.mktemp("openllm-v2"))


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    if not V1.is_file():
        pytest.skip("v1 table not available")
    return _import(V1, tmp_path_factory.mktemp("openllm-v1"))


def score(df: pl.DataFrame, model: str, task: str, metric: str) -> float:
    found = df.filter(model_name=model, task_name=task, metric=metric)
    assert found.height == 1
    value: float = found["score"][0]
    return value


def test_v2_counts(v2: Imported) -> None:
    _, report, df, models = v2
    assert report.imported["CSV rows"] == 729
    assert report.total_skipped == 0
    assert len(models) == 729
    assert df.height == 729 * 6 * 2
    assert report.written == {
        "results/openllm-v2.parquet": 8748,
        "models.jsonl": 729,
        "tasks.jsonl": 6,
        "benchmarks.jsonl": 1,
        "menu.json": 1,
    }
    assert report.notes["rows with #Params (B) = 0 (unknown)"] == 33
    assert report.notes["rows without a model sha (revision null)"] == 1
    assert "729 CSV rows" in report.render()


def test_v2_values_from_the_csv(v2: Imported) -> None:
    _, _, df, models = v2
    name = "dnhkng/RYS-XLarge (bfloat16)"  # the first row of the table
    assert score(df, name, "IFEval", "normalized") == 79.96
    assert score(df, name, "IFEval", "raw") == 0.8
    assert score(df, name, "MATH Lvl 5", "normalized") == 38.97
    assert score(df, name, "MMLU-PRO", "raw") == 0.54
    rows = df.filter(model_name=name)
    assert set(rows["model_revision"]) == {"0f84dd9dde60f383e1e2821496befb4ce9a11ef6"}
    assert str(rows["evaluated_at"][0]) == "2024-08-07 00:00:00+00:00"
    model = models[name]
    assert model.revision == "0f84dd9dde60f383e1e2821496befb4ce9a11ef6"
    assert model.n_parameters == 77e9
    assert model.license == "mit"
    assert model.model_type == "chat models (RLHF, DPO, IFT, ...)"
    extras = model.extras()
    assert extras["model"] == "dnhkng/RYS-XLarge"
    assert extras["precision"] == "bfloat16"
    assert extras["likes"] == 45
    assert (extras["merged"], extras["moe"], extras["flagged"]) == (False, False, False)
    assert extras["architecture"] == "Qwen2ForCausalLM"


def test_v2_reported_average_is_the_mean_of_normalized_scores(v2: Imported) -> None:
    _, _, df, models = v2
    means = df.filter(metric="normalized").group_by("model_name").agg(pl.col("score").mean())
    for name, mean in means.iter_rows():
        assert abs(mean - models[name].extras()["reported_average"]) < 0.01, name


def test_precisions_do_not_collide(v2: Imported) -> None:
    _, _, df, models = v2
    table = pl.read_csv(V2, infer_schema_length=0)
    twins = table.filter(pl.struct("Model", "Model sha").is_duplicated()).sort("Model", "Precision")
    model, sha = twins.row(0)[1], twins["Model sha"][0]
    names = {n for n, m in models.items() if m.extras()["model"] == model}
    assert names == {f"{model} (bfloat16)", f"{model} (float16)"}
    assert {models[n].revision for n in names} == {sha}
    assert df.filter(pl.col("model_name").is_in(names)).height == 2 * 12


def test_v2_unknown_params_and_missing_sha(v2: Imported) -> None:
    _, _, df, models = v2
    assert models["gpt2 (bfloat16)"].n_parameters is None  # "#Params (B)" is 0
    no_sha = [m for m in models.values() if m.revision is None]
    assert [m.extras()["model"] for m in no_sha] == [
        "johnsutor/Llama-3-8B-Instruct_dare_ties-density-0.9"
    ]
    assert df.filter(pl.col("model_revision").is_null()).height == 12


def test_v2_catalogs(v2: Imported) -> None:
    out = v2[0]
    tasks = [
        TaskInfo.model_validate_json(x) for x in (out / "tasks.jsonl").read_text().split("\n") if x
    ]
    assert {t.name for t in tasks} == {"IFEval", "BBH", "MATH Lvl 5", "GPQA", "MUSR", "MMLU-PRO"}
    assert {(t.main_metric, t.higher_is_better, t.random_baseline) for t in tasks} == {
        ("normalized", True, 0.0)
    }
    (bench,) = [BenchmarkInfo.model_validate_json((out / "benchmarks.jsonl").read_text())]
    assert bench.name == "open-llm-leaderboard-v2"
    assert [t.task for t in bench.tasks] == [
        "IFEval",
        "BBH",
        "MATH Lvl 5",
        "GPQA",
        "MUSR",
        "MMLU-PRO",
    ]
    (group,) = [MenuEntry.model_validate(g) for g in json.loads((out / "menu.json").read_text())]
    assert group.children[0].benchmark == "open-llm-leaderboard-v2"  # type: ignore[union-attr]


def test_v1_counts_values_and_flags(v1: Imported) -> None:
    out, report, df, models = v1
    assert report.imported["CSV rows"] == 7169
    assert len(models) == 7169
    assert df.height == 7169 * 6
    assert set(df["metric"].unique()) == {"score"}
    assert report.notes["rows with #Params (B) = 0 (unknown)"] == 624
    assert report.notes["rows without a model sha (revision null)"] == 8
    name = "paloalma/Le_Triomphant-ECE-TW3 (bfloat16)"  # the first row of the table
    assert score(df, name, "ARC", "score") == 78.5
    assert score(df, name, "GSM8K", "score") == 79.83
    assert str(df.filter(model_name=name)["evaluated_at"][0]) == "2024-05-05 12:22:44+00:00"
    # The table's "Flagged" is True for entries that are not flagged.
    flagged = {m.extras()["model"] for m in models.values() if m.extras()["flagged"]}
    assert sum(bool(m.extras()["flagged"]) for m in models.values()) == 109
    assert "Contamination/contaminated_proof_7b_v1.0" in flagged
    assert not models["mistralai/Mixtral-8x7B-v0.1 (bfloat16)"].extras()["merged"]
    assert models["mistralai/Mixtral-8x7B-v0.1 (bfloat16)"].extras()["moe"]
    bench = BenchmarkInfo.model_validate_json((out / "benchmarks.jsonl").read_text())
    assert bench.name == "open-llm-leaderboard-v1"
    assert [t.task for t in bench.tasks] == [
        "ARC",
        "HellaSwag",
        "MMLU",
        "TruthfulQA",
        "Winogrande",
        "GSM8K",
    ]
    tasks = {
        t.name: t
        for t in map(TaskInfo.model_validate_json, (out / "tasks.jsonl").read_text().splitlines())
    }
    assert tasks["Winogrande"].random_baseline == 50.0


def test_reimport_is_byte_identical(v2: Imported, tmp_path: Path) -> None:
    import_openllm(V2, out=tmp_path)
    for name in [
        "results/openllm-v2.parquet",
        "models.jsonl",
        "tasks.jsonl",
        "benchmarks.jsonl",
        "menu.json",
    ]:
        assert (tmp_path / name).read_bytes() == (v2[0] / name).read_bytes(), name


def test_rows_without_model_are_skipped(tmp_path: Path) -> None:
    lines = V2.read_text(encoding="utf-8").splitlines()
    blank = lines[1].split(",", 2)
    lines.append(",".join([blank[0], "", blank[2]]))
    source = tmp_path / "table.csv"
    source.write_text("\n".join(lines[:4] + lines[-1:]) + "\n", encoding="utf-8")
    report = import_openllm(source, out=tmp_path / "out")
    assert report.imported["CSV rows"] == 3
    assert dict(report.skipped) == {"row without a model name": 1}


def test_unusable_input_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="CSV file not found"):
        import_openllm(tmp_path / "missing.csv", out=tmp_path / "out")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not an Open LLM Leaderboard table") as info:
        import_openllm(other, out=tmp_path / "out")
    assert str(other) in str(info.value)
