"""The JSON types the official MTEB frontend declares for what it reads (its ``src/lib/types.ts``).

A spec is a type name (``str``, ``int``, ``num``, ``bool``, ``any``; ``?`` in front allows
null), a list ``[spec]`` (a JSON array of items), ``{"*": spec}`` (an object whose values
all match, none null unless the spec allows it), or a dict of required fields.  ``check``
returns every place a document breaks its spec, so a test shows them all at once.
"""

from __future__ import annotations

from typing import Any

Spec = Any

MODEL_TYPE = "str"
MODEL_META: dict[str, Spec] = {
    "name": "str",
    "zeroShotPct": "int",
    "activeParamsB": "?num",
    "totalParamsB": "?num",
    "embeddingDim": "?int",
    "maxTokens": "?num",
    "releaseDate": "?str",
    "modelType": MODEL_TYPE,
    "instructionTuned": "bool",
    "openWeights": "bool",
    "openness": "?any",
    "opennessScore": "?int",
    "sentenceTransformersCompatible": "bool",
    "modalities": ["str"],
    "languages": ["str"],
    "url": "?str",
}
MODEL_DETAIL: dict[str, Spec] = {
    **MODEL_META,
    "memoryUsageMb": "?num",
    "license": "?str",
    "trainingDatasets": "?any",
}
TASK_META: dict[str, Spec] = {
    "name": "str",
    "type": "str",
    "simplifiedType": "str",
    "languages": ["str"],
    "domains": ["str"],
    "modalities": ["str"],
    "description": "str",
    "reference": "?str",
    "citation": "?str",
    "isPublic": "bool",
    "sourceDataset": "?str",
    "license": "?str",
    "dateFrom": "?str",
    "dateTo": "?str",
    "annotationsCreators": "?str",
    "dialect": "?any",
    "sampleCreation": "?str",
    "mainScore": "?str",
    "numModels": "int",
}
BENCHMARK: dict[str, Spec] = {
    "name": "str",
    "displayName": "str",
    "icon": "?str",
    "description": "?str",
    "reference": "?str",
    "citation": "?str",
    "languages": ["str"],
    "taskTypes": ["str"],
    "simplifiedTaskTypes": ["str"],
    "tasks": ["str"],
    "domains": ["str"],
    "modalities": ["str"],
    "displayOnLeaderboard": "bool",
    "newVersion": "?any",
    "aggregations": ["str"],
    "showZeroShot": "bool",
    "numModels": "int",
    "languageView": "?any",
}
SUMMARY_ROW: dict[str, Spec] = {
    "rank": "int",
    "model": MODEL_META,
    "zeroShotPct": "int",
    "activeParamsB": "?num",
    "totalParamsB": "?num",
    "embeddingDim": "?int",
    "maxTokens": "?num",
    "meanTask": "?num",
    "meanTaskType": "?num",
    "meanPublic": "?num",
    "meanPrivate": "?num",
    "scoresByTaskType": {"*": "num"},
    "scoresByTask": {"*": "num"},
    "scoresByCustomGroup": {"*": {"*": "num"}},
    "trainedOnTasks": ["str"],
    "experiments": "?any",
}
SUMMARY: dict[str, Spec] = {
    "benchmarkName": "str",
    "taskTypes": ["str"],
    "tasks": ["str"],
    "tasksMeta": [TASK_META],
    "rows": [SUMMARY_ROW],
    "aggregations": ["str"],
    "showZeroShot": "bool",
}
PER_LANGUAGE: dict[str, Spec] = {
    "benchmarkName": "str",
    "rows": [{"modelName": "str", "scoresByLanguage": {"*": "num"}}],
}
LEADERS: dict[str, Spec] = {
    "benchmarkName": "str",
    "buckets": [
        {
            "min": "num",
            "max": "?num",
            "leader": "?any",
        }
    ],
}
LEADER_ROW: dict[str, Spec] = {
    "rank": "int",
    "model": {"name": "str", "modelType": MODEL_TYPE},
    "meanTask": "?num",
    "totalParamsB": "?num",
}
TASK_SCORES: dict[str, Spec] = {
    "task": TASK_META,
    "benchmarks": ["str"],
    "subsets": ["str"],
    "splits": ["str"],
    "rows": [
        {
            "rank": "int",
            "model": MODEL_META,
            "score": "?num",
            "subsetScores": {"*": {"*": "num"}},
            "benchmarks": ["str"],
            "trainedOn": "?bool",
        }
    ],
}
MODEL_SCORES: dict[str, Spec] = {
    "model": MODEL_META,
    "rows": [
        {
            "benchmarkName": "str",
            "benchmarkDisplayName": "str",
            "rank": "int",
            "totalModels": "int",
            "meanTask": "?num",
            "meanTaskType": "?num",
            "zeroShotPct": "int",
            "taskTypes": ["str"],
            "scoresByTaskType": {"*": "num"},
        }
    ],
}


def _kind(value: Any, name: str) -> bool:
    if name == "any":
        return True
    if name == "str":
        return isinstance(value, str)
    if name == "bool":
        return isinstance(value, bool)
    if name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "num":
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise ValueError(name)


def check(doc: Any, spec: Spec, where: str = "$") -> list[str]:
    """Every place where ``doc`` breaks ``spec``."""
    if isinstance(spec, str):
        nullable = spec.startswith("?")
        if doc is None:
            return [] if nullable else [f"{where}: null where {spec} is declared"]
        name = spec.lstrip("?")
        return [] if _kind(doc, name) else [f"{where}: {doc!r} is not {name}"]
    if isinstance(spec, list):
        if not isinstance(doc, list):
            return [f"{where}: {type(doc).__name__} where a list is declared"]
        return [p for i, item in enumerate(doc) for p in check(item, spec[0], f"{where}[{i}]")]
    if not isinstance(doc, dict):
        return [f"{where}: {type(doc).__name__} where an object is declared"]
    if set(spec) == {"*"}:
        return [p for k, v in doc.items() for p in check(v, spec["*"], f"{where}.{k}")]
    out = []
    for key, sub in spec.items():
        if key not in doc:
            out.append(f"{where}.{key}: missing")
        else:
            out.extend(check(doc[key], sub, f"{where}.{key}"))
    return out
