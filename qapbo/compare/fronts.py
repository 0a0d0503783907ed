"""Pareto fronts and the geometry that compares them: hypervolume, coverage, targets and budgets.

Fronts come from Optuna's own Pareto code (``Study.best_trials``, which also honours stored
constraints); the front of a union of studies is taken the same way, on an in-memory study
holding their trials. The 2-D hypervolume is written here: Optuna 5.0 has no public one (its
private one raises on points beyond the reference), and in 2-D it is a short sorted sweep.
Hypervolume lives in (AUC, log10 cost): costs span orders of magnitude.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial

from qapbo.records import DIRECTIONS

if TYPE_CHECKING:  # results builds on the fronts here
    from qapbo.compare.results import StudyResult


def best_trials_of(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """Optuna's ``best_trials`` (non-dominated and feasible) of an in-memory study holding ``trials``,
    which it numbers 0, 1, ... in the given order; Optuna's "new study created" line is kept quiet."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        s = optuna.create_study(directions=list(directions))
        s.add_trials(trials)
        return s.best_trials
    finally:
        optuna.logging.set_verbosity(verbosity)


def pareto_front(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Non-dominated feasible trials (AUC up, cost down), sorted by cost, via Optuna's Pareto code."""
    trials = list(trials)
    if not trials:
        return []
    return sorted(best_trials_of(trials, DIRECTIONS), key=lambda t: (t.values[1], -t.values[0]))


def hypervolume(points: Iterable[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``(auc, bops)`` points, in (AUC, log10 BOPs), up to ``ref = (auc, bops)``.

    A point with AUC <= ref AUC or BOPs >= ref BOPs adds nothing (it is clipped, not an error).
    """
    auc_ref, lb_ref = ref[0], math.log10(ref[1])
    pts = sorted((math.log10(b), a) for a, b in points if a > auc_ref and b > 0 and math.log10(b) < lb_ref)
    area, best = 0.0, auc_ref
    for i, (lb, a) in enumerate(pts):
        best = max(best, a)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else lb_ref
        area += (nxt - lb) * (best - auc_ref)
    return area


def covers(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Weak Pareto dominance: ``a`` is at least as good as ``b`` in both AUC and BOPs."""
    return a[0] >= b[0] and a[1] <= b[1]


def coverage(front_a: Sequence[tuple[float, float]], front_b: Sequence[tuple[float, float]]) -> float:
    """C(A, B): the share of B's points covered by some point of A (Zitzler's set coverage)."""
    if not front_b:
        return float("nan")
    return sum(any(covers(a, b) for a in front_a) for b in front_b) / len(front_b)


def min_cost_at_auc(points: Iterable[tuple[float, float]], target: float) -> float | None:
    """The smallest BOPs among points with AUC >= ``target`` (None if none reaches it)."""
    ok = [b for a, b in points if a >= target]
    return min(ok) if ok else None


def best_auc_within(points: Iterable[tuple[float, float]], budget: float) -> float | None:
    """The best AUC among points with BOPs <= ``budget`` (None if none fits)."""
    ok = [a for a, b in points if b <= budget]
    return max(ok) if ok else None


def values(trials: Iterable[FrozenTrial]) -> list[tuple[float, float]]:
    return [(t.values[0], t.values[1]) for t in trials]


def reference_point(results: Sequence[StudyResult]) -> tuple[float, float]:
    """AUC 0.5 (a random tagger) and the power of ten above the largest BOPs of the comparison."""
    top = max(t.values[1] for r in results for t in r.trials)
    return 0.5, 10.0 ** math.ceil(math.log10(top) + 1e-9)
