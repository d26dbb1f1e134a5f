"""Catalog entries to the response fields the MTEB frontend reads, with the JSON types it declares.

The official frontend (``src/lib/types.ts``) is the contract: ``modelType`` is one string,
``zeroShotPct`` an integer (-1 when unknown), booleans are never null, score maps hold no
nulls.  Facts taken from the catalogs MTEB exports: ``use_instructions`` says a model is
instruction-tuned, ``framework`` listing ``Sentence Transformers`` says it loads there,
``superseded_by`` names a benchmark's newer versions, ``language_view`` the languages of its
per-language view, ``date`` a task's time span and ``dataset_path`` its source dataset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic.alias_generators import to_camel

from leaderboard_api.dataset.contract import BenchmarkInfo, CatalogEntry, ModelInfo, TaskInfo

#: The model type shown when the catalog names none (MTEB's default).
DEFAULT_MODEL_TYPE = "dense"
#: Task type -> simplified group, for catalogs that do not say (MTEB's five groups).
_SIMPLIFIED = {
    "Retrieval": "retrieval",
    "Reranking": "retrieval",
    "InstructionRetrieval": "retrieval",
    "InstructionReranking": "retrieval",
    "Any2AnyRetrieval": "retrieval",
    "Any2AnyMultilingualRetrieval": "retrieval",
    "DocumentUnderstanding": "retrieval",
    "Classification": "classification",
    "MultilabelClassification": "classification",
    "ZeroShotClassification": "classification",
    "ImageClassification": "classification",
    "Clustering": "clustering",
    "ImageClustering": "clustering",
    "PairClassification": "pair-classification",
    "STS": "semantic-similarity",
    "VisualSTS(eng)": "semantic-similarity",
    "VisualSTS(multi)": "semantic-similarity",
    "BitextMining": "semantic-similarity",
    "Summarization": "semantic-similarity",
}


def extras(entry: CatalogEntry, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The entry's extra catalog fields, camelCased, NaN as null."""
    return {to_camel(k): _finite(v) for k, v in entry.extras().items() if k not in skip}


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def lang_code(code: str) -> str:
    """``eng-Latn`` -> ``eng``: the language keys every route uses."""
    return code.split("-", 1)[0]


def benchmark_languages(bench: BenchmarkInfo, tasks: Mapping[str, TaskInfo]) -> set[str]:
    """The languages a benchmark evaluates: each task entry's own (``languages_iso639_3``,
    as MTEB exports the languages of the subsets a benchmark keeps), else the task's."""
    out: set[str] = set()
    for entry in bench.tasks:
        own = entry.extras().get("languages_iso639_3")
        if isinstance(own, list) and own:
            out.update(lang_code(str(code)) for code in own)
        elif entry.task in tasks:
            out.update(lang_code(code) for code in tasks[entry.task].languages)
    return out


def model_types(model: ModelInfo) -> list[str]:
    value = model.model_type
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def model_type(model: ModelInfo) -> str:
    """The one model type shown: the first the catalog names, else ``dense``."""
    kinds = model_types(model)
    return kinds[0] if kinds else DEFAULT_MODEL_TYPE


def model_fields(model: ModelInfo) -> dict[str, Any]:
    """The fields every model object shares (``ModelBriefOut``'s), from the catalog entry."""

    def billions(value: float | None) -> float | None:
        # MTEB shows parameter counts in billions to the nearest million.
        return None if value is None else round(value / 1e9, 3)

    more = model.extras()
    kinds = model_types(model)
    framework = more.get("framework") or []
    active = model.n_active_parameters
    openness = more.get("openness")
    score = more.get("openness_score")
    return {
        "name": model.name,
        "revision": model.revision,
        "url": model.reference,
        "zero_shot_pct": -1,
        "total_params_b": billions(model.n_parameters),
        "active_params_b": billions(active),
        "embedding_dim": model.embed_dim,
        "max_tokens": model.max_tokens,
        "release_date": None if model.release_date is None else str(model.release_date),
        "model_type": model_type(model),
        "model_types": kinds,
        "instruction_tuned": bool(more.get("use_instructions")),
        "open_weights": bool(model.open_weights),
        "openness": openness if isinstance(openness, dict) else None,
        "openness_score": int(score) if isinstance(score, int | float) else None,
        "sentence_transformers_compatible": isinstance(framework, list)
        and "Sentence Transformers" in framework,
        "license": model.license,
        "modalities": model.modalities,
        "languages": model.languages,
        "memory_usage_mb": model.memory_usage_mb,
    }


def simplified_type(task: TaskInfo) -> str:
    given = task.extras().get("simplified_type")
    if isinstance(given, str) and given:
        return given
    return _SIMPLIFIED.get(task.type, task.type.lower())


def task_fields(task: TaskInfo) -> dict[str, Any]:
    """The task metadata fields of ``TaskMeta``, beyond the contract's own."""
    more = task.extras()
    span = more.get("date")
    dates = span if isinstance(span, list) and len(span) == 2 else [None, None]
    dialect = more.get("dialect")
    return {
        "simplified_type": simplified_type(task),
        "citation": more.get("bibtex_citation") or more.get("citation"),
        "source_dataset": more.get("dataset_path") or more.get("source_dataset"),
        "license": more.get("license"),
        "date_from": None if dates[0] is None else str(dates[0]),
        "date_to": None if dates[1] is None else str(dates[1]),
        "annotations_creators": more.get("annotations_creators"),
        "dialect": dialect if isinstance(dialect, list) else None,
        "sample_creation": more.get("sample_creation"),
    }


#: Task extras that ``task_fields`` already serves under their frontend names.
TASK_FIELD_SOURCES = frozenset(
    {
        "simplified_type",
        "bibtex_citation",
        "citation",
        "dataset_path",
        "source_dataset",
        "license",
        "date",
        "annotations_creators",
        "dialect",
        "sample_creation",
    }
)


def icon_path(bench: BenchmarkInfo) -> str | None:
    """The icon to show: a URL icon through this service's ``/v1/icon`` proxy (the browser
    never contacts the icon's host), text or emoji icons as they are."""
    icon = bench.icon
    if icon and icon.lower().startswith(("http://", "https://")):
        return f"/v1/icon/{quote(bench.name, safe='')}"
    return icon


def new_version(bench: BenchmarkInfo) -> list[str] | None:
    newer = bench.extras().get("superseded_by")
    if isinstance(newer, str) and newer:
        return [newer]
    if isinstance(newer, list) and newer:
        return [str(n) for n in newer]
    return None


def language_view(bench: BenchmarkInfo, languages: list[str]) -> list[str] | str | None:
    """``"all"``, the per-language view's language keys (as ``/per-language`` spells them),
    or None when the benchmark has no per-language view."""
    view = bench.extras().get("language_view")
    if view == "all":
        return "all"
    if isinstance(view, list) and view:
        return sorted({lang_code(str(v)) for v in view})
    return None


def aliases(bench: BenchmarkInfo) -> list[str]:
    found = bench.extras().get("aliases")
    return [str(a) for a in found] if isinstance(found, list) else []


def alias_table(benchmarks: Mapping[str, BenchmarkInfo]) -> dict[str, str]:
    """Alias -> canonical benchmark name (a real benchmark name always wins over an alias)."""
    table: dict[str, str] = {}
    for name, bench in benchmarks.items():
        for alias in aliases(bench):
            if alias not in benchmarks:
                table.setdefault(alias, name)
    return table
