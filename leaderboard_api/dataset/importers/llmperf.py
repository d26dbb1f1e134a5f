"""Import LLMPerf leaderboard run summaries (``summary/*.json``) into a dataset directory.

Decisions:

- One summary file is one run and one leaderboard entry: ``model_name`` is
  ``"<provider>/Llama-2-<size>"`` (provider from ``framework``, size from ``model_size``, else
  from the file or served model name), revision null, ``evaluated_at`` the run's timestamp.
  When two runs give the same entry the newest is kept and the other skipped (counted).
- Tasks ``ttft``, ``inter_token_latency``, ``end_to_end_latency`` (seconds, lower is better) and
  ``output_throughput`` (per-request output tokens/s, higher is better). The main metric is
  ``mean``, the figure the LLMPerf leaderboard headlines; ``p25`` ... ``p99``, ``min``, ``max``
  and ``stddev`` are the other metric rows.
- ``error_rate`` is a task as well (metric ``rate``, lower is better): a provider that fails
  most requests then ranks low instead of being judged on its few successes.
- Run-level counts (requests started/completed, errors, concurrency, token targets, overall
  throughput) are extra columns on every row of the run and are repeated in ``models.jsonl``.
- The ``individual/`` per-request files are not read: the summaries hold their aggregates.
- Figures of ``±inf`` are written as null (counted): the dataset contract takes finite
  scores only.  A summary that cannot be read (a dangling link, JSON nested too deeply to
  parse) is skipped and counted, like one that is not valid JSON.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from leaderboard_api.dataset.contract import RESULTS_DIR, DatasetError
from leaderboard_api.dataset.importers.common import (
    ImportReport,
    ResultRows,
    loads_json,
    parse_finite,
    prepare_out,
    progress_bar,
    write_catalogs,
    write_results,
)

RESULTS_FILE = "llmperf.parquet"
BENCHMARK = "llmperf"
#: task -> (summary key prefix, type, unit, higher_is_better, description)
TASKS: dict[str, tuple[str, str, str, bool, str]] = {
    "ttft": (
        "results_ttft_s_",
        "Latency",
        "s",
        False,
        "Time to first token: from sending a request to receiving the first output token.",
    ),
    "inter_token_latency": (
        "results_inter_token_latency_s_",
        "Latency",
        "s",
        False,
        "Mean time between consecutive output tokens of a request.",
    ),
    "end_to_end_latency": (
        "results_end_to_end_latency_s_",
        "Latency",
        "s",
        False,
        "Time from sending a request to receiving its last output token.",
    ),
    "output_throughput": (
        "results_request_output_throughput_token_per_s_",
        "Throughput",
        "tokens/s",
        True,
        "Output tokens per second within one request.",
    ),
}
ERROR_TASK = "error_rate"
#: Extra result column -> (summary key, dtype).
RUN_COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    "requests_started": ("results_num_requests_started", pl.Int64()),
    "completed_requests": ("results_num_completed_requests", pl.Int64()),
    "errors": ("results_number_errors", pl.Int64()),
    "concurrency": ("num_concurrent_requests", pl.Int64()),
    "mean_input_tokens": ("mean_input_tokens", pl.Float64()),
    "mean_output_tokens": ("mean_output_tokens", pl.Float64()),
    "overall_output_throughput": ("results_mean_output_throughput_token_per_s", pl.Float64()),
    "completed_requests_per_min": ("results_num_completed_requests_per_min", pl.Float64()),
}
_SIZE = re.compile(r"(?<![\d.])(\d+)b(?![a-z0-9])")


def import_llmperf(source: Path, *, out: Path, progress: bool = False) -> ImportReport:
    """Import LLMPerf run summaries into ``out``.

    ``source`` is the LLMPerf data folder (holding ``summary/``), the ``summary`` folder itself
    or a single summary file.
    """
    started = time.perf_counter()
    report = ImportReport("llmperf", str(source), str(out))
    runs: dict[str, tuple[int, str, dict[str, Any]]] = {}
    for path in progress_bar(_summary_files(source, report), enabled=progress, desc="llmperf"):
        data = _read_summary(path, report)
        if data is None:
            continue
        report.count("summary files")
        name, stamp = _entry_name(data, path.stem), int(parse_finite(data.get("timestamp")) or 0)
        kept = runs.get(name)
        if kept is not None:  # the newest run wins; on a tie the first file in name order
            report.skip("older run of the same entry", path.name if kept[0] >= stamp else kept[1])
            if kept[0] >= stamp:
                continue
        runs[name] = (stamp, path.name, data)
    if not runs:
        msg = "no LLMPerf summary files found"
        raise DatasetError(msg, file=str(source), hint="expected summary/<provider>_<size>.json")
    results_dir = prepare_out(out, results_file=RESULTS_FILE)
    rows = ResultRows({column: dtype for column, (_, dtype) in RUN_COLUMNS.items()})
    models = [_import_run(name, data, rows) for name, (_, _, data) in sorted(runs.items())]
    report.note("NaN scores written as null", rows.nan_scores)
    report.note("infinite figures written as null", _infinities(runs.values()))
    report.written[f"{RESULTS_DIR}/{RESULTS_FILE}"] = write_results(
        rows.frame(), results_dir / RESULTS_FILE
    )
    write_catalogs(
        out,
        report,
        models=models,
        tasks=_tasks(),
        benchmarks=[_benchmark()],
        menu=[
            {
                "name": "LLMPerf",
                "description": "Inference performance of LLM API providers",
                "open": True,
                "children": [{"benchmark": BENCHMARK, "display_name": "LLMPerf leaderboard"}],
            }
        ],
    )
    report.seconds = time.perf_counter() - started
    return report


def _infinities(runs: Iterable[tuple[int, str, dict[str, Any]]]) -> int:
    return sum(
        isinstance(value, float) and math.isinf(value)
        for _, _, data in runs
        for value in data.values()
    )


def _summary_files(source: Path, report: ImportReport) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        msg = "not a file or directory"
        raise DatasetError(msg, file=str(source))
    root = source / "summary" if (source / "summary").is_dir() else source
    if root != source and (source / "individual").is_dir():
        report.note("individual/ per-request files not read (summaries hold their aggregates)")
    files = []
    for path in sorted(root.iterdir()):
        if path.is_dir():
            report.skip("folder inside the summary folder", path.name)
        elif path.suffix != ".json":
            report.skip("not a JSON file", path.name)
        else:
            files.append(path)
    return files


def _read_summary(path: Path, report: ImportReport) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        report.skip(f"unreadable file ({exc.strerror or type(exc).__name__})", path.name)
        return None
    try:
        data = loads_json(raw)
    except (ValueError, RecursionError):  # the stdlib fallback recurses on deep nesting
        report.skip("invalid JSON", path.name)
        return None
    if not isinstance(data, dict) or not all(f"{p}mean" in data for p, *_ in TASKS.values()):
        report.skip("not an LLMPerf summary", path.name)
        return None
    return data


def _size(data: dict[str, Any], stem: str) -> str | None:
    for text in (data.get("model_size"), stem, data.get("model")):
        match = _SIZE.search(str(text or "").lower())
        if match:
            return f"{match.group(1)}b"
    return None


def _entry_name(data: dict[str, Any], stem: str) -> str:
    provider = str(data.get("framework") or stem.split("_")[0])
    served = str(data.get("model") or stem)
    size = _size(data, stem)
    if size and "llama" in served.lower():
        return f"{provider}/Llama-2-{size}"
    return f"{provider}/{served}"


def _import_run(name: str, data: dict[str, Any], rows: ResultRows) -> dict[str, Any]:
    stamp = parse_finite(data.get("timestamp"))
    when = datetime.fromtimestamp(stamp, UTC) if stamp is not None else None
    run: dict[str, Any] = {}
    for column, (key, dtype) in RUN_COLUMNS.items():
        value = parse_finite(data.get(key))
        run[column] = int(value) if value is not None and dtype == pl.Int64() else value
    shared = {"model_name": name, "model_revision": None, "evaluated_at": when, **run}
    for task, (prefix, *_) in TASKS.items():
        metrics = {
            key[len(prefix) :].removeprefix("quantiles_"): parse_finite(value)
            for key, value in data.items()
            if key.startswith(prefix)
        }
        rows.add(task_name=task, metrics=metrics, **shared)
    rows.add(
        task_name=ERROR_TASK,
        metrics={"rate": parse_finite(data.get("results_error_rate"))},
        **shared,
    )
    size = _size(data, name)
    return {
        "name": name,
        "provider": data.get("framework"),
        "served_model": data.get("model"),
        "api": data.get("api"),
        "base_model": f"Llama-2-{size}" if size else None,
        "n_parameters": float(size[:-1]) * 1e9 if size else None,
        "license": "llama2" if size else None,
        "modalities": ["text"],
        "run_name": data.get("name"),
        "llmperf_version": data.get("version"),
        "evaluated_at": when.isoformat() if when else None,
        "error_codes": data.get("results_error_code_frequency"),
        "error_rate": parse_finite(data.get("results_error_rate")),
        **run,
    }


def _tasks() -> list[dict[str, Any]]:
    tasks = [
        {
            "name": task,
            "type": kind,
            "main_metric": "mean",
            "higher_is_better": higher,
            "unit": unit,
            "modalities": ["text"],
            "description": description,
        }
        for task, (_, kind, unit, higher, description) in TASKS.items()
    ]
    tasks.append(
        {
            "name": ERROR_TASK,
            "type": "Reliability",
            "main_metric": "rate",
            "higher_is_better": False,
            "unit": "fraction",
            "modalities": ["text"],
            "description": "Share of the run's requests that failed (e.g. rate-limited).",
        }
    )
    return tasks


def _benchmark() -> dict[str, Any]:
    return {
        "name": BENCHMARK,
        "display_name": "LLMPerf leaderboard",
        "description": "Latency, throughput and error rate of LLM inference providers "
        "serving Llama 2, measured with LLMPerf.",
        "reference": "https://github.com/ray-project/llmperf-leaderboard",
        "tasks": [{"task": task} for task in [*TASKS, ERROR_TASK]],
        "scoring": {
            "normalize": False,
            "rank_method": "mean_rank",
            "rank_partial_last": True,
            "default_sort": None,
            "bradley_terry": False,
        },
    }
