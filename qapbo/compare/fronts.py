"""Pareto fronts and the geometry that compares them: hypervolume, attainment, coverage, targets and budgets.

Fronts come from Optuna's own Pareto code (``Study.best_trials``, which also honours stored
constraints); the front of a union of studies is taken the same way, on an in-memory study
holding their trials. Hypervolume and the empirical attainment function (EAF) of repeated runs
come from moocore (López-Ibáñez et al.'s C library, the reference implementation benchmarking
studies of multi-objective optimizers use; Optuna 5.0 has no public hypervolume and no EAF).
Both live in (AUC, log10 cost): costs span orders of magnitude. A hand-written 2-D sweep stays in
the tests as the reference moocore's hypervolume is checked against.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Sequence

import moocore
import numpy as np
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


def _log_space(points: Iterable[tuple[float, float]]) -> np.ndarray:
    """``(auc, cost)`` points as rows ``(auc, log10 cost)``; points without a finite AUC and a positive,
    finite cost are left out (they have no place on a log axis)."""
    rows = [(float(a), math.log10(b)) for a, b in points
            if math.isfinite(a) and math.isfinite(b) and b > 0]
    return np.array(rows, dtype=float).reshape(-1, 2)


def hypervolume(points: Iterable[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``(auc, bops)`` points, in (AUC, log10 BOPs), up to ``ref = (auc, bops)``.

    AUC is maximized and log10 BOPs minimized. A point with AUC <= ref AUC or BOPs >= ref BOPs adds
    nothing (it is clipped, not an error), nor does one with BOPs <= 0. Computed by moocore.
    """
    pts = _log_space(points)
    auc_ref, lb_ref = float(ref[0]), math.log10(ref[1])
    pts = pts[(pts[:, 0] > auc_ref) & (pts[:, 1] < lb_ref)]
    if not len(pts):
        return 0.0
    return float(moocore.hypervolume(pts, ref=[auc_ref, lb_ref], maximise=[True, False]))


def attainment_surfaces(
    fronts: Sequence[Iterable[tuple[float, float]]], percentiles: Sequence[float] = (25, 50, 75),
) -> dict[float, np.ndarray]:
    """The p-% attainment surfaces of repeated runs' fronts of ``(auc, cost)`` points (moocore's EAF).

    The p-% surface bounds the region of (AUC, cost) that at least ``ceil(p * n / 100)`` of the
    ``n`` runs attained (a point is attained by a run when some point of its front has at least that
    AUC at no more than that cost), so 50 % is the median run's front, 25 % the best quarter's, 75 %
    the worst quarter's. A run with an empty front counts among the ``n`` and attains nothing.

    Returns, for each percentile, the surface's corners as rows ``(auc, log10 cost)`` in increasing
    cost (and so increasing AUC); between corners the surface is a step: the AUC of a corner holds
    until the next corner's cost (matplotlib's ``step(log_cost, auc, where="post")``). An empty array
    when fewer than that many runs have a point.
    """
    n = len(fronts)
    rows, sets = [], []
    for i, front in enumerate(fronts):
        pts = _log_space(front)
        rows.append(np.column_stack([-pts[:, 0], pts[:, 1]]))  # moocore minimizes: -AUC
        sets += [i + 1] * len(pts)
    pts = np.concatenate(rows) if rows else np.empty((0, 2))
    m = len(set(sets))  # runs with at least one point: moocore's levels are shares of these
    out: dict[float, np.ndarray] = {}
    eaf = moocore.eaf(pts, np.array(sets)) if m else np.empty((0, 3))
    counts = np.rint(eaf[:, 2] * m / 100.0).astype(int)  # runs that attain each corner
    for p in percentiles:
        if not 0 < p <= 100:
            raise ValueError(f"percentile {p} is outside (0, 100]")
        k = max(1, math.ceil(p * n / 100.0 - 1e-9))
        corners = eaf[counts == k, :2]
        corners = np.column_stack([-corners[:, 0], corners[:, 1]])
        out[p] = corners[np.lexsort((corners[:, 0], corners[:, 1]))]
    return out


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
