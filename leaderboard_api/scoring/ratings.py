"""Bradley–Terry ratings from per-task pairwise outcomes, with bootstrap intervals over tasks.

The model: ``P(i beats j) = p_i / (p_i + p_j)`` with ``p = exp(theta)``.

* Outcomes: in every task two models that both have a score meet once: the better score
  (direction-aware) wins 1, a tie gives each ½.  Partial models only meet on the tasks
  they share, so every model that has at least one task score is rated.
* Prior: every pair also plays ``prior`` virtual games split evenly (½ win each).  This
  keeps ratings finite when a model wins everything, connects models that share no task,
  and shrinks a model with little data towards the mean.
* Fit: the log-likelihood depends on the data only through each model's total wins ``W_i``
  and the number of games ``n_ij`` of each pair.  It is maximized by Newton–Jacobi steps
  ``theta_i += (W_i - E_i) / V_i`` (expected wins and their variance), with Anderson
  acceleration (``ANDERSON_DEPTH``).  Plain minorization–maximization
  (``p_i = W_i / sum_j n_ij / (p_i + p_j)``) reaches the same fixed point (the tests check
  it) but needs hundreds of iterations on real leaderboards instead of about ten.
  ``theta`` is centred after every step: the mean rating is exactly ``BASE``.
* Scale: ``rating = BASE + 400 * log10(p)`` (Elo-like: 400 points are 10:1 odds).
* Uncertainty: ``samples`` bootstrap replicates draw the tasks with replacement (a fixed
  ``seed``, Python's ``random``); each is refitted from the point estimate.  Intervals are
  the 2.5% / 97.5% quantiles of the replicate ratings (linear interpolation) and of the
  replicate ranks (``min`` ties; lower and higher order statistic).

Replicates are fitted together in long frames of ``samples x models x models`` cells, in
chunks whose size depends only on the model count, and every sum runs over one fixed row:
the floats do not depend on the number of threads.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from leaderboard_api.scoring.anderson import anderson_mixing
from leaderboard_api.scoring.errors import BadParameter

BASE = 1000.0
SCALE = 400.0 / math.log(10.0)
#: Cells per chunk of the long frames: a few columns of this length stay in the CPU caches,
#: which measured faster than fewer, larger chunks.
CHUNK_CELLS = 1 << 19
_MAX_STEP = 4.0
#: Residual differences kept by the Anderson acceleration.
ANDERSON_DEPTH = 5

RATING_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "rating": pl.Float64(),
    "rating_low": pl.Float64(),
    "rating_high": pl.Float64(),
    "rating_rank": pl.Int64(),
    "rank_low": pl.Int64(),
    "rank_high": pl.Int64(),
}


@dataclass(frozen=True, slots=True)
class Ratings:
    """Bradley–Terry ratings of one benchmark's models, best first (``RATING_SCHEMA``)."""

    frame: pl.DataFrame
    samples: int
    seed: int
    prior: float
    #: Largest number of iterations any fit needed, and whether every fit converged.
    iterations: int
    converged: bool


@dataclass(frozen=True, slots=True)
class _Problem:
    models: list[str]
    n_tasks: int
    #: (model index, task index, wins in that task: beaten + ½ tied), sorted.
    wins: pl.DataFrame
    #: Coverage pattern of each model, and each pattern's task bitmask as 64-bit words.
    pattern_of: list[int]
    masks: list[list[int]]


def bradley_terry(
    scores: pl.DataFrame,
    higher_is_better: Mapping[str, bool],
    *,
    samples: int = 200,
    seed: int = 0,
    prior: float = 0.5,
    tol: float = 1e-6,
    max_iter: int = 200,
) -> Ratings:
    """Ratings with bootstrap intervals from a task-score frame (``model, task, score``).

    ``higher_is_better`` maps each task to its direction (tasks not in it count as higher
    is better).  ``tol`` bounds the last step of every fit (in natural-log odds; the point
    estimate is fitted 1000 times tighter).  Deterministic: the same scores, samples and
    seed give identical floats.
    """
    if samples < 0:
        raise BadParameter("samples", samples, "must be zero or more")
    if not prior > 0.0:
        raise BadParameter("prior", prior, "must be positive")
    problem = _problem(scores, higher_is_better)
    m = len(problem.models)
    if m == 0:
        return Ratings(pl.DataFrame(schema=RATING_SCHEMA), samples, seed, prior, 0, True)
    per_chunk = max(1, CHUNK_CELLS // (m * m))
    layout = _layout(problem, max(1, min(per_chunk, samples)))
    ones = [[1] * problem.n_tasks]
    point, iters, ok = _fit(
        problem,
        layout,
        _total_wins(problem, ones, prior=prior),
        _pair_games(problem, ones),
        prior=prior,
        start=None,
        tol=tol * 1e-3,
        max_iter=max_iter * 5,
    )
    rng = random.Random(seed)
    drawn = [_draw(rng, problem.n_tasks) for _ in range(samples)]
    wins = _total_wins(problem, drawn, prior=prior) if drawn else pl.Series([], dtype=pl.Float64)
    games = _pair_games(problem, drawn) if drawn else pl.Series([], dtype=pl.Float64)
    g2 = len(problem.masks) ** 2
    boot: list[list[float]] = []
    for first in range(0, samples, per_chunk):
        s = min(per_chunk, samples - first)
        thetas, used, done = _fit(
            problem,
            layout,
            wins.slice(first * m, s * m),
            games.slice(first * g2, s * g2),
            prior=prior,
            start=point[0],
            tol=tol,
            max_iter=max_iter,
        )
        boot.extend(thetas)
        iters, ok = max(iters, used), ok and done
    return Ratings(_summarize(problem.models, point[0], boot), samples, seed, prior, iters, ok)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Index columns of the long frames, built once for the largest chunk and sliced.

    Cell ``(b, i, j)`` sits at ``(b * m + i) * m + j``; ``pair`` points into the pair-game
    series (``1 + b * g * g + pattern_i * g + pattern_j``, 0 on the diagonal).
    """

    row: pl.Series
    col: pl.Series
    pair: pl.Series
    spread: pl.Series


def _layout(problem: _Problem, samples: int) -> _Layout:
    m = len(problem.models)
    g = len(problem.masks)
    flat = pl.int_range(0, m * m, dtype=pl.Int64, eager=True)
    i = flat // m
    j = flat % m
    pattern = pl.Series(problem.pattern_of, dtype=pl.Int64)
    pair = (1 + pattern.gather(i) * g + pattern.gather(j)) * (i != j).cast(pl.Int64)
    offdiag = (pair > 0).cast(pl.Int64)
    # One sample's block, shifted for each sample of the chunk.
    row = pl.concat([i + b * m for b in range(samples)])
    col = pl.concat([j + b * m for b in range(samples)])
    pairs = pl.concat([pair + offdiag * (b * g * g) for b in range(samples)])
    spread = pl.int_range(0, samples * m, dtype=pl.Int64, eager=True) // m
    return _Layout(
        row=row.cast(pl.UInt32),
        col=col.cast(pl.UInt32),
        pair=pairs.cast(pl.UInt32),
        spread=spread.cast(pl.UInt32),
    )


def _draw(rng: random.Random, n: int) -> list[int]:
    counts = [0] * n
    for _ in range(n):
        counts[rng.randrange(n)] += 1
    return counts


def _problem(scores: pl.DataFrame, higher_is_better: Mapping[str, bool]) -> _Problem:
    scores = scores.select(
        pl.col("model").cast(pl.String), pl.col("task").cast(pl.String), pl.col("score")
    ).drop_nulls()
    models = sorted(set(scores.get_column("model").to_list()))
    tasks = sorted(set(scores.get_column("task").to_list()))
    sign = pl.DataFrame(
        {"task": tasks, "__sign": [1.0 if higher_is_better.get(t, True) else -1.0 for t in tasks]},
        schema={"task": pl.String, "__sign": pl.Float64},
    ).with_row_index("t")
    index = pl.DataFrame({"model": models}, schema={"model": pl.String}).with_row_index("i")
    wins = (
        scores.join(sign, on="task")
        .join(index, on="model")
        .with_columns(
            ((pl.col("score") * pl.col("__sign")).rank("average").over("t") - 1.0).alias("wins")
        )
        .select(pl.col("i").cast(pl.Int64), pl.col("t").cast(pl.Int64), "wins")
        .sort("i", "t")
    )
    covered: list[list[int]] = [[] for _ in models]
    for i, t in wins.select("i", "t").iter_rows():
        covered[i].append(t)
    words = max(1, (len(tasks) + 63) // 64)
    ids: dict[tuple[int, ...], int] = {}
    masks: list[list[int]] = []
    pattern_of = []
    for tasks_of in covered:
        key = tuple(tasks_of)
        if key not in ids:
            bits = sum(1 << t for t in key)
            ids[key] = len(masks)
            masks.append([(bits >> (64 * w)) & ((1 << 64) - 1) for w in range(words)])
        pattern_of.append(ids[key])
    return _Problem(models, len(tasks), wins, pattern_of, masks)


def _pair_games(problem: _Problem, weights: list[list[int]]) -> pl.Series:
    """Weighted shared tasks of every (sample, pattern, pattern): ``sum_t w_t`` over the tasks
    both patterns cover, by bit planes of the weights and popcounts of the shared masks."""
    g = len(problem.masks)
    words = len(problem.masks[0])
    pairs = pl.DataFrame(
        {
            f"c{w}": [problem.masks[a][w] & problem.masks[b][w] for a in range(g) for b in range(g)]
            for w in range(words)
        },
        schema={f"c{w}": pl.UInt64 for w in range(words)},
    )
    planes = max(max(row) for row in weights).bit_length()
    plane_masks = {
        f"b{k}_{w}": [
            (sum(1 << t for t, c in enumerate(row) if (c >> k) & 1) >> (64 * w)) & ((1 << 64) - 1)
            for row in weights
        ]
        for k in range(planes)
        for w in range(words)
    }
    per_sample = pl.DataFrame(plane_masks, schema=dict.fromkeys(plane_masks, pl.UInt64))
    grid = per_sample.join(pairs, how="cross")
    total = pl.lit(0, dtype=pl.Int64)
    for k in range(planes):
        for w in range(words):
            shared = (pl.col(f"b{k}_{w}") & pl.col(f"c{w}")).bitwise_count_ones()
            total = total + shared.cast(pl.Int64) * (1 << k)
    return grid.select(total.cast(pl.Float64)).to_series()


def _fit(
    problem: _Problem,
    layout: _Layout,
    wins: pl.Series,
    pair_games: pl.Series,
    *,
    prior: float,
    start: list[float] | None,
    tol: float,
    max_iter: int,
) -> tuple[list[list[float]], int, bool]:
    """Maximum-likelihood thetas (centred) of each sample, from its total wins (sample-major,
    ``_total_wins``) and its pattern-pair games (``_pair_games``)."""
    m = len(problem.models)
    s = wins.len() // m
    if m == 1:
        return [[0.0] for _ in range(s)], 0, True
    cells = s * m * m
    # Games of every (sample, i, j): prior + weighted shared tasks; none against oneself.
    with_diagonal = pl.concat([pl.Series([-prior]), pair_games])
    games = with_diagonal.gather(layout.pair.head(cells)) + prior
    row, col, spread = layout.row.head(cells), layout.col.head(cells), layout.spread.head(s * m)
    theta = pl.Series([x for _ in range(s) for x in (start or [0.0] * m)], dtype=pl.Float64)
    history: list[tuple[pl.Series, pl.Series]] = []
    for it in range(1, max_iter + 1):
        new = _step(theta, games=games, row=row, col=col, wins=wins, spread=spread, m=m)
        resid = new - theta
        largest = resid.abs().max()
        if not isinstance(largest, float) or not math.isfinite(largest):
            msg = f"Bradley-Terry fit diverged at iteration {it}"
            raise ArithmeticError(msg)
        if largest < tol:
            return _split(new, s, m), it, True
        history = [*history[-ANDERSON_DEPTH:], (new, resid)]
        theta = new
        if len(history) > 1:
            mix = anderson_mixing([r for _, r in history], s=s, m=m)
            for a, coefs in enumerate(mix):
                step = history[a + 1][0] - history[a][0]
                theta = theta - pl.Series(coefs, dtype=pl.Float64).gather(spread) * step
    return _split(theta, s, m), max_iter, False


def _total_wins(problem: _Problem, weights: list[list[int]], *, prior: float) -> pl.Series:
    """Weighted task wins of every (sample, model), sample-major, plus the prior's half of
    its virtual games (exact: sums of halves times counts)."""
    s, m, n = len(weights), len(problem.models), problem.n_tasks
    drawn = pl.DataFrame(
        {
            "b": [b for b in range(s) for _ in range(n)],
            "t": [t for _ in range(s) for t in range(n)],
            "w": [float(c) for row in weights for c in row],
        },
        schema={"b": pl.Int64, "t": pl.Int64, "w": pl.Float64},
    ).filter(pl.col("w") > 0)
    won = (
        drawn.join(problem.wins, on="t")
        .group_by("b", "i")
        .agg((pl.col("w") * pl.col("wins")).sum().alias("won"))
    )
    grid = pl.DataFrame(
        {
            "b": [b for b in range(s) for _ in range(m)],
            "i": [i for _ in range(s) for i in range(m)],
        },
        schema={"b": pl.Int64, "i": pl.Int64},
    )
    won_all = grid.join(won, on=["b", "i"], how="left").sort("b", "i")["won"].fill_null(0.0)
    return won_all + prior * (m - 1) / 2.0


def _step(
    theta: pl.Series,
    *,
    games: pl.Series,
    row: pl.Series,
    col: pl.Series,
    wins: pl.Series,
    spread: pl.Series,
    m: int,
) -> pl.Series:
    """One centred Newton–Jacobi step for every model of every sample.

    With ``p = exp(theta)``: expected wins ``E_i = p_i sum_j n_ij / (p_i + p_j)`` and their
    variance ``V_i = p_i sum_j n_ij p_j / (p_i + p_j)^2`` (no cancellation for sure wins).
    """
    p = theta.exp()
    p_i = p.gather(row)
    p_j = p.gather(col)
    both = p_i + p_j
    rate = games / both
    rows = theta.len()
    expected = rate.reshape((rows, m)).arr.sum() * p
    variance = (rate * (p_j / both)).reshape((rows, m)).arr.sum() * p
    new = theta + ((wins - expected) / variance).clip(-_MAX_STEP, _MAX_STEP)
    return new - new.reshape((rows // m, m)).arr.mean().gather(spread)


def _split(theta: pl.Series, s: int, m: int) -> list[list[float]]:
    values = theta.to_list()
    return [values[b * m : (b + 1) * m] for b in range(s)]


def _summarize(models: list[str], point: list[float], boot: list[list[float]]) -> pl.DataFrame:
    m = len(models)
    rated = pl.DataFrame(
        {"model": models, "rating": [BASE + SCALE * x for x in point]},
        schema={"model": pl.String, "rating": pl.Float64},
    ).with_columns(
        pl.col("rating").rank("min", descending=True).cast(pl.Int64).alias("rating_rank")
    )
    if boot:
        long = pl.DataFrame(
            {
                "b": [b for b in range(len(boot)) for _ in range(m)],
                "model": [name for _ in boot for name in models],
                "r": [BASE + SCALE * x for row in boot for x in row],
            },
            schema={"b": pl.Int64, "model": pl.String, "r": pl.Float64},
        ).with_columns(pl.col("r").rank("min", descending=True).over("b").alias("k"))
        bands = long.group_by("model").agg(
            pl.col("r").quantile(0.025, "linear").alias("rating_low"),
            pl.col("r").quantile(0.975, "linear").alias("rating_high"),
            pl.col("k").quantile(0.025, "lower").cast(pl.Int64).alias("rank_low"),
            pl.col("k").quantile(0.975, "higher").cast(pl.Int64).alias("rank_high"),
        )
        rated = rated.join(bands, on="model", how="left")
    else:
        rated = rated.with_columns(
            pl.col("rating").alias("rating_low"),
            pl.col("rating").alias("rating_high"),
            pl.col("rating_rank").alias("rank_low"),
            pl.col("rating_rank").alias("rank_high"),
        )
    return rated.select(list(RATING_SCHEMA)).sort(["rating", "model"], descending=[True, False])
