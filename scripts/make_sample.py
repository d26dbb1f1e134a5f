"""Write the embedded sample dataset (leaderboard_api/sample/) from a fixed seed, byte for byte.

Every name and number in it is invented: the models, their metadata and their scores only
look plausible.  After changing this file run ``python scripts/make_sample.py`` and commit
both; ``--out DIR`` writes elsewhere (the tests use it to prove two runs give equal bytes).
Parquet bytes are stable for one polars version (zstd level 3, no statistics, one row
group, sorted rows); the JSON files are stable everywhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

SEED = 20240611
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "leaderboard_api" / "sample"
EPOCH = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
LANG = {"eng": "eng-Latn", "fra": "fra-Latn", "deu": "deu-Latn", "spa": "spa-Latn"}
EN = ("eng",)
EVERY = ("eng", "fra", "deu", "eng-fra", "spa")

#: type -> (main metric, secondary metrics, typical main score)
METRICS: dict[str, tuple[str, tuple[str, ...], float]] = {
    "Retrieval": ("ndcg_at_10", ("map_at_10", "recall_at_100"), 0.46),
    "STS": ("cosine_spearman", ("cosine_pearson",), 0.79),
    "Classification": ("accuracy", ("f1",), 0.72),
    "Clustering": ("v_measure", (), 0.42),
}
SHIFT = {"map_at_10": -0.05, "recall_at_100": 0.31, "cosine_pearson": 0.01, "f1": -0.025}
#: task -> (type, domains, description)
ENG_TASKS: dict[str, tuple[str, list[str], str]] = {
    "ClaimCheckRetrieval": ("Retrieval", ["Academic", "Web"], "Find evidence for a claim."),
    "RecipeQARetrieval": ("Retrieval", ["Web"], "Answer cooking questions from recipes."),
    "NewsHeadlineSTS": ("STS", ["News"], "Similarity of paired news headlines."),
    "ForumParaphraseSTS": ("STS", ["Social"], "Similarity of forum post paraphrases."),
    "ProductReviewClassification": ("Classification", ["Reviews"], "Review sentiment."),
    "SupportTicketIntentClassification": ("Classification", ["Support"], "Ticket intents."),
    "PaperAbstractClustering": ("Clustering", ["Academic"], "Cluster abstracts by field."),
    "ForumThreadClustering": ("Clustering", ["Social"], "Cluster threads by board."),
}
#: task -> (type, subsets in the results, domains, description)
MULTI_TASKS: dict[str, tuple[str, list[str], list[str], str]] = {
    "MultiFAQRetrieval": ("Retrieval", ["eng", "fra", "deu"], ["Web"], "FAQ answer retrieval."),
    "MultiNewsSTS": ("STS", ["eng", "fra", "deu", "eng-fra"], ["News"], "Headline similarity."),
    "MultiReviewClassification": (
        "Classification",
        ["eng", "fra", "deu", "spa"],
        ["Reviews"],
        "Star rating of product reviews.",
    ),
    "MultiTopicClustering": ("Clustering", ["eng", "fra", "deu"], ["News"], "Topic clusters."),
}
#: task -> (type, main metric, secondary metric, random baseline, typical score)
LLM_TASKS: dict[str, tuple[str, str, str | None, float, float]] = {
    "GradeSchoolMath": ("Math", "exact_match", None, 0.0, 0.38),
    "SciQuizMC": ("Knowledge", "accuracy", None, 0.25, 0.52),
    "LogicGridPuzzles": ("Reasoning", "accuracy", None, 0.5, 0.63),
    "InstructionCompliance": (
        "Instruction following",
        "strict_accuracy",
        "loose_accuracy",
        0.0,
        0.6,
    ),
}
#: task -> (type, unit, higher is better)
SERVING_TASKS: dict[str, tuple[str, str, bool]] = {
    "TimeToFirstToken": ("Latency", "seconds", False),
    "InterTokenLatency": ("Latency", "seconds", False),
    "EndToEndLatency": ("Latency", "seconds", False),
    "OutputThroughput": ("Throughput", "tokens/s", True),
}


def rev(name: str, n: int = 1) -> str:
    """A made-up but stable 40-hex revision."""
    return hashlib.sha1(f"{name}:{n}".encode()).hexdigest()


@dataclass(frozen=True)
class Run:
    """One evaluation campaign: an int revision means ``rev(model, n)``."""

    revision: str | int | None = 1
    eng: bool = True
    subsets: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


TRAINED = ("ClaimCheckRetrieval", "ProductReviewClassification")
BIG_TRAINED = (
    *TRAINED,
    "RecipeQARetrieval",
    "ForumParaphraseSTS",
    "SupportTicketIntentClassification",
)
MULTI_TRAINED = ("MultiReviewClassification", "MultiFAQRetrieval")
EU = ("eng", "fra", "deu")
CLUSTERING = ("PaperAbstractClustering", "ForumThreadClustering")
#: name -> (quality, runs); the quality steers the invented scores.
EMBEDDERS: dict[str, tuple[float, tuple[Run, ...]]] = {
    "acme/embed-small-v1": (-0.6, (Run(),)),
    "acme/embed-base-v1": (-0.1, (Run(subsets=EN, skip=("MultiFAQRetrieval",)),)),
    "acme/embed-large-v1": (0.25, (Run(),)),
    # The catalog names revision 2 although revision 1 has more results.
    "acme/embed-large-v2": (0.55, (Run(1, subsets=EVERY), Run(2))),
    "northwind/nw-e5-mini": (-0.45, (Run(subsets=EN),)),
    # No revision in the catalog: the revision with the most results is chosen.
    "northwind/nw-e5-base": (0.05, (Run("no_revision_available", skip=CLUSTERING), Run())),
    "lumen-ai/lumen-embed-m-base": (0.0, (Run(subsets=EVERY),)),
    "lumen-ai/lumen-embed-m-large": (0.4, (Run(subsets=EVERY),)),
    "bluefin/bluefin-embed-7b": (0.9, (Run(subsets=EVERY),)),
    "quokka/quokka-minilm-l6": (-0.8, (Run(None),)),
    "tessera/tessera-embed-1b": (0.7, (Run(subsets=EVERY),)),
    "riverbank/rb-sentence-base": (-0.3, (Run(skip=("RecipeQARetrieval", *CLUSTERING[1:])),)),
    "solstice/solstice-m3": (0.45, (Run(eng=False, subsets=EU),)),
    "orbit-labs/orbit-embed-api-v3": (0.6, (Run(skip=("ForumParaphraseSTS", *CLUSTERING)),)),
}
#: models.jsonl rows of the embedders (quokka is absent): parameters, embedding size,
#: license, release date, languages (ISO 639-3), training datasets (None: unknown).
EMBED_META: dict[str, tuple[float | None, int, str | None, str, tuple[str, ...], Any]] = {
    "acme/embed-small-v1": (33.4e6, 384, "apache-2.0", "2023-03-14", EN, TRAINED),
    "acme/embed-base-v1": (109.5e6, 768, "apache-2.0", "2023-03-14", EN, TRAINED),
    "acme/embed-large-v1": (335.1e6, 1024, "apache-2.0", "2023-06-02", EN, TRAINED),
    "acme/embed-large-v2": (335.1e6, 1024, "apache-2.0", "2024-05-02", EN, BIG_TRAINED[:3]),
    "northwind/nw-e5-mini": (22.7e6, 384, "mit", "2022-11-30", EN, ()),
    "northwind/nw-e5-base": (109.5e6, 768, "mit", "2022-11-30", EN, None),
    "lumen-ai/lumen-embed-m-base": (
        278.0e6,
        768,
        "cc-by-4.0",
        "2024-01-18",
        EVERY,
        MULTI_TRAINED[:1],
    ),
    "lumen-ai/lumen-embed-m-large": (
        560.0e6,
        1024,
        "cc-by-4.0",
        "2024-01-18",
        EVERY,
        MULTI_TRAINED,
    ),
    "bluefin/bluefin-embed-7b": (
        7.11e9,
        4096,
        "bluefin-community",
        "2024-08-21",
        EU[:2],
        BIG_TRAINED,
    ),
    "tessera/tessera-embed-1b": (None, 2048, None, "2024-10-07", (), None),
    "riverbank/rb-sentence-base": (124.6e6, 768, "apache-2.0", "2021-08-09", EN, ()),
    "solstice/solstice-m3": (567.8e6, 1024, "mit", "2024-02-05", EU, None),
    "orbit-labs/orbit-embed-api-v3": (None, 1536, None, "2024-04-30", EN, None),
}
META_OVERRIDES: dict[str, dict[str, Any]] = {
    "acme/embed-large-v2": {"revision": rev("acme/embed-large-v2", 2)},
    "northwind/nw-e5-base": {"revision": None},
    "bluefin/bluefin-embed-7b": {"model_type": ["dense", "instruction"], "max_tokens": 32768.0},
    "tessera/tessera-embed-1b": {"model_type": None, "revision": None},
    "orbit-labs/orbit-embed-api-v3": {"revision": None},
}


def embed_meta(name: str) -> dict[str, Any]:
    params, dim, license_, date, langs, trained = EMBED_META[name]
    row: dict[str, Any] = {
        "name": name,
        "revision": rev(name),
        "n_parameters": params,
        "release_date": date,
        "license": license_,
        "open_weights": license_ is not None,
        "model_type": ["dense"],
        "reference": f"https://example.com/{name}" if license_ else None,
        "embed_dim": dim,
        "max_tokens": 512.0 if params is not None and params < 1e9 else 8192.0,
        "memory_usage_mb": round(params * 4 / 2**20, 1) if params is not None else None,
        "languages": sorted({LANG[c] for s in langs for c in s.split("-")}),
        "modalities": ["text"],
        "training_datasets": None if trained is None else list(trained),
    }
    row.update(META_OVERRIDES.get(name, {}))
    return row


#: name -> (quality, billions of parameters, license, release date, in the serving runs)
LLMS: dict[str, tuple[float, float, str | None, str, bool]] = {
    "acme/acme-chat-7b": (-0.2, 6.7, "apache-2.0", "2024-02-12", True),
    "acme/acme-chat-13b": (0.15, 13.0, "apache-2.0", "2024-02-12", True),
    "fjord-ai/fjord-8b-instruct": (0.35, 8.0, "fjord-open", "2024-07-23", True),
    "kestrel/kestrel-70b-chat": (0.85, 70.6, "kestrel-license", "2024-09-30", True),
    "northwind/nw-instruct-3b": (-0.55, 3.2, "mit", "2024-05-14", True),
    "tessera/tessera-lm-1b": (-0.85, 1.2, None, "2024-11-01", False),
}


def clip(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


def embed_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    """Results of the English and multilingual embedding tasks, main and secondary metrics."""
    offsets = {t: rng.uniform(-0.08, 0.08) for t in sorted([*ENG_TASKS, *MULTI_TASKS])}
    for index, (name, (quality, runs)) in enumerate(EMBEDDERS.items()):
        multilingual = name in EMBED_META and len(EMBED_META[name][4]) != 1
        for run_index, run in enumerate(runs):
            when = EPOCH + timedelta(days=7 * index + 45 * run_index, minutes=13 * index)
            revision = rev(name, run.revision) if isinstance(run.revision, int) else run.revision
            cells: list[tuple[str, str, str, str]] = []
            if run.eng:
                for task, (kind, _, _) in ENG_TASKS.items():
                    if task == "ClaimCheckRetrieval" and index % 3 == 0:
                        cells.append((task, kind, "dev", "default"))
                    cells.append((task, kind, "test", "default"))
            for task, (kind, subsets, _, _) in MULTI_TASKS.items():
                cells.extend((task, kind, "test", s) for s in subsets if s in run.subsets)
            for task, kind, split, subset in cells:
                if task in run.skip:
                    continue
                main, secondary, typical = METRICS[kind]
                foreign = subset != "default" and subset != "eng"
                penalty = (0.02 if multilingual else 0.14) if foreign else 0.0
                penalty += 0.03 if split == "dev" else 0.0
                score = clip(
                    typical + offsets[task] + 0.09 * quality - penalty + rng.gauss(0, 0.012)
                )
                langs = ["eng"] if subset == "default" else subset.split("-")
                row = {
                    "model_name": name,
                    "model_revision": revision,
                    "task_name": task,
                    "split": split,
                    "subset": subset,
                    "languages": [LANG[c] for c in langs],
                    "evaluated_at": when,
                    "evaluation_time": round(rng.uniform(20.0, 900.0), 1),
                }
                yield {**row, "metric": main, "score": score}
                for extra in secondary:
                    value = clip(score + SHIFT[extra] + rng.gauss(0, 0.006))
                    yield {**row, "metric": extra, "score": value}


def llm_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    """Results of the LLM benchmark; the smallest model never ran LogicGridPuzzles."""
    for index, (name, (quality, _, _, _, _)) in enumerate(LLMS.items()):
        when = EPOCH + timedelta(days=60 + 5 * index, hours=index)
        for task, (_, main, secondary, baseline, typical) in LLM_TASKS.items():
            if name == "tessera/tessera-lm-1b" and task == "LogicGridPuzzles":
                continue
            spread = 0.22 * (1.0 - baseline)
            score = clip(max(baseline - 0.02, typical + spread * quality + rng.gauss(0, 0.015)))
            row = {
                "model_name": name,
                "model_revision": rev(name),
                "task_name": task,
                "split": "test",
                "subset": "default",
                "languages": ["eng-Latn"],
                "evaluated_at": when,
            }
            yield {**row, "metric": main, "score": score}
            if secondary is not None:
                yield {**row, "metric": secondary, "score": clip(score + 0.05)}


def serving_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    """Latency runs: no split, subset, languages or metric column (they take defaults)."""
    for index, (name, (_, billions, _, _, served)) in enumerate(LLMS.items()):
        if not served:
            continue
        when = EPOCH + timedelta(days=90, hours=2 * index)
        ttft = 0.16 + 0.011 * billions + rng.uniform(0.0, 0.05)
        itl = 0.007 + 0.00055 * billions + rng.uniform(0.0, 0.002)
        values = {
            "TimeToFirstToken": round(ttft, 4),
            "InterTokenLatency": round(itl, 4),
            "EndToEndLatency": round(ttft + 256 * itl, 4),
            "OutputThroughput": round(rng.uniform(0.88, 0.97) / itl, 1),
        }
        for task, value in values.items():
            if name == "northwind/nw-instruct-3b" and task == "OutputThroughput":
                continue
            # The revision is given: a model's rows under another (or no) revision are dropped.
            row = {"model_name": name, "model_revision": rev(name), "task_name": task}
            yield {**row, "score": value, "evaluated_at": when}


def rerun_rows(first: pl.DataFrame) -> list[dict[str, Any]]:
    """Re-evaluations of cells already in ``first``: newer ones win, an older one loses."""
    picks = [
        ("acme/embed-small-v1", "NewsHeadlineSTS", timedelta(days=40), 0.0041),
        ("acme/embed-small-v1", "ForumThreadClustering", timedelta(days=40), -0.0032),
        ("riverbank/rb-sentence-base", "ProductReviewClassification", timedelta(days=-3), 0.05),
    ]
    rows = []
    for model, task, delta, change in picks:
        match = first.filter(
            (pl.col("model_name") == model)
            & (pl.col("task_name") == task)
            & (pl.col("metric") == METRICS[ENG_TASKS[task][0]][0])
        ).row(0, named=True)
        rows.append(
            {
                **match,
                "evaluated_at": match["evaluated_at"] + delta,
                "score": clip(match["score"] + change),
            }
        )
    return rows


RESULT_SCHEMA: dict[str, pl.DataType] = {
    "model_name": pl.String(),
    "model_revision": pl.String(),
    "task_name": pl.String(),
    "split": pl.String(),
    "subset": pl.String(),
    "languages": pl.List(pl.String()),
    "score": pl.Float64(),
    "metric": pl.String(),
    "evaluated_at": pl.Datetime("us", "UTC"),
    "evaluation_time": pl.Float64(),
}
SORT = ["model_name", "model_revision", "task_name", "split", "subset", "metric"]


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    present = [c for c in RESULT_SCHEMA if c in rows[0]]
    out = pl.DataFrame(rows, schema={c: RESULT_SCHEMA[c] for c in present}, orient="row")
    return out.sort([c for c in SORT if c in present], nulls_last=False, maintain_order=True)


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    df.write_parquet(
        path, compression="zstd", compression_level=3, statistics=False, row_group_size=1 << 20
    )


def models_catalog() -> list[dict[str, Any]]:
    rows = [embed_meta(name) for name in EMBED_META]
    for name, (_, billions, license_, date, _) in LLMS.items():
        rows.append(
            {
                "name": name,
                "revision": rev(name),
                "n_parameters": billions * 1e9,
                "n_active_parameters": billions * 1e9,
                "release_date": date,
                "license": license_,
                "open_weights": license_ is not None,
                "model_type": ["instruction-tuned"],
                "reference": f"https://example.com/{name}",
                "max_tokens": 8192.0 if billions < 10 else 32768.0,
                "languages": ["eng-Latn"],
                "modalities": ["text"],
                "training_datasets": None,
            }
        )
    return sorted(rows, key=lambda r: str(r["name"]))


def tasks_catalog() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(name: str, kind: str, main: str, **more: Any) -> None:
        row: dict[str, Any] = {"name": name, "type": kind, "main_metric": main}
        row.update({"higher_is_better": True, "random_baseline": None, "unit": None})
        row.update({"languages": ["eng-Latn"], "domains": [], "modalities": ["text"]})
        row.update({"description": None, "reference": None, "is_public": True})
        row.update(more)
        rows.append(row)

    for name, (kind, domains, text) in ENG_TASKS.items():
        splits = ["dev", "test"] if name == "ClaimCheckRetrieval" else ["test"]
        public = name != "SupportTicketIntentClassification"
        more = {"domains": domains, "description": text, "is_public": public}
        add(name, kind, METRICS[kind][0], **more, eval_splits=splits, subsets=["default"])
    for name, (kind, subsets, domains, text) in MULTI_TASKS.items():
        langs = sorted({LANG[c] for s in subsets for c in s.split("-")})
        more = {"languages": langs, "domains": domains, "description": text}
        add(name, kind, METRICS[kind][0], **more, eval_splits=["test"], subsets=subsets)
    for name, (kind, main, _, baseline, _) in LLM_TASKS.items():
        text = f"{kind} questions, scored by {main}."
        add(name, kind, main, random_baseline=baseline, domains=["Academic"], description=text)
    for name, (kind, unit, higher) in SERVING_TASKS.items():
        text = f"{kind} under 4 concurrent requests ({unit})."
        add(name, kind, "mean", higher_is_better=higher, unit=unit, languages=[], description=text)
    return sorted(rows, key=lambda r: str(r["name"]))


SCORING = {"normalize": False, "rank_method": "borda", "rank_partial_last": True}
SCORING |= {"default_sort": None, "bradley_terry": False}
EMBED_AGGREGATIONS = ["mean_task", "mean_task_type", "task_types"]
#: A custom grouping (MIEB-style): labelled task groups scored on their own; the second
#: group counts only part of a task (its test split), so it is not a whole-task group.
GROUPS = {
    "custom_grouping": "Domain",
    "groups": [
        {
            "label": "Retrieval",
            "description": "The two retrieval tasks.",
            "tasks": [
                {"task": "ClaimCheckRetrieval", "splits": None, "subsets": None},
                {"task": "RecipeQARetrieval", "splits": None, "subsets": None},
            ],
        },
        {
            "label": "Forums",
            "description": "Tasks built from forum posts.",
            "tasks": [
                {"task": "ForumParaphraseSTS", "splits": ["test"], "subsets": ["default"]},
                {"task": "ForumThreadClustering", "splits": None, "subsets": None},
            ],
        },
    ],
}
#: Descriptive statistics of one task, shaped as MTEB exports them (split -> statistics).
STATS = {
    "NewsHeadlineSTS": {
        "test": {
            "num_samples": 1200,
            "number_of_characters": 96000,
            "unique_pairs": 1198,
            "text1_statistics": {
                "total_text_length": 48000,
                "min_text_length": 12,
                "average_text_length": 40.0,
                "max_text_length": 120,
                "unique_texts": 1190,
            },
            "text2_statistics": {
                "total_text_length": 48000,
                "min_text_length": 10,
                "average_text_length": 40.0,
                "max_text_length": 131,
                "unique_texts": 1187,
            },
            "label_statistics": {"min_score": 0.0, "avg_score": 2.6, "max_score": 5.0},
        }
    }
}
#: The benchmarks; ``tasks`` lists task names (every split and subset counts) or
#: ``[task, splits, subsets]``.  ``scoring`` holds changes to SCORING.
BENCHMARKS = """[
 {"name": "TEB(eng, v1)", "display_name": "TEB English v1", "reference": "https://example.com/teb",
  "description": "Eight English text-embedding tasks of four types.",
  "tasks": [["ClaimCheckRetrieval", ["test"], ["default"]],
   ["RecipeQARetrieval", ["test"], ["default"]], ["NewsHeadlineSTS", ["test"], ["default"]],
   ["ForumParaphraseSTS", ["test"], ["default"]],
   ["ProductReviewClassification", ["test"], ["default"]],
   ["SupportTicketIntentClassification", ["test"], ["default"]],
   ["PaperAbstractClustering", ["test"], ["default"]],
   ["ForumThreadClustering", ["test"], ["default"]]],
  "scoring": {"bradley_terry": true}, "aggregations": "embed+groups", "show_zero_shot": true,
  "aliases": ["TEB(eng)", "TEB"]},
 {"name": "TEB(eng, v0)", "display_name": "TEB English v0 (retired)", "hidden": true,
  "description": "The first, smaller English selection.",
  "tasks": ["ClaimCheckRetrieval", "NewsHeadlineSTS", "ProductReviewClassification",
   "PaperAbstractClustering"], "aggregations": ["mean_task"], "show_zero_shot": false,
  "superseded_by": ["TEB(eng, v1)"]},
 {"name": "TEB(multi, v1)", "display_name": "TEB Multilingual v1",
  "reference": "https://example.com/teb",
  "description": "English, French and German subsets (Spanish reviews do not count).",
  "tasks": [["MultiFAQRetrieval", ["test"], ["eng", "fra", "deu"]],
   ["MultiNewsSTS", ["test"], ["eng", "fra", "deu", "eng-fra"]],
   ["MultiReviewClassification", ["test"], ["eng", "fra", "deu"]], "MultiTopicClustering"],
  "aggregations": "embed", "show_zero_shot": true,
  "language_view": ["eng-Latn", "fra-Latn", "deu-Latn"]},
 {"name": "OpenLLM(v1)", "display_name": "Open LLM v1",
  "description": "Scores rescaled so the random baseline is 0 and a perfect score 100.",
  "tasks": ["GradeSchoolMath", "SciQuizMC", "LogicGridPuzzles", "InstructionCompliance"],
  "scoring": {"normalize": true, "rank_method": "mean"}, "aggregations": ["mean_task"],
  "show_zero_shot": false},
 {"name": "Serving(latency, v1)", "display_name": "Serving latency v1",
  "description": "Streaming latency and throughput of served models.",
  "tasks": ["TimeToFirstToken", "InterTokenLatency", "EndToEndLatency", "OutputThroughput"],
  "scoring": {"rank_method": "mean_rank", "default_sort": "EndToEndLatency"},
  "aggregations": [], "show_zero_shot": false}
]"""


def benchmarks_catalog() -> list[dict[str, Any]]:
    rows = []
    for spec in json.loads(BENCHMARKS):
        tasks = [
            {"task": t, "splits": None, "subsets": None}
            if isinstance(t, str)
            else {"task": t[0], "splits": t[1], "subsets": t[2]}
            for t in spec.pop("tasks")
        ]
        row = {"name": spec.pop("name"), "display_name": spec.pop("display_name")}
        row |= {"description": spec.pop("description"), "reference": spec.pop("reference", None)}
        row |= {"citation": None, "icon": None, "hidden": spec.pop("hidden", False)}
        row |= {"tasks": tasks, "scoring": SCORING | spec.pop("scoring", {})}
        if spec.get("aggregations") == "embed":
            spec["aggregations"] = EMBED_AGGREGATIONS
        elif spec.get("aggregations") == "embed+groups":
            spec["aggregations"] = [*EMBED_AGGREGATIONS, GROUPS]
        rows.append(row | spec)
    return sorted(rows, key=lambda r: str(r["name"]))


#: Nested groups; leaves name benchmarks (the hidden one is in no group).
MENU = """[
 {"name": "Text embeddings", "description": "Sentence and document embeddings", "open": true,
  "children": [
   {"benchmark": "TEB(eng, v1)", "display_name": "English"},
   {"name": "Multilingual", "description": "Per-language subsets", "open": false,
    "children": [{"benchmark": "TEB(multi, v1)", "display_name": "English, French, German"}]}]},
 {"name": "Language models", "description": "Generative models", "open": false,
  "children": [
   {"benchmark": "OpenLLM(v1)", "display_name": "Open LLM"},
   {"name": "Serving", "description": "How fast they answer", "open": false,
    "children": [{"benchmark": "Serving(latency, v1)", "display_name": "Latency and throughput"}]}]}
]"""


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")


def write_sample(out: Path) -> None:
    """Write every file of the sample dataset into ``out`` (its results/ folder is replaced)."""
    rng = random.Random(SEED)
    embeddings = frame(list(embed_rows(rng)))
    llm = frame(list(llm_rows(rng)))
    serving = frame(list(serving_rows(rng)))
    reruns = frame(rerun_rows(embeddings))
    results = out / "results"
    if results.is_dir():
        shutil.rmtree(results)
    results.mkdir(parents=True)
    write_parquet(embeddings, results / "embeddings.parquet")
    write_parquet(llm, results / "llm.parquet")
    write_parquet(serving, results / "serving.parquet")
    write_parquet(reruns, results / "reruns.parquet")
    write_jsonl(models_catalog(), out / "models.jsonl")
    write_jsonl(tasks_catalog(), out / "tasks.jsonl")
    write_jsonl(benchmarks_catalog(), out / "benchmarks.jsonl")
    (out / "menu.json").write_text(json.dumps(json.loads(MENU), indent=2) + "\n", encoding="utf-8")
    stats = out / "descriptive_stats"
    if stats.is_dir():
        shutil.rmtree(stats)
    stats.mkdir()
    for task, doc in STATS.items():
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        (stats / f"{task}.json").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="target directory")
    args = parser.parse_args(argv)
    write_sample(args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
