"""Quantization-aware pruning: global magnitude pruning, schedule, FT versus LT."""

import pytest
import torch

from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import TrainConfig
from qapbo.train.prune import initial_state_of, iterative_pruning, prune_to_fraction_

SCHEDULE = (0.0, 0.5, 0.8, 0.9666)
FAST = TrainConfig(epochs=4, lr=3e-3, batch_size=128, patience=4, seed=0)


def test_global_magnitude_pruning_by_hand():
    model = build_model(ModelSpec(hidden=(2,), n_inputs=2, n_classes=2, bn="none"), seed=0)
    with torch.no_grad():
        model.weight_params()[0].copy_(torch.tensor([[0.5, -0.1], [0.3, 0.05]]))
        model.weight_params()[1].copy_(torch.tensor([[-0.2, 0.4], [0.01, -0.6]]))
    # 8 weights; 50 % -> the 4 smallest |w| globally: 0.01, 0.05, 0.1, 0.2 (across both layers)
    assert prune_to_fraction_(model, 0.5) == 4
    assert model.masks()[0].tolist() == [[1, 0], [1, 0]]
    assert model.masks()[1].tolist() == [[0, 1], [0, 1]]
    assert model.weight_params()[1][0, 0].item() == 0.0
    # 75 % of 8 = 6: two more among the survivors 0.3, 0.4, 0.5, 0.6 -> 0.3, 0.4
    assert prune_to_fraction_(model, 0.75) == 2
    assert model.masks()[0].tolist() == [[1, 0], [0, 0]] and model.masks()[1].tolist() == [[0, 0], [0, 1]]
    assert prune_to_fraction_(model, 0.75) == 0  # already there
    assert torch.all(model.linears[0].bias != 0)  # biases are never pruned


def _run(tiny_data, mode, bits=6):
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=bits), seed=0)
    initial = initial_state_of(model)
    starts, epochs_checked = {}, []

    def on_level_start(level, m):
        starts[level] = ([w.detach().clone() for w in m.weight_params()], [k.clone() for k in m.masks()])

    def on_epoch(level, log):
        for w, k in zip(model.weight_params(), model.masks()):
            assert torch.all(w[k == 0] == 0)  # pruned weights stay exactly zero through training
        epochs_checked.append(level)

    results = list(iterative_pruning(model, tiny_data, FAST, SCHEDULE, mode, initial,
                                     on_epoch=on_epoch, on_level_start=on_level_start))
    init_w = [initial[k] for k in initial if k.endswith("parametrizations.weight.original")]
    return results, starts, init_w, epochs_checked


@pytest.mark.parametrize("mode", ["ft", "lt"])
def test_levels_follow_the_schedule_and_keep_pruned_weights_zero(tiny_data, mode):
    results, starts, _, epochs_checked = _run(tiny_data, mode)
    total = sum(k.numel() for k in starts[0][1])
    assert [r.level for r in results] == [0, 1, 2, 3]
    for r in results:
        pruned = round(r.measurement.record["sparsity"] * total)
        assert abs(pruned - r.target * total) <= 1  # within one weight of the schedule
    assert set(epochs_checked) == {0, 1, 2, 3}
    # masks only ever shrink: a weight pruned at one level stays pruned
    for lvl in range(1, 4):
        prev, cur = starts[lvl - 1][1], starts[lvl][1]
        assert all(torch.all(c <= p) for p, c in zip(prev, cur))


def test_lottery_ticket_rewinds_survivors_fine_tuning_does_not(tiny_data):
    _, lt_starts, init_w, _ = _run(tiny_data, "lt")
    _, ft_starts, _, _ = _run(tiny_data, "ft")
    for level in range(4):
        for w, k, w0 in zip(*lt_starts[level], init_w):
            assert torch.equal(w[k == 1], w0[k == 1])  # LT: survivors at their initial values
            assert torch.all(w[k == 0] == 0)
    for level in range(1, 4):
        same = [torch.equal(w[k == 1], w0[k == 1]) for w, k, w0 in zip(*ft_starts[level], init_w)]
        assert not any(same)  # FT: survivors keep their trained values
    # both start level 0 from the same initial network
    assert all(torch.equal(a, b) for a, b in zip(lt_starts[0][0], ft_starts[0][0]))
