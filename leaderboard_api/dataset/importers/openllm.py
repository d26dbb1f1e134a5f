"""Import an Open LLM Leaderboard table (the v1 or v2 CSV export) into a dataset directory.

Decisions:

- The version is detected from the columns (v2: IFEval ... MMLU-PRO with ``<task> Raw``;
  v1: ARC ... GSM8K).
- A leaderboard entry is a model at one precision: ``model_name`` is ``"<org>/<model>
  (<precision>)"`` and ``model_revision`` the ``Model sha`` (null when the table has none), so
  the same model and sha at two precisions never collide. ``models.jsonl`` keeps the hub name
  (``model``) and ``precision`` for grouping them again.
- v2 rows: metric ``normalized`` (main; 0-100 with the random baseline at 0) and ``raw`` (the
  ``<task> Raw`` column, 0-1). v1 rows: metric ``score`` (0-100, as published).
- The published tables store negated flags: ``Flagged``, ``MoE`` and v1's ``Merged`` are True for
  entries that are *not* flagged / MoE / merged (the contamination-test models are the only
  ``Flagged=False`` rows; most Mixtral rows have ``MoE=False``; most merges have
  ``Merged=False``). ``models.jsonl`` holds the plain ``flagged``, ``moe`` and ``merged``.
- ``#Params (B)`` of 0 means unknown: ``n_parameters`` is null (counted in the report).
- A model at a precision that appears on several rows keeps its first row; the later ones
  are skipped (counted), so ``models.jsonl`` names every entry once.
- Scores of ``±inf`` are written as null (counted): the dataset contract takes finite
  scores only.
- A table without rows, or with a line whose number of fields is not the header's (a
  truncated download, a stray delimiter), is refused rather than imported in part.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from leaderboard_api.dataset.contract import RESULTS_DIR, DatasetError
from leaderboard_api.dataset.importers.common import (
    ImportReport,
    ResultRows,
    parse_finite,
    parse_float,
    prepare_out,
    progress_bar,
    write_catalogs,
    write_results,
)

LANGUAGES = ["eng-Latn"]
LEADERBOARD_URL = "https://huggingface.co/spaces/open-llm-leaderboard/open_llm_leaderboard"


@dataclass(frozen=True, slots=True)
class _Task:
    type: str
    description: str
    reference: str
    random_baseline: float


@dataclass(frozen=True, slots=True)
class _Version:
    name: str
    display_name: str
    tasks: Mapping[str, _Task]
    metrics: tuple[str, ...]  # main first
    date_column: str
    merged_column: str  # holds "not merged" in both tables
    columns: tuple[str, ...]


_V2 = _Version(
    name="v2",
    display_name="Open LLM Leaderboard v2",
    tasks={
        "IFEval": _Task(
            "Instruction following",
            "Following verifiable formatting instructions.",
            "https://arxiv.org/abs/2311.07911",
            0.0,
        ),
        "BBH": _Task(
            "Reasoning",
            "BIG-Bench Hard: 23 challenging BIG-Bench tasks.",
            "https://arxiv.org/abs/2210.09261",
            0.0,
        ),
        "MATH Lvl 5": _Task(
            "Math",
            "MATH competition problems, level 5 only.",
            "https://arxiv.org/abs/2103.03874",
            0.0,
        ),
        "GPQA": _Task(
            "Knowledge",
            "Graduate-level, Google-proof science questions.",
            "https://arxiv.org/abs/2311.12022",
            0.0,
        ),
        "MUSR": _Task(
            "Reasoning",
            "MuSR: multistep soft reasoning over long narratives.",
            "https://arxiv.org/abs/2310.16049",
            0.0,
        ),
        "MMLU-PRO": _Task(
            "Knowledge",
            "MMLU-Pro: ten-choice, reasoning-heavy MMLU.",
            "https://arxiv.org/abs/2406.01574",
            0.0,
        ),
    },
    metrics=("normalized", "raw"),
    date_column="Submission Date",
    merged_column="Not_Merged",
    columns=("Model", "Precision", "Model sha", "Not_Merged", "Maintainer's Highlight"),
)
#: v1 random baselines are the leaderboard's own baseline row.
_V1 = _Version(
    name="v1",
    display_name="Open LLM Leaderboard v1",
    tasks={
        "ARC": _Task(
            "Reasoning",
            "AI2 Reasoning Challenge: grade-school science questions.",
            "https://arxiv.org/abs/1803.05457",
            25.0,
        ),
        "HellaSwag": _Task(
            "Commonsense",
            "Commonsense inference on sentence endings.",
            "https://arxiv.org/abs/1905.07830",
            25.0,
        ),
        "MMLU": _Task(
            "Knowledge",
            "Massive multitask language understanding, 57 subjects.",
            "https://arxiv.org/abs/2009.03300",
            25.0,
        ),
        "TruthfulQA": _Task(
            "Truthfulness", "Avoiding common falsehoods.", "https://arxiv.org/abs/2109.07958", 25.0
        ),
        "Winogrande": _Task(
            "Commonsense",
            "Adversarial Winograd-schema pronoun resolution.",
            "https://arxiv.org/abs/1907.10641",
            50.0,
        ),
        "GSM8K": _Task(
            "Math", "Grade-school math word problems.", "https://arxiv.org/abs/2110.14168", 0.21
        ),
    },
    metrics=("score",),
    date_column="date",
    merged_column="Merged",
    columns=("Model", "Precision", "Model sha", "Merged"),
)


def import_openllm(source: Path, *, out: Path, progress: bool = False) -> ImportReport:
    """Import an Open LLM Leaderboard CSV (v1 or v2, detected by its columns) into ``out``.

    Writes ``results/openllm-<version>.parquet``, ``models.jsonl``, ``tasks.jsonl``, one
    benchmark (``open-llm-leaderboard-v1`` or ``-v2``) and a one-group menu.
    """
    started = time.perf_counter()
    report = ImportReport("openllm", str(source), str(out))
    table = _read_csv(source)
    version = _detect(table.columns, source)
    results_file = f"openllm-{version.name}.parquet"
    results_dir = prepare_out(out, results_file=results_file)
    rows = ResultRows()
    models: dict[str, dict[str, Any]] = {}
    records = table.to_dicts()
    for line, record in progress_bar(
        list(enumerate(records, 2)), enabled=progress, desc="openllm", unit="row"
    ):
        name = _entry_name(record)
        if name is None:
            report.skip("row without a model name", f"line {line}")
        elif name in models:
            report.skip("repeated model and precision (first row kept)", f"line {line}")
        else:
            models[name] = _import_row(record, name, version=version, rows=rows, report=report)
    if not models:
        msg = "the table has no rows with a model name"
        raise DatasetError(msg, file=str(source), hint="a header line alone imports nothing")
    report.count("CSV rows", len(models))
    report.written[f"{RESULTS_DIR}/{results_file}"] = write_results(
        rows.frame(), results_dir / results_file
    )
    report.note("duplicate rows dropped", rows.duplicates)
    benchmark = f"open-llm-leaderboard-{version.name}"
    write_catalogs(
        out,
        report,
        models=models.values(),
        tasks=[_task_entry(name, task, version) for name, task in version.tasks.items()],
        benchmarks=[_benchmark_entry(benchmark, version)],
        menu=[
            {
                "name": "Open LLM Leaderboard",
                "description": "Hugging Face's Open LLM Leaderboard",
                "open": True,
                "children": [{"benchmark": benchmark, "display_name": version.display_name}],
            }
        ],
    )
    report.seconds = time.perf_counter() - started
    return report


def _read_csv(source: Path) -> pl.DataFrame:
    if not source.is_file():
        msg = "CSV file not found"
        raise DatasetError(msg, file=str(source))
    _check_fields(source)
    try:  # every column as text: numbers, flags and dates are parsed per column below
        return pl.read_csv(source, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as exc:
        msg = f"cannot read the CSV ({exc})"
        raise DatasetError(msg, file=str(source)) from exc


def _check_fields(source: Path) -> None:
    """Refuse a table whose lines do not all have the header's number of fields.

    polars fills a short line with nulls, so a truncated last line would import as a
    model with missing scores; the standard library's reader shows the field counts.
    """
    bad: list[str] = []
    width = 0
    try:
        with source.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            width = len(header or [])
            for record in reader:
                if record and len(record) != width and len(bad) < 3:
                    bad.append(f"line {reader.line_num}: {len(record)} fields")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        msg = f"cannot read the CSV ({exc})"
        raise DatasetError(msg, file=str(source)) from exc
    if bad:
        msg = f"lines whose number of fields is not the header's {width} (truncated or malformed)"
        raise DatasetError(msg, file=str(source), examples=bad)


def _detect(columns: list[str], source: Path) -> _Version:
    for version in (_V2, _V1):
        wanted = {*version.tasks, *version.columns}
        if version is _V2:
            wanted |= {f"{task} Raw" for task in version.tasks}
        if wanted <= set(columns):
            return version
    missing = sorted({*_V1.tasks, *_V1.columns} - set(columns))
    msg = "not an Open LLM Leaderboard table (neither the v2 nor the v1 columns)"
    raise DatasetError(msg, file=str(source), examples=[f"missing {c!r}" for c in missing])


def _flag(value: Any) -> bool | None:
    return {"true": True, "false": False}.get(str(value).strip().lower())


def _negated(value: Any) -> bool | None:
    flag = _flag(value)
    return None if flag is None else not flag


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _entry_name(record: Mapping[str, Any]) -> str | None:
    """``"<org>/<model> (<precision>)"``, or None for a row without a model."""
    model = (record.get("Model") or "").strip()
    if not model:
        return None
    return f"{model} ({record.get('Precision') or 'unknown'})"


def _finite(value: Any, report: ImportReport) -> float | None:
    number = parse_finite(value)
    report.note(
        "infinite scores written as null", number is None and parse_float(value) is not None
    )
    return number


def _import_row(
    record: Mapping[str, Any],
    name: str,
    *,
    version: _Version,
    rows: ResultRows,
    report: ImportReport,
) -> dict[str, Any]:
    model = (record.get("Model") or "").strip()
    precision = record.get("Precision") or "unknown"
    sha = record.get("Model sha") or None
    report.note("rows without a model sha (revision null)", sha is None)
    when = _timestamp(record.get(version.date_column))
    report.note(f"rows without a valid {version.date_column!r}", when is None)
    for task in version.tasks:
        if version is _V2:
            metrics = {
                "normalized": _finite(record.get(task), report),
                "raw": _finite(record.get(f"{task} Raw"), report),
            }
        else:
            metrics = {"score": _finite(record.get(task), report)}
        report.note("empty scores (null)", sum(v is None for v in metrics.values()))
        rows.add(
            model_name=name,
            model_revision=sha,
            task_name=task,
            metrics=metrics,
            languages=LANGUAGES,
            evaluated_at=when,
        )
    params = parse_finite(record.get("#Params (B)"))
    report.note("rows with #Params (B) = 0 (unknown)", params == 0)
    likes = parse_finite(record.get("Hub ❤️"))
    type_text = record.get("Type") or ""
    symbol, _, kind = type_text.partition(" ")
    entry: dict[str, Any] = {
        "name": name,
        "model": model,
        "precision": precision,
        "revision": sha,
        "model_type": (kind if kind and not symbol.isalnum() else type_text) or None,
        "type_symbol": record.get("T"),
        "architecture": record.get("Architecture"),
        "weight_type": record.get("Weight type"),
        "license": record.get("Hub License") or None,
        "n_parameters": params * 1e9 if params else None,
        "likes": int(likes) if likes is not None else None,
        "available_on_hub": _flag(record.get("Available on the hub")),
        "flagged": _negated(record.get("Flagged")),
        "moe": _negated(record.get("MoE")),
        "merged": _negated(record.get(version.merged_column)),
        "reference": f"https://huggingface.co/{model}",
        "reported_average": parse_finite(record.get("Average ⬆️")),
        "submission_date": record.get(version.date_column),
    }
    if version is _V2:
        entry["release_date"] = record.get("Upload To Hub Date")
        entry["highlighted"] = _flag(record.get("Maintainer's Highlight"))
        entry["chat_template"] = _flag(record.get("Chat Template"))
    return entry


def _task_entry(name: str, task: _Task, version: _Version) -> dict[str, Any]:
    return {
        "name": name,
        "type": task.type,
        "main_metric": version.metrics[0],
        "metrics": list(version.metrics),
        "higher_is_better": True,
        "random_baseline": task.random_baseline,
        "unit": "%",
        "languages": LANGUAGES,
        "modalities": ["text"],
        "description": task.description,
        "reference": task.reference,
        "is_public": True,
    }


def _benchmark_entry(name: str, version: _Version) -> dict[str, Any]:
    return {
        "name": name,
        "display_name": version.display_name,
        "description": f"The {len(version.tasks)} tasks of the {version.display_name}; "
        "one entry per model and precision.",
        "reference": LEADERBOARD_URL,
        "tasks": [{"task": task} for task in version.tasks],
        "scoring": {
            "normalize": False,
            "rank_method": "mean",
            "rank_partial_last": True,
            "default_sort": None,
            "bradley_terry": False,
        },
    }
