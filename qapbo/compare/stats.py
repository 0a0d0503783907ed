"""Replicate statistics for comparing methods by a number each replicate scores (hypervolume).

One seed per method is one draw: five seeds of the same quickstart search ended at hypervolumes
from 1.025 to 1.273, a spread as large as the gaps a single-seed table calls a lead. So a method is
summarized by the median of its replicates with a 95 % percentile-bootstrap interval, and a pair
by the probability that one's replicate beats the other's (Vargha and Delaney's A, ties counted
half) and a two-sided Mann-Whitney U test. Both are rank statistics: they assume nothing about
the shape of the distribution, which five replicates could not check anyway.

The verdict rule (:func:`compare_pair`): a method *leads* another when the rank test's two-sided
p-value is below ``alpha`` (0.05); otherwise the two are *not distinguishable*. The intervals are
reported beside the verdict, not used by it: two 95 % intervals may overlap while the samples
differ, and with five replicates the percentile-bootstrap interval of a median spans the whole
sample (the resampled median is the smallest value with probability 0.058 > 0.025). With the exact
test no verdict is possible below 4 replicates per method: 3 against 3 has a smallest two-sided
p-value of 2/20 = 0.1; 4 against 4 has 2/70 = 0.029, 5 against 5 has 2/252 = 0.008.

Numbers are computed here and rendered by the caller (:func:`verdict_sentence` is one rendering).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

#: Bootstrap resamples. At 10,000 the Monte-Carlo error of the 2.5 % quantile's probability level is
#: sqrt(0.025 * 0.975 / 10,000) = 0.16 percentage points.
RESAMPLES = 10_000
CONFIDENCE = 0.95
ALPHA = 0.05  # a verdict needs the rank test's two-sided p-value below this
#: The exact rank test enumerates every split of the pooled replicates into the two groups up to this
#: many splits (9 against 9 is 48,620); beyond it, the normal approximation with tie correction.
EXACT_SPLITS = 100_000


class Interval(NamedTuple):
    """A median and its percentile-bootstrap interval."""

    median: float
    low: float
    high: float
    n: int  # replicates
    confidence: float = CONFIDENCE


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                    seed: int = 0) -> Interval:
    """The median of ``values`` and its percentile-bootstrap interval at ``confidence``.

    ``resamples`` samples of ``len(values)`` drawn with replacement (numpy's PCG64 seeded with
    ``seed``, so the interval is reproducible); the interval's ends are the ``(1 - confidence) / 2``
    and ``(1 + confidence) / 2`` quantiles of their medians. One value gives a zero-width interval
    (no spread can be estimated from one replicate).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or not len(x):
        raise ValueError("median_interval needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, len(x), size=(resamples, len(x)))], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return Interval(float(np.median(x)), float(low), float(high), len(x), confidence)


def superiority(a: Sequence[float], b: Sequence[float]) -> float:
    """Probability that a replicate of ``a`` exceeds one of ``b``, ties counted half (Vargha-Delaney A).

    Over all ``len(a) * len(b)`` pairs; 0.5 is no tendency, 1.0 every replicate of ``a`` above every
    one of ``b``. It equals Mann-Whitney's U of ``a`` divided by ``len(a) * len(b)``.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(x) or not len(y):
        raise ValueError("superiority needs at least one value on each side")
    d = x[:, None] - y[None, :]
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size)


def rank_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test of ``a`` against ``b`` (scipy).

    Exact for small samples: while the pooled replicates split into at most :data:`EXACT_SPLITS`
    groupings, the p-value is read off the permutation distribution of U over all of them (mid-ranks
    for ties, so it stays exact with ties, where scipy's ``method="exact"`` is not); beyond, the
    normal approximation with tie and continuity correction.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(x) or not len(y):
        raise ValueError("rank_test needs at least one value on each side")
    if math.comb(len(x) + len(y), len(x)) <= EXACT_SPLITS:
        method = stats.PermutationMethod(n_resamples=np.inf)  # every split: the exact distribution
    else:
        method = "asymptotic"
    return float(stats.mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)


class PairVerdict(NamedTuple):
    """Two methods compared by their replicates' scores: the numbers and the verdict they support."""

    a: str
    b: str
    a_interval: Interval
    b_interval: Interval
    superiority: float  # P(a's replicate > b's), ties half
    p_value: float  # two-sided Mann-Whitney
    alpha: float
    distinguishable: bool  # p_value < alpha

    @property
    def leader(self) -> str | None:
        """The method that leads (the one more likely to score higher), or None if not distinguishable."""
        if not self.distinguishable:
            return None
        return self.a if self.superiority > 0.5 else self.b


def compare_pair(a: Sequence[float], b: Sequence[float], names: tuple[str, str] = ("a", "b"),
                 alpha: float = ALPHA, seed: int = 0) -> PairVerdict:
    """Medians with intervals, A and the rank test for two methods' replicate scores; see the module's rule."""
    p = rank_test(a, b)
    return PairVerdict(names[0], names[1], median_interval(a, seed=seed), median_interval(b, seed=seed),
                       superiority(a, b), p, alpha, p < alpha)


def _interval_text(i: Interval, digits: int) -> str:
    return f"{i.median:.{digits}f} [{i.low:.{digits}f}, {i.high:.{digits}f}]"


def verdict_sentence(v: PairVerdict, what: str = "hypervolume", digits: int = 3) -> str:
    """One sentence: who leads (or "not distinguishable"), each median with its interval, A and p."""
    if v.leader == v.b:  # the leader comes first, with its own median and its P(leader > other)
        v = v._replace(a=v.b, b=v.a, a_interval=v.b_interval, b_interval=v.a_interval, superiority=1.0 - v.superiority)
    if v.leader is None:
        head = f"{v.a} and {v.b} are not distinguishable on {what}"
    else:
        head = f"{v.a} leads {v.b} on {what}"
    ci = f"{v.a_interval.confidence:.0%}".replace("%", " %")
    return (f"{head}: median {_interval_text(v.a_interval, digits)} against {_interval_text(v.b_interval, digits)} "
            f"({ci} bootstrap intervals; {v.a_interval.n} and {v.b_interval.n} replicates), "
            f"P({v.a} > {v.b}) = {v.superiority:.2f}, Mann-Whitney p = {v.p_value:.3g}")
