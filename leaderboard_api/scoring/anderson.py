"""Anderson acceleration for many small fixed-point problems solved side by side."""

from __future__ import annotations

import itertools

import polars as pl


def anderson_mixing(resids: list[pl.Series], *, s: int, m: int) -> list[list[float]]:
    """Per sample, the Anderson mixing coefficients of the last residual differences.

    ``resids`` are the last few residuals ``g(x) - x`` of ``s`` problems of size ``m``
    (sample-major).  Solves ``min |r_k - dR gamma|`` through its small normal equations,
    one per sample; the caller then steps ``x = g_k - sum_a gamma_a (g_{a+1} - g_a)``.
    """
    diffs = [b - a for a, b in itertools.pairwise(resids)]
    k = len(diffs)
    frame = pl.DataFrame({**{f"d{a}": diffs[a] for a in range(k)}, "r": resids[-1]})

    def dot(x: str, y: str) -> pl.Expr:
        return (pl.col(x) * pl.col(y)).reshape((s, m)).arr.sum().alias(f"{x}.{y}")

    pairs = [(f"d{a}", f"d{b}") for a in range(k) for b in range(a, k)]
    sums = frame.select(
        [dot(x, y) for x, y in pairs] + [dot(f"d{a}", "r") for a in range(k)]
    ).to_dict(as_series=False)
    out = [[0.0] * s for _ in range(k)]
    for sample in range(s):
        matrix = [[0.0] * k for _ in range(k)]
        for a in range(k):
            for b in range(a, k):
                matrix[a][b] = matrix[b][a] = sums[f"d{a}.d{b}"][sample]
        gamma = solve_small(matrix, [sums[f"d{a}.r"][sample] for a in range(k)])
        for a in range(k):
            out[a][sample] = gamma[a]
    return out


def solve_small(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with a tiny ridge; zeros when the system is degenerate."""
    k = len(rhs)
    ridge = 1e-12 * sum(matrix[a][a] for a in range(k))
    if not ridge > 0.0:
        return [0.0] * k
    aug = [[*row[:a], row[a] + ridge, *row[a + 1 :], rhs[a]] for a, row in enumerate(matrix)]
    for col in range(k):
        pivot = max(range(col, k), key=lambda r: abs(aug[r][col]))
        if aug[pivot][col] == 0.0:
            return [0.0] * k
        aug[col], aug[pivot] = aug[pivot], aug[col]
        for r in range(col + 1, k):
            f = aug[r][col] / aug[col][col]
            aug[r] = [x - f * y for x, y in zip(aug[r], aug[col], strict=True)]
    gamma = [0.0] * k
    for r in range(k - 1, -1, -1):
        tail = sum(aug[r][c] * gamma[c] for c in range(r + 1, k))
        gamma[r] = (aug[r][k] - tail) / aug[r][r]
    return gamma
