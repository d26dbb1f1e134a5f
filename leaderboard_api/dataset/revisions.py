"""Which revision of a model each leaderboard cell comes from: per task (MTEB's rule) or per model.

A model may have results under several revisions (commit SHAs, ``external``,
``no_revision_available``, a null revision), and an experiment may add variant rows. A
leaderboard shows, for every (model, variant), one revision per cell, chosen by a rule:

``per_task`` (MTEB's rule), for every (model, variant, task), among the revisions with
results for that task, prefer in order:

1. a revision with at least one non-null score for the task;
2. the model's main revision (``revision`` in ``models.jsonl``);
3. a revision whose rows record an evaluator version (the ``mteb_version`` column, read as
   a release number such as ``1.12.3``);
4. a real revision over a placeholder (``external``, ``no_revision_available``, null);
5. the newest evaluator version (numeric release order; pre-releases before releases);
6. the most non-null scores for the task;
7. the smallest revision name in plain string order (null sorts as ``""`` and first).

``per_model``: for every (model, variant), the main revision when the results have it, else
the revision with the most result rows, ties to the smallest name (null as ``""``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import polars as pl

from leaderboard_api.dataset.contract import ModelInfo, RevisionRule

__all__ = [
    "PLACEHOLDER_REVISIONS",
    "VERSION_COLUMN",
    "key_hash",
    "resolve_revisions",
    "version_key",
]

#: Revision folder names that say "unknown revision".
PLACEHOLDER_REVISIONS = ("external", "no_revision_available")
#: The result column holding the version of the evaluator that produced a row.
VERSION_COLUMN = "mteb_version"
_RELEASE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(.*)$")


def version_key(text: str) -> tuple[tuple[int, ...], int, str]:
    """A sort key for version strings: release numbers, then pre-release before release.

    ``"1.12.3"`` < ``"1.12.10"``; ``"2.0.0.dev1"`` < ``"2.0.0"``; text that is no version
    sorts before every version.
    """
    found = _RELEASE.match(text)
    if found is None:
        return ((), 0, text)
    numbers = tuple(int(part) for part in found.group(1).split("."))
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers = numbers[:-1]
    rest = found.group(2).strip()
    return (numbers, 0 if rest else 1, rest)


def key_hash(columns: list[str], schema: pl.Schema) -> pl.Expr:
    """A 64-bit hash over several columns, far cheaper in memory than hashing a struct.

    Categorical columns hash their physical codes (stable within this process, which is
    all grouping needs); hashing the strings would materialize them.
    """

    def one(name: str, seed: int) -> pl.Expr:
        col = pl.col(name)
        if schema[name] == pl.Categorical:
            col = col.to_physical()
        return col.hash(seed=seed)

    expr = one(columns[0], 0)
    for seed, name in enumerate(columns[1:], start=1):
        expr = (expr * 0x100000001B3) ^ one(name, seed)
    return expr


def _version_ordinals(results: pl.DataFrame, dtype: pl.DataType) -> pl.DataFrame:
    """``__version`` (as ``dtype``) -> ``__vord`` (larger is newer) for the versions present
    that read as versions (other text records no version, as MTEB reads it)."""
    # Distinct values first: casting a million categorical rows to text costs far more.
    present = (
        results.select(pl.col(VERSION_COLUMN).drop_nulls().unique().cast(pl.String))
        .to_series()
        .to_list()
    )
    versions = sorted((v for v in present if _RELEASE.match(v)), key=version_key)
    return pl.DataFrame(
        {"__version": versions, "__vord": list(range(len(versions)))},
        schema={"__version": pl.String, "__vord": pl.Int64},
    ).with_columns(pl.col("__version").cast(dtype))


def resolve_revisions(
    results: pl.DataFrame, models: Mapping[str, ModelInfo], *, rule: RevisionRule
) -> tuple[pl.DataFrame, int]:
    """The rows of the chosen revisions (order kept) and how many rows were dropped."""
    owner = ["model_name", "variant"] if "variant" in results.columns else ["model_name"]
    group = [*owner, "task_name"] if rule == "per_task" else owner
    # Groups are keyed by 64-bit hashes; for a few thousand groups a collision has odds
    # near 1e-13, accepted to avoid grouping 1.3M rows by several string columns.
    key = key_hash([*group, "model_revision"], results.schema).alias("__key")
    keys = results.select(key).to_series()
    revisions = results.select(*group, "model_revision").with_columns(keys)
    if rule == "per_task":
        revisions = revisions.with_columns(results.get_column("score").is_not_null().alias("__ok"))
        has_version = VERSION_COLUMN in results.columns
        if has_version:
            # Joined on the categorical codes when the column is categorical (it is after
            # validation): no million-row cast to text.
            version = results.get_column(VERSION_COLUMN)
            if version.dtype != pl.Categorical:
                version = version.cast(pl.String)
            revisions = revisions.with_columns(version.alias("__version")).join(
                _version_ordinals(results, version.dtype), on="__version", how="left"
            )
        else:
            revisions = revisions.with_columns(pl.lit(None, dtype=pl.Int64).alias("__vord"))
        stats = revisions.group_by("__key").agg(
            *(pl.col(c).first() for c in [*group, "model_revision"]),
            pl.col("__ok").sum().alias("__n"),
            pl.col("__vord").max(),
        )
    else:
        stats = revisions.group_by("__key").agg(
            *(pl.col(c).first() for c in [*group, "model_revision"]),
            pl.len().alias("__n"),
            pl.lit(None, dtype=pl.Int64).alias("__vord"),
        )
    by_group = stats.select(pl.col(group).cast(pl.String).fill_null("\x00")).is_duplicated()
    if not by_group.any():
        return results, 0
    main = pl.DataFrame(
        {
            "__model": [m.name for m in models.values() if m.revision is not None],
            "__main": [m.revision for m in models.values() if m.revision is not None],
        },
        schema={"__model": pl.String, "__main": pl.String},
    )
    revision = pl.col("model_revision").cast(pl.String)
    ranked = (
        stats.with_columns(pl.col("model_name").cast(pl.String).alias("__model"))
        .join(main, on="__model", how="left")
        .with_columns(
            (pl.col("__n") > 0).alias("__has"),
            (revision == pl.col("__main")).fill_null(False).alias("__is_main"),
            pl.col("__vord").is_not_null().alias("__has_version"),
            (revision.is_not_null() & ~revision.is_in(PLACEHOLDER_REVISIONS)).alias("__real"),
            pl.col("__vord").fill_null(-1),
            revision.fill_null("").alias("__rev_sort"),
            revision.is_not_null().alias("__rev_given"),
            key_hash(group, stats.schema).alias("__group"),
        )
    )
    if rule == "per_task":
        order = ["__has", "__is_main", "__has_version", "__real", "__vord", "__n"]
    else:
        order = ["__is_main", "__n"]
    chosen = (
        ranked.sort(
            ["__group", *order, "__rev_sort", "__rev_given"],
            descending=[False] + [True] * len(order) + [False, False],
        )
        .unique(subset="__group", keep="first", maintain_order=True)
        .get_column("__key")
    )
    kept = results.filter(keys.is_in(chosen.implode()))
    return kept, results.height - kept.height
