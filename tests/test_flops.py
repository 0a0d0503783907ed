"""Training FLOPs by the written rule, counted by hand, and recorded with CPU seconds on every trained network."""

import pytest

from qapbo.cost.definitions import FLOPS_DEFINITION
from qapbo.cost.flops import epoch_flops, forward_flops, training_flops
from qapbo.nn.spec import ModelSpec


def test_a_small_net_counted_by_hand():
    # 2 -> 3 -> 2: linears 2*2*3 + 3 = 15 and 2*3*2 + 2 = 14; 3 hidden elements, each BatchNorm
    # (statistics 3, normalise 2, affine 2) and ReLU 1: 3 * 8 = 24
    assert forward_flops((2, 3, 2), "affine") == 15 + 14 + 24 == 53
    assert forward_flops((2, 3, 2), "no-affine") == 29 + 3 * 6
    assert forward_flops((2, 3, 2), "no-stats") == 29 + 3 * 6
    assert forward_flops((2, 3, 2), "none") == 29 + 3 * 1
    assert forward_flops((4, 1)) == 2 * 4 + 1  # logistic regression: no hidden layer
    spec = ModelSpec(n_inputs=2, hidden=(3,), n_classes=2, weight_bits=4)
    # an epoch of 10 training rows (forward + backward = 3x) and 4 evaluated rows: 3*53*10 + 53*4
    assert epoch_flops(spec, 10, 4) == 1590 + 212
    assert training_flops(spec, 10, 4, 5) == 5 * 1802
    # precision does not change the count: the float network of the same widths
    assert training_flops(ModelSpec(n_inputs=2, hidden=(3,), n_classes=2), 10, 4, 5) == 5 * 1802
    with pytest.raises(ValueError, match="unknown BN mode"):
        forward_flops((2, 3, 2), "batch")


def test_the_jet_tagger_of_the_protocol():
    # 16-64-32-32-5: 2 * (16*64 + 64*32 + 32*32 + 32*5) = 8,512 multiply-add FLOPs, 133 biases,
    # 128 hidden elements at 8 (BatchNorm affine 7, ReLU 1) = 1,024: 9,669 per row forward
    assert forward_flops((16, 64, 32, 32, 5)) == 8512 + 133 + 1024 == 9669


def test_a_trained_network_records_flops_and_cpu_seconds(tiny_data):
    from qapbo.train.config import TrainConfig
    from qapbo.train.measure import train_and_measure

    spec = ModelSpec(hidden=(8,), weight_bits=6)
    cfg = TrainConfig(epochs=3, batch_size=256, patience=5, lr=3e-3)
    m = train_and_measure(tiny_data, spec, cfg)
    rec = m.record
    n_train, n_val = len(tiny_data.y_train), len(tiny_data.y_val)
    rows = n_train - 1 if n_train % 256 == 1 else n_train
    assert (m.training.train_rows, m.training.val_rows) == (rows, n_val)
    f = forward_flops((16, 8, 5))
    assert rec["flops"] == rec["epochs"] * (3 * f * rows + f * n_val)
    assert rec["flops_definition"] == FLOPS_DEFINITION == "qapbo-train-flops-v1"
    assert 0 < rec["cpu_seconds"] and 0 < rec["seconds"]
