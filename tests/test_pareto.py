"""Fronts, hypervolume and coverage against hand-computed values."""

import math

import optuna
import pytest

from qapbo.compare.fronts import best_auc_within, coverage, hypervolume, min_cost_at_auc, pareto_front, values
from qapbo.compare.report import compare
from qapbo.compare.results import StudyResult
from qapbo.errors import NoResultsError


def trial(auc, bops, number=0, seed=None):
    params, dists = ({}, {}) if seed is None else (
        {"seed": seed}, {"seed": optuna.distributions.CategoricalDistribution([0, 1])})
    t = optuna.trial.create_trial(values=[auc, bops], params=params, distributions=dists,
                                  user_attrs={"seconds": 1.0, "epochs": 2})
    t.number = number
    return t


POINTS = [(0.90, 1e3), (0.95, 1e5), (0.93, 1e4), (0.92, 1e5), (0.80, 1e6), (0.93, 1e4 * 2)]


def test_front_by_hand():
    front = pareto_front([trial(a, b, i) for i, (a, b) in enumerate(POINTS)])
    # (0.92, 1e5) is dominated by (0.95, 1e5) and (0.93, 1e4); (0.80, 1e6) by all; (0.93, 2e4) by (0.93, 1e4)
    assert values(front) == [(0.90, 1e3), (0.93, 1e4), (0.95, 1e5)]


def test_hypervolume_by_hand():
    ref = (0.5, 1e6)  # log10: 6
    # one point (0.9, 1e3): width 6 - 3 = 3, height 0.4 -> 1.2
    assert hypervolume([(0.9, 1e3)], ref) == pytest.approx(1.2)
    # front (0.90, 1e3), (0.93, 1e4), (0.95, 1e5): strips [3,4] x .40 + [4,5] x .43 + [5,6] x .45 = 1.28
    assert hypervolume([(0.90, 1e3), (0.93, 1e4), (0.95, 1e5)], ref) == pytest.approx(0.40 + 0.43 + 0.45)
    # dominated points add nothing; points beyond the reference are clipped, not errors
    assert hypervolume(POINTS, ref) == pytest.approx(1.28)
    assert hypervolume([(0.9, 1e7), (0.4, 1e2)], ref) == 0.0
    assert hypervolume([], ref) == 0.0


def test_coverage_both_ways_constructed():
    a = [(0.90, 1e3), (0.95, 1e5)]
    b = [(0.89, 1e3), (0.96, 1e5), (0.90, 1e4), (0.97, 1e6)]
    # a covers (0.89, 1e3) [by (0.90,1e3)] and (0.90, 1e4) [by (0.90,1e3)]: 2 of 4
    assert coverage(a, b) == 0.5
    # b covers (0.95, 1e5) [by (0.96,1e5)]; nothing in b covers (0.90, 1e3): 1 of 2
    assert coverage(b, a) == 0.5
    assert coverage(a, a) == 1.0  # weak dominance: a front covers itself
    assert math.isnan(coverage(a, []))


def test_targets_and_budgets():
    front = [(0.90, 1e3), (0.93, 1e4), (0.95, 1e5)]
    assert min_cost_at_auc(front, 0.92) == 1e4
    assert min_cost_at_auc(front, 0.96) is None
    assert best_auc_within(front, 5e4) == 0.93
    assert best_auc_within(front, 10) is None


def test_compare_table_with_seeds():
    qap = StudyResult("q", "qap", [trial(0.90, 1e3, 0, seed=0), trial(0.94, 1e5, 1, seed=0),
                                   trial(0.91, 1e3, 2, seed=1), trial(0.93, 1e5, 3, seed=1)], synthetic=True)
    search = StudyResult("s", "search", [trial(0.92, 1e3, 0), trial(0.95, 1e4, 1)], synthetic=True)
    cmp = compare([qap, search], ref=(0.5, 1e6), auc_targets=[0.93], budgets=[1e4])
    rows = {r["study"]: r for r in cmp.rows}
    # seed 0: [3,5] x .40 + [5,6] x .44 = 1.24; seed 1: [3,5] x .41 + [5,6] x .43 = 1.25
    assert rows["q"]["hypervolume_mean"] == pytest.approx(1.245)
    assert rows["q"]["hypervolume_std"] == pytest.approx(math.sqrt(2) * 0.005)
    assert rows["s"]["hypervolume"] == pytest.approx(0.42 + 2 * 0.45)
    assert rows["s"]["min_cost_at_auc"]["0.93"] == 1e4 and rows["q"]["min_cost_at_auc"]["0.93"] == 1e5
    assert rows["q"]["best_auc_within_budget"]["10000.0"] == 0.91
    assert rows["q"]["epochs"] == 8 and rows["q"]["seconds"] == 4.0
    (c,) = cmp.coverage
    # search front (0.92,1e3),(0.95,1e4) covers all of q's front (0.91,1e3),(0.94,1e5); q covers none of s
    assert (c["c_ab"], c["c_ba"]) == (0.0, 1.0)
    md = cmp.to_markdown()
    assert "SYNTHETIC" in md and "reference point AUC = 0.5, BOPs = 1e+06" in md
    assert "1.2450 ± 0.0071 (2 seeds/folds)" in md


def test_compare_without_results_is_an_error():
    with pytest.raises(NoResultsError, match="no finished trials"):
        compare([StudyResult("s", "search", [], synthetic=False)])
