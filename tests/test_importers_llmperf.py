"""The LLMPerf importer on the real run summaries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from leaderboard_api.dataset.contract import (
    RESULT_COLUMNS,
    RESULT_KEY,
    BenchmarkInfo,
    DatasetError,
    ModelInfo,
    TaskInfo,
)
from leaderboard_api.dataset.importers.common import ImportReport
from leaderboard_api.dataset.importers.llmperf import import_llmperf

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmperf"
SUMMARY = DATA / "summary"

pytestmark = pytest.mark.skipif(not SUMMARY.is_dir(), reason="real LLMPerf data not available")

LATENCIES = ["ttft", "inter_token_latency", "end_to_end_latency"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImportReport, pl.DataFrame]:
    out = tmp_path_factory.mktemp("llmperf")
    report = import_llmperf(DATA, out=out)
    df = pl.read_parquet(out / "results" / "llmperf.parquet")
    for name, (dtype, _, _) in RESULT_COLUMNS.items():
        assert df.schema[name] == dtype, name
    key = [c for c in RESULT_KEY if c in df.columns]
    assert df.select(key).is_duplicated().sum() == 0
    assert df.sort(key, nulls_last=True).equals(df)
    return out, report, df


def value(df: pl.DataFrame, model: str, task: str, metric: str) -> float:
    found = df.filter(model_name=model, task_name=task, metric=metric)
    assert found.height == 1
    result: float = found["score"][0]
    return result


def test_counts(imported: tuple[Path, ImportReport, pl.DataFrame]) -> None:
    _, report, df = imported
    assert report.imported["summary files"] == 19
    assert report.total_skipped == 0
    assert report.written["results/llmperf.parquet"] == df.height == 19 * (4 * 10 + 1)
    assert df["model_name"].n_unique() == 19
    assert report.notes["individual/ per-request files not read (summaries hold their aggregates)"]
    assert set(df["metric"].unique()) == {
        "mean", "min", "max", "stddev", "p25", "p50", "p75", "p90", "p95", "p99", "rate"
    }  # fmt: skip


def test_values_from_the_summaries(imported: tuple[Path, ImportReport, pl.DataFrame]) -> None:
    _, _, df = imported
    raw = json.loads((SUMMARY / "anyscale_13b.json").read_text())
    name = "anyscale/Llama-2-13b"
    assert value(df, name, "ttft", "mean") == raw["results_ttft_s_mean"] == 0.22044049145333625
    assert value(df, name, "ttft", "p99") == 0.4964714485800012
    assert value(df, name, "inter_token_latency", "p50") == 0.007829038798013017
    assert value(df, name, "output_throughput", "mean") == 48.17885042303914
    assert value(df, name, "end_to_end_latency", "stddev") == 0.1540782783032164
    run = df.filter(model_name=name).row(0, named=True)
    assert run["model_revision"] is None
    assert str(run["evaluated_at"]) == "2023-12-21 05:20:16+00:00"
    assert (run["requests_started"], run["completed_requests"], run["concurrency"]) == (150, 150, 5)
    bedrock = df.filter(model_name="bedrock/Llama-2-13b")
    assert value(df, "bedrock/Llama-2-13b", "error_rate", "rate") == 0.6466666666666666
    assert (bedrock["errors"][0], bedrock["completed_requests"][0]) == (97, 53)
    # groq's summary has no model_size: the size comes from the file / served model name.
    assert df.filter(model_name="groq/Llama-2-70b").height == 41


def test_catalogs(imported: tuple[Path, ImportReport, pl.DataFrame]) -> None:
    out, _, _ = imported
    tasks = {
        t.name: t
        for t in map(TaskInfo.model_validate_json, (out / "tasks.jsonl").read_text().splitlines())
    }
    assert sorted(tasks) == sorted([*LATENCIES, "output_throughput", "error_rate"])
    for name in LATENCIES:
        assert (tasks[name].higher_is_better, tasks[name].unit, tasks[name].main_metric) == (
            False,
            "s",
            "mean",
        )
    assert (tasks["output_throughput"].higher_is_better, tasks["output_throughput"].unit) == (
        True,
        "tokens/s",
    )
    assert (tasks["error_rate"].higher_is_better, tasks["error_rate"].main_metric) == (
        False,
        "rate",
    )
    bench = BenchmarkInfo.model_validate_json((out / "benchmarks.jsonl").read_text())
    assert bench.name == "llmperf"
    assert len(bench.tasks) == 5
    assert bench.scoring.rank_method == "mean_rank"
    models = {
        m.name: m
        for m in map(ModelInfo.model_validate_json, (out / "models.jsonl").read_text().splitlines())
    }
    replicate = models["replicate/Llama-2-70b"]
    assert replicate.n_parameters == 70e9
    assert replicate.extras()["served_model"].startswith("meta/llama-2-70b-chat:02e509c7")
    assert replicate.extras()["completed_requests"] == 145
    assert models["lepton/Llama-2-7b"].extras()["error_codes"] == "{429.0: 130}"


def test_summary_folder_gives_identical_bytes(
    imported: tuple[Path, ImportReport, pl.DataFrame], tmp_path: Path
) -> None:
    out, _, _ = imported
    import_llmperf(SUMMARY, out=tmp_path)
    for name in ["results/llmperf.parquet", "models.jsonl", "tasks.jsonl", "benchmarks.jsonl"]:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_reruns_odd_files_and_single_file(tmp_path: Path) -> None:
    source = tmp_path / "summary"
    source.mkdir()
    for name in ["fireworks_7b.json", "groq_70b.json"]:
        shutil.copyfile(SUMMARY / name, source / name)
    newer = json.loads((SUMMARY / "fireworks_7b.json").read_text())
    newer["timestamp"] += 3600
    newer["results_ttft_s_mean"] = 0.5
    (source / "fireworks_7b_rerun.json").write_text(json.dumps(newer))
    (source / "README.md").write_text("notes")
    (source / "broken.json").write_text("{")
    (source / "other.json").write_text('{"model": "x"}')
    report = import_llmperf(source, out=tmp_path / "out")
    assert report.imported["summary files"] == 3
    assert dict(report.skipped) == {
        "older run of the same entry": 1,
        "not a JSON file": 1,
        "invalid JSON": 1,
        "not an LLMPerf summary": 1,
    }
    assert report.skipped_examples["older run of the same entry"] == ["fireworks_7b.json"]
    df = pl.read_parquet(tmp_path / "out" / "results" / "llmperf.parquet")
    assert value(df, "fireworks/Llama-2-7b", "ttft", "mean") == 0.5
    single = import_llmperf(SUMMARY / "groq_70b.json", out=tmp_path / "one")
    assert single.imported["summary files"] == 1


def test_unusable_input_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a file or directory"):
        import_llmperf(tmp_path / "missing", out=tmp_path / "out")
    with pytest.raises(DatasetError, match="no LLMPerf summary files found"):
        import_llmperf(tmp_path, out=tmp_path / "out")
