"""Small-sample statistics for benchmarks that repeat a run over seeds: mean and standard deviation, Student's
t quantile, and the t-based confidence interval of a paired difference. Pure Python (no SciPy here)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

#: Simpson intervals per unit of t in the numerical t CDF, and the bisection's stopping width.
_SIMPSON_PER_UNIT = 400
_BISECTION_TOL = 1e-9


def mean_sd(values: Sequence[float]) -> "tuple[float, float]":
    """Mean and sample standard deviation (n - 1 in the denominator; nan for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_sd: expected at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _t_density(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (Simpson's rule on the density)."""
    if df <= 0:
        raise ValueError(f"t_cdf: expected df > 0, got {df}")
    a = abs(t)
    steps = max(2, 2 * math.ceil(a * _SIMPSON_PER_UNIT / 2))
    h = a / steps
    total = _t_density(0.0, df) + _t_density(a, df)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * _t_density(i * h, df)
    half = min(total * h / 3, 0.5)
    return 0.5 + half if t >= 0 else 0.5 - half


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p for Student's t with ``df`` degrees of freedom (bisection on t_cdf)."""
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: expected 0 < p < 1, got {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    while hi - lo > _BISECTION_TOL:
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class PairedDifference:
    """b - a over paired samples: the mean difference, its sample sd, the two-sided interval at ``level``
    (mean ± t_{(1+level)/2, n-1} · sd / sqrt(n)) and n."""

    mean: float
    sd: float
    low: float
    high: float
    n: int
    level: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedDifference:
    """The paired difference b - a (element i of each comes from the same seed) with its t interval."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference: expected as many b as a, got {len(b)} and {len(a)}")
    if len(a) < 2:
        raise ValueError("paired_difference: an interval needs at least two pairs")
    diffs = [y - x for x, y in zip(a, b)]
    mean, sd = mean_sd(diffs)
    half = t_quantile((1 + level) / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return PairedDifference(mean, sd, mean - half, mean + half, len(diffs), level)
