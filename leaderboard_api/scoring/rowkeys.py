"""Row identities of leaderboard tables: a model, or one experiment variant of a model.

Scoring groups by one string per table row.  A base model's rows use its name; an
experiment variant's rows use ``<model name>\\x1f<variant>`` (the ASCII unit separator never
occurs in names), so every aggregation treats a variant as a row of its own while the
presenters recover the model and the variant with ``split_key``.
"""

from __future__ import annotations

import polars as pl

SEPARATOR = "\x1f"


def row_key(model: str, variant: str | None) -> str:
    """The table row identity of ``model``'s ``variant`` (its name for the base model)."""
    return model if not variant else f"{model}{SEPARATOR}{variant}"


def split_key(key: str) -> tuple[str, str | None]:
    """``(model name, variant or None)`` of a row identity."""
    model, sep, variant = key.partition(SEPARATOR)
    return model, (variant if sep else None)


def row_key_expr(frame: pl.LazyFrame) -> pl.Expr:
    """``model_name`` as row identities (Categorical), for a results frame."""
    if "variant" not in frame.collect_schema().names():
        return pl.col("model_name")
    variant = pl.col("variant").cast(pl.String)
    keyed = pl.concat_str([pl.col("model_name").cast(pl.String), pl.lit(SEPARATOR), variant])
    return (
        pl.when(variant.is_null() | (variant == ""))
        .then(pl.col("model_name").cast(pl.String))
        .otherwise(keyed)
        .cast(pl.Categorical)
        .alias("model_name")
    )
