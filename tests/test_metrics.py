"""Metrics against hand-computed values."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from qapbo.nn.metrics import classification_metrics, layer_efficiency, macro_auc, neural_efficiency, sparsity
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec


def test_hand_computed_two_class_case():
    # class 1 scores: positives 0.9, 0.8, 0.4, 0.3; negatives 0.7, 0.2, 0.1, 0.05
    p1 = np.array([0.9, 0.8, 0.4, 0.3, 0.7, 0.2, 0.1, 0.05])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    proba = np.column_stack([1 - p1, p1])
    m = classification_metrics(proba, y, ["bkg", "sig"])
    # pairs (pos > neg): 0.9,0.8 beat all 4; 0.4,0.3 beat 3 -> 14 of 16
    assert m["auc_per_class"]["sig"] == pytest.approx(14 / 16)
    assert m["auc_per_class"]["bkg"] == pytest.approx(14 / 16)
    assert m["auc"] == pytest.approx(14 / 16)
    # argmax: predicted 1 for p1 > 0.5: rows 0,1,4 -> correct rows 0,1,5,6,7 -> 5/8
    assert m["accuracy"] == pytest.approx(5 / 8)
    # signal efficiency 50 % is reached at threshold 0.8 (2 of 4 positives) with no negative above: 0
    assert m["bkg_eff_at_sig50"]["sig"] == pytest.approx(0.0)
    # class "bkg" (scores 1 - p1): positives 0.3, 0.8, 0.9, 0.95; negatives 0.1, 0.2, 0.6, 0.7.
    # 2 of 4 positives above 0.8 -> threshold 0.9 gives tpr 0.5 (0.95, 0.9) with no negative: 0
    assert m["bkg_eff_at_sig50"]["bkg"] == pytest.approx(0.0)


def test_background_efficiency_interpolates_between_roc_points():
    # positives 0.9, 0.5, 0.3 and negatives 0.6, 0.4, 0.2, 0.1: ROC points (fpr, tpr)
    # (0, 1/3) at 0.9, (1/4, 1/3) at 0.6, (1/4, 2/3) at 0.5. TPR 0.5 lies halfway up the
    # vertical segment at fpr 1/4, so the background efficiency is 0.25.
    p1 = np.array([0.9, 0.5, 0.3, 0.6, 0.4, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    m = classification_metrics(np.column_stack([1 - p1, p1]), y, ["b", "s"])
    assert m["bkg_eff_at_sig50"]["s"] == pytest.approx(0.25)
    # 4 positives, target 0.5 between (0, .25) and (.5, .75): halfway -> 0.25
    p1 = np.array([0.9, 0.5, 0.4, 0.3, 0.6, 0.2])
    y = np.array([1, 0, 1, 1, 0, 1])  # positives 0.9, 0.4, 0.3, 0.2; negatives 0.6, 0.5
    m = classification_metrics(np.column_stack([1 - p1, p1]), y, ["b", "s"])
    # points: (0, .25)@0.9, (.5, .25)@0.6, (1, .25)@0.5, (1, .5)@0.4 -> lowest fpr at tpr .5 is 1
    assert m["bkg_eff_at_sig50"]["s"] == pytest.approx(1.0)


def test_macro_auc_equals_sklearn_ovr_macro():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 500)
    logits = rng.normal(size=(500, 5)) + np.eye(5)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = classification_metrics(proba, y, list("gqwzt"))
    assert m["auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12)
    assert macro_auc(proba, y) == pytest.approx(m["auc"], abs=1e-12)


def test_sparsity_per_layer_and_total():
    model = build_model(ModelSpec(hidden=(4,), n_inputs=2, n_classes=2), seed=0)
    model.masks()[0].view(-1)[:6] = 0  # 6 of 8
    s = sparsity(model)
    assert s["sparsity_per_layer"] == [0.75, 0.0]
    assert s["sparsity"] == pytest.approx(6 / 16)


def test_background_efficiency_on_a_diagonal_roc_segment():
    # positives 0.9, 0.5, 0.5, 0.1; negatives 0.5, 0.3. The tie at 0.5 (2 positives, 1 negative)
    # makes a diagonal segment from (0, 0.25) to (0.5, 0.75); TPR 0.5 is halfway: fpr 0.25.
    p1 = np.array([0.9, 0.5, 0.5, 0.1, 0.5, 0.3])
    y = np.array([1, 1, 1, 1, 0, 0])
    m = classification_metrics(np.column_stack([1 - p1, p1]), y, ["b", "s"])
    assert m["bkg_eff_at_sig50"]["s"] == pytest.approx(0.25)


def test_efficiency_all_microstates_equally_likely_is_one():
    # width 3: all 8 patterns, each 5 times -> entropy 3 bits -> efficiency 3 / 3 = 1
    patterns = np.array([[(k >> j) & 1 for j in range(3)] for k in range(8)], dtype=float)
    acts = np.repeat(patterns, 5, axis=0) * 2 - 1  # +1 active, -1 inactive
    assert layer_efficiency(acts) == pytest.approx(1.0)


def test_efficiency_one_microstate_is_zero():
    acts = np.full((50, 4), 0.7)
    assert layer_efficiency(acts) == 0.0
    assert neural_efficiency([acts, np.ones((50, 2))], auc=0.9)["network_efficiency"] == 0.0


def test_efficiency_closed_form_and_aiq():
    # width 2; microstates 00 (half the samples), 01 and 11 (a quarter each): H = 1.5 bits -> 0.75
    acts = np.array([[-1, -1]] * 4 + [[-1, 1]] * 2 + [[1, 1]] * 2, dtype=float)
    assert layer_efficiency(acts) == pytest.approx(0.75)
    # zero is not active (x > 0): a column of zeros is one constant neuron
    wide = np.zeros((16, 9))
    wide[:, 0] = np.arange(16) % 2  # one informative neuron of nine: 1 bit / 9
    assert layer_efficiency(wide) == pytest.approx(1 / 9)
    e = neural_efficiency([acts, np.repeat(patterns2(), 3, axis=0)], auc=0.9)
    assert e["layer_efficiency"] == pytest.approx([0.75, 1.0])
    assert e["network_efficiency"] == pytest.approx(np.sqrt(0.75))
    assert e["aiq"] == pytest.approx((0.9 ** 2 * np.sqrt(0.75)) ** (1 / 3))


def patterns2():
    return np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=float)


def test_evaluate_records_efficiency_for_every_layer():
    from qapbo.nn.metrics import evaluate

    model = build_model(ModelSpec(hidden=(8, 4), n_inputs=16, n_classes=5, weight_bits=4), seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    y = np.arange(300) % 5
    m = evaluate(model, x, y, list("gqwzt"))
    assert len(m["layer_efficiency"]) == 3  # two hidden layers and the output layer
    assert all(0.0 <= e <= 1.0 for e in m["layer_efficiency"])
    assert 0.0 <= m["aiq"] <= 1.0
