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
    "InstructionCompliance": ("Instruction following", "strict_accuracy", "loose_accuracy", 0.0, 0.6),
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
    """One evaluation campaign of a model revision."""

    revision: str | None
    eng: bool = True
    subsets: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class Embedder:
    name: str
    quality: float
    multilingual: bool
    #: Its models.jsonl row (without the name); ``None``: absent from the catalog.
    meta: dict[str, Any] | None
    runs: tuple[Run, ...]


def meta(
    *, params: float | None, dim: int, license_: str | None, date: str, **more: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "n_parameters": params,
        "release_date": date,
        "license": license_,
        "open_weights": license_ is not None,
        "model_type": ["dense"],
        "reference": None,
        "embed_dim": dim,
        "max_tokens": 512.0 if params is not None and params < 1e9 else 8192.0,
        "memory_usage_mb": round(params * 4 / 2**20, 1) if params is not None else None,
        "languages": ["eng-Latn"],
        "modalities": ["text"],
        "training_datasets": None,
    }
    row.update(more)
    return row


TRAINED = ["ClaimCheckRetrieval", "ProductReviewClassification"]
MULTI_LANGS = [LANG[c] for c in ("eng", "fra", "deu", "spa")]
CLUSTERING = ("PaperAbstractClustering", "ForumThreadClustering")
EMBEDDERS = (
    Embedder(
        "acme/embed-small-v1", -0.6, False,
        meta(params=33.4e6, dim=384, license_="apache-2.0", date="2023-03-14",
             revision=rev("acme/embed-small-v1"), training_datasets=TRAINED,
             reference="https://example.com/acme/embed-small-v1"),
        (Run(rev("acme/embed-small-v1")),),
    ),
    Embedder(
        "acme/embed-base-v1", -0.1, False,
        meta(params=109.5e6, dim=768, license_="apache-2.0", date="2023-03-14",
             revision=rev("acme/embed-base-v1"), training_datasets=TRAINED,
             reference="https://example.com/acme/embed-base-v1"),
        (Run(rev("acme/embed-base-v1"), subsets=EN, skip=("MultiFAQRetrieval",)),),
    ),
    Embedder(
        "acme/embed-large-v1", 0.25, False,
        meta(params=335.1e6, dim=1024, license_="apache-2.0", date="2023-06-02",
             revision=rev("acme/embed-large-v1"), training_datasets=TRAINED),
        (Run(rev("acme/embed-large-v1")),),
    ),
    Embedder(
        # The catalog names the newer revision although the older one has more results.
        "acme/embed-large-v2", 0.55, False,
        meta(params=335.1e6, dim=1024, license_="apache-2.0", date="2024-05-02",
             revision=rev("acme/embed-large-v2", 2),
             training_datasets=[*TRAINED, "NewsHeadlineSTS"]),
        (Run(rev("acme/embed-large-v2", 1), subsets=EVERY), Run(rev("acme/embed-large-v2", 2))),
    ),
    Embedder(
        "northwind/nw-e5-mini", -0.45, False,
        meta(params=22.7e6, dim=384, license_="mit", date="2022-11-30", training_datasets=[]),
        (Run(rev("northwind/nw-e5-mini"), subsets=EN),),
    ),
    Embedder(
        # No revision in the catalog: the revision with the most results is chosen.
        "northwind/nw-e5-base", 0.05, False,
        meta(params=109.5e6, dim=768, license_="mit", date="2022-11-30"),
        (Run("no_revision_available", skip=CLUSTERING), Run(rev("northwind/nw-e5-base"))),
    ),
    Embedder(
        "lumen-ai/lumen-embed-m-base", 0.0, True,
        meta(params=278.0e6, dim=768, license_="cc-by-4.0", date="2024-01-18",
             languages=MULTI_LANGS, training_datasets=["MultiReviewClassification"]),
        (Run(rev("lumen-ai/lumen-embed-m-base"), subsets=EVERY),),
    ),
    Embedder(
        "lumen-ai/lumen-embed-m-large", 0.4, True,
        meta(params=560.0e6, dim=1024, license_="cc-by-4.0", date="2024-01-18",
             languages=MULTI_LANGS,
             training_datasets=["MultiReviewClassification", "MultiFAQRetrieval"]),
        (Run(rev("lumen-ai/lumen-embed-m-large"), subsets=EVERY),),
    ),
    Embedder(
        "bluefin/bluefin-embed-7b", 0.9, True,
        meta(params=7.11e9, dim=4096, license_="bluefin-community", date="2024-08-21",
             model_type=["dense", "instruction"], languages=["eng-Latn", "fra-Latn"],
             max_tokens=32768.0,
             training_datasets=[*TRAINED, "RecipeQARetrieval", "ForumParaphraseSTS",
                                "SupportTicketIntentClassification"]),
        (Run(rev("bluefin/bluefin-embed-7b"), subsets=EVERY),),
    ),
    Embedder("quokka/quokka-minilm-l6", -0.8, False, None, (Run(None),)),
    Embedder(
        "tessera/tessera-embed-1b", 0.7, True,
        meta(params=None, dim=2048, license_=None, date="2024-10-07", model_type=None,
             languages=[]),
        (Run(rev("tessera/tessera-embed-1b"), subsets=EVERY),),
    ),
    Embedder(
        "riverbank/rb-sentence-base", -0.3, False,
        meta(params=124.6e6, dim=768, license_="apache-2.0", date="2021-08-09",
             training_datasets=[]),
        (Run(rev("riverbank/rb-sentence-base"),
             skip=("RecipeQARetrieval", "ForumThreadClustering")),),
    ),
    Embedder(
        "solstice/solstice-m3", 0.45, True,
        meta(params=567.8e6, dim=1024, license_="mit", date="2024-02-05",
             languages=[LANG[c] for c in ("eng", "fra", "deu")]),
        (Run(rev("solstice/solstice-m3"), eng=False, subsets=("eng", "fra", "deu")),),
    ),
    Embedder(
        "orbit-labs/orbit-embed-api-v3", 0.6, False,
        meta(params=None, dim=1536, license_=None, date="2024-04-30"),
        (Run(rev("orbit-labs/orbit-embed-api-v3"),
             skip=("ForumParaphraseSTS", *CLUSTERING)),),
    ),
)
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
    for index, model in enumerate(EMBEDDERS):
        for run_index, run in enumerate(model.runs):
            when = EPOCH + timedelta(days=7 * index + 45 * run_index, minutes=13 * index)
            cells: list[tuple[str, str, str, str]] = []
            if run.eng:
                for task, (kind, _, _) in ENG_TASKS.items():
                    dev = task == "ClaimCheckRetrieval" and index % 3 == 0
                    cells.extend((task, kind, s, "default") for s in (["dev"] if dev else []))
                    cells.append((task, kind, "test", "default"))
            for task, (kind, subsets, _, _) in MULTI_TASKS.items():
                cells.extend((task, kind, "test", s) for s in subsets if s in run.subsets)
            for task, kind, split, subset in cells:
                if task in run.skip:
                    continue
                main, secondary, typical = METRICS[kind]
                foreign = subset != "default" and subset != "eng"
                penalty = (0.02 if model.multilingual else 0.14) if foreign else 0.0
                penalty += 0.03 if split == "dev" else 0.0
                score = clip(
                    typical + offsets[task] + 0.09 * model.quality - penalty + rng.gauss(0, 0.012)
                )
                langs = ["eng"] if subset == "default" else subset.split("-")
                row = {
                    "model_name": model.name,
                    "model_revision": run.revision,
                    "task_name": task,
                    "split": split,
                    "subset": subset,
                    "languages": [LANG[c] for c in langs],
                    "evaluated_at": when,
                    "evaluation_time": round(rng.uniform(20.0, 900.0), 1),
                }
                yield {**row, "metric": main, "score": score}
                for name in secondary:
                    value = clip(score + SHIFT[name] + rng.gauss(0, 0.006))
                    yield {**row, "metric": name, "score": value}


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
    """Latency runs: only the required columns (split, subset, languages take defaults)."""
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
            yield {"model_name": name, "task_name": task, "score": value, "evaluated_at": when}


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
            {**match, "evaluated_at": match["evaluated_at"] + delta, "score": clip(match["score"] + change)}
        )
    return rows


RESULT_SCHEMA = {
    "model_name": pl.String,
    "model_revision": pl.String,
    "task_name": pl.String,
    "split": pl.String,
    "subset": pl.String,
    "languages": pl.List(pl.String),
    "score": pl.Float64,
    "metric": pl.String,
    "evaluated_at": pl.Datetime("us", "UTC"),
    "evaluation_time": pl.Float64,
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
