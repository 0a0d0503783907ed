"""moocore's hypervolume against the hand-written 2-D sweep it replaced, and attainment surfaces by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from qapbo.compare.fronts import attainment_surfaces, hypervolume


def reference_hypervolume(points, ref):
    """The 2-D sweep qapbo used before moocore: area dominated in (AUC up, log10 cost down) up to ``ref``."""
    auc_ref, lb_ref = ref[0], math.log10(ref[1])
    pts = sorted((math.log10(b), a) for a, b in points if a > auc_ref and b > 0 and math.log10(b) < lb_ref)
    area, best = 0.0, auc_ref
    for i, (lb, a) in enumerate(pts):
        best = max(best, a)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else lb_ref
        area += (nxt - lb) * (best - auc_ref)
    return area


def test_hand_computed_front():
    ref = (0.5, 1e6)  # log10: 6
    # strips [3,4] x .40 + [4,5] x .43 + [5,6] x .45 = 1.28; (0.91, 1e5) is dominated by (0.95, 1e5)
    front = [(0.90, 1e3), (0.93, 1e4), (0.95, 1e5), (0.91, 1e5)]
    assert hypervolume(front, ref) == pytest.approx(1.28)
    assert reference_hypervolume(front, ref) == pytest.approx(1.28)
    # clipped, not errors: beyond the reference cost, below the reference AUC, BOPs 0, NaN AUC
    assert hypervolume([(0.9, 1e7), (0.4, 1e2), (0.9, 0.0), (float("nan"), 1e3)], ref) == 0.0
    assert hypervolume([(0.9, 1e7), (0.9, 1e3)], ref) == pytest.approx(1.2)
    assert hypervolume([], ref) == 0.0
    # a point on the reference AUC adds nothing either
    assert hypervolume([(0.5, 1e2)], ref) == 0.0


point = st.tuples(st.floats(0.3, 1.0), st.floats(0.5, 1e7))


@settings(max_examples=300, deadline=None)
@given(st.lists(point, max_size=30), st.sampled_from([(0.5, 1e6), (0.6, 1e7), (0.55, 1e4)]))
def test_moocore_equals_the_hand_written_sweep(points, ref):
    assert hypervolume(points, ref) == pytest.approx(reference_hypervolume(points, ref), rel=1e-9, abs=1e-12)


def test_attainment_surfaces_by_hand():
    # four runs; the fourth found nothing (it still counts: 2 of 4 runs is the median)
    runs = [[(0.90, 1e3), (0.95, 1e5)], [(0.92, 1e4)], [(0.85, 1e2), (0.96, 1e6)], []]
    s = attainment_surfaces(runs, percentiles=(25, 50, 75, 100))
    # best AUC per run at log10 cost x: run 1 .90 from 3, .95 from 5; run 2 .92 from 4; run 3 .85 from 2, .96 from 6
    # at least 1 run (25 %): the union's staircase
    assert_allclose(s[25], [[0.85, 2], [0.90, 3], [0.92, 4], [0.95, 5], [0.96, 6]])
    # at least 2 runs (50 %): the second best AUC on each stretch: [3,4) .85, [4,5) .90, [5,6) .92, [6,) .95
    assert_allclose(s[50], [[0.85, 3], [0.90, 4], [0.92, 5], [0.95, 6]])
    # at least 3 runs (75 %): [4,6) .85, [6,) .92
    assert_allclose(s[75], [[0.85, 4], [0.92, 6]])
    assert s[100].shape == (0, 2)  # the empty run attains nothing
    # three runs: 50 % needs ceil(1.5) = 2 of them
    s3 = attainment_surfaces(runs[:3], percentiles=(50,))
    assert_allclose(s3[50], [[0.85, 3], [0.90, 4], [0.92, 5], [0.95, 6]])


def test_attainment_of_identical_runs_is_their_front():
    front = [(0.90, 1e3), (0.93, 1e4)]
    s = attainment_surfaces([front] * 5)
    for p in (25, 50, 75):
        assert_allclose(s[p], [[0.90, 3], [0.93, 4]])
    assert attainment_surfaces([[], []])[50].shape == (0, 2)
    with pytest.raises(ValueError, match="outside"):
        attainment_surfaces([front], percentiles=(0,))
    assert isinstance(s[50], np.ndarray)
