"""BOPs against the PROTOCOL's worked values and hand-computed mixed-precision cases."""

import math

import pytest
import torch

from qapbo.cost.bops import linear_bops, model_bops
from qapbo.cost.definitions import BOPS_DEFINITION
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec

LAYERS = [(16, 64), (64, 32), (32, 32), (32, 5)]


def formula_total(bits: int, p: float = 1.0) -> float:
    total = 0.0
    for i, (n, m) in enumerate(LAYERS):
        a = 32 if i == 0 else bits
        total += linear_bops(n, m, bits, a, p)
    return total


@pytest.mark.parametrize(
    "bits,expected",
    [(32, 4_652_832), (12, 1_003_552), (8, 583_968), (6, 412_960), (4, 267_808)],
)
def test_protocol_values_formula_and_model(bits, expected):
    assert formula_total(bits) == pytest.approx(expected, abs=1e-6)
    report = model_bops(build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=bits), seed=0))
    assert report.total == pytest.approx(expected, abs=1e-6)
    assert round(report.total) == expected
    assert report.definition == BOPS_DEFINITION
    assert [layer.a_bits for layer in report.layers] == [32, bits, bits, bits]


def test_protocol_value_six_bits_twenty_percent():
    assert formula_total(6, 0.2) == pytest.approx(162_592, abs=1e-6)


def test_first_layer_by_hand():
    # 64 * 16 * (1 * 32 * 32 + 32 + 32 + log2 16) = 1024 * 1092
    assert linear_bops(16, 64, 32, 32) == 1_118_208


def test_mixed_precision_and_pruning_read_from_model():
    spec = ModelSpec(hidden=(8, 4), n_inputs=4, n_classes=3, weight_bits=(4, 8, 32), act_bits=(6, 3), input_bits=12)
    model = build_model(spec, seed=0)
    # Prune exactly 16 of the 32 first-layer weights and 4 of the 32 second-layer weights.
    with torch.no_grad():
        model.masks()[0].view(-1)[:16] = 0
        model.masks()[1].view(-1)[:4] = 0
        for lin in model.linears:
            lin.bias.fill_(0.1)  # no bias is zero by chance
    model.apply_masks_()
    report = model_bops(model)
    # layer 1: n=4, m=8, b_w=4, b_a=12 (input), p = (16 + 8) / (32 + 8) = 0.6
    l1 = 8 * 4 * (0.6 * 12 * 4 + 12 + 4 + 2)
    # layer 2: n=8, m=4, b_w=8, b_a=6, p = (28 + 4) / (32 + 4) = 32/36
    l2 = 4 * 8 * (32 / 36 * 6 * 8 + 6 + 8 + 3)
    # layer 3: n=4, m=3, b_w=32, b_a=3, p = 1
    l3 = 3 * 4 * (3 * 32 + 3 + 32 + 2)
    assert l1 == pytest.approx(1497.6)
    assert l3 == 1596
    assert [layer.bops for layer in report.layers] == pytest.approx([l1, l2, l3])
    assert report.total == pytest.approx(l1 + l2 + l3)
    assert [(x.w_bits, x.a_bits) for x in report.layers] == [(4, 12), (8, 6), (32, 3)]
    assert report.layers[0].density == pytest.approx(0.6)


def test_density_out_of_range():
    with pytest.raises(ValueError):
        linear_bops(4, 4, 8, 8, 1.5)
    assert math.isclose(linear_bops(4, 4, 8, 8, 0.0), 16 * (8 + 8 + 2))
