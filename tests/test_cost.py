"""Hardware costs (qapbo.cost.measure): hand-computed EBOPs, da4ml LUTs that see pruning, a traced logic
that computes what the network computes, and costs as study objectives."""

import os

import numpy as np
import optuna
import pytest
import torch

from qapbo.cli import main
from qapbo.cost import measure as cost
from qapbo.cost.bops import linear_bops
from qapbo.nn.models import build_model, weight_mask
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import TrainConfig
from qapbo.train.loop import train
from qapbo.train.prune import prune_to_fraction_


def test_ebops_and_bops_by_hand():
    w = np.array([[3, 0, -1], [0, 0, 0]])  # bits: 3 -> |3| needs 2 + sign = 3; -1 -> 1 + sign = 2; 0 -> 0
    assert cost.weight_bits(w).tolist() == [[3, 0, 2], [0, 0, 0]]
    # inputs of 4 bits: (3 + 2) * 4 = 20; biases of 5 bits on both outputs: + 10
    assert cost.linear_ebops(w, 4, 5) == 30
    assert cost.linear_ebops(np.zeros((2, 3), int), 4, 0) == 0  # pruned weights cost nothing
    # BOPs charges every connection: m n (p b_a b_w + b_a + b_w + log2 n), p = 2 of 8 parameters non-zero
    assert linear_bops(3, 2, 4, 4, 2 / 8) == pytest.approx(6 * (0.25 * 16 + 8 + np.log2(3)))


def _model(bits=6, seed=0, hidden=(16, 8)):
    m = build_model(ModelSpec(n_inputs=16, hidden=hidden, n_classes=5, weight_bits=bits), seed=seed).eval()
    with torch.no_grad():
        for bn in m.norms:
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return m


def test_ebops_of_a_network_reads_the_fixed_point_view():
    m = _model()
    view = cost.cost_view(m)
    total, per = cost.view_ebops(view)
    first = view.layers[0]
    want = int((cost.weight_bits(first.weights) * 16).sum()) + first.bias_format.width * int(
        (np.round(first.bias * 2.0 ** first.bias_format.fraction) != 0).sum())  # input: ap_fixed<16,6>
    assert per[0] == want and total == sum(per)


def test_a_fully_pruned_layer_costs_no_luts_and_luts_fall_with_pruning():
    m = _model()
    luts = []
    for frac in (0.0, 0.5, 0.8, 0.95):
        prune_to_fraction_(m, frac)
        luts.append(cost.trace(cost.cost_view(m)).cost)
    assert all(b <= a for a, b in zip(luts, luts[1:])) and luts[-1] < luts[0] / 3, luts
    with torch.no_grad():
        weight_mask(m.linears[1]).zero_()  # layer 2 gone: everything after it is constant
    m.apply_masks_()
    assert cost.trace(cost.cost_view(m)).cost == 0.0
    rec = cost.measure_costs(m)
    assert rec["luts"] == 0.0 and rec["luts_definition"] == cost.DEFINITIONS["luts"]


def test_float_layers_get_a_cost_by_the_stated_convention():
    rec = cost.measure_costs(_model(bits=32))
    assert rec["luts"] > 0 and "ap_fixed<16,6>" in rec["cost_note"].replace("fixed<16,6>", "ap_fixed<16,6>")


def test_traced_logic_computes_what_the_network_computes(tiny_data):
    m = build_model(ModelSpec.for_data(tiny_data, hidden=(16, 8), weight_bits=6), seed=0)
    train(m, tiny_data, TrainConfig(epochs=2, batch_size=128, lr=3e-3, patience=2))
    m.eval()
    view = cost.cost_view(m)
    x = np.concatenate([tiny_data.x_test, tiny_data.x_val])[:1000]  # 1,000 real rows the net never trained on
    got = cost.run_logic(cost.trace(view), view, x)
    assert np.array_equal(got, view.emulate(x))  # the logic is the view's arithmetic, bit for bit
    with torch.no_grad():
        want = m(torch.from_numpy(x)).double().numpy()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.999
    # Folding error of the last layer when every hidden code agrees: its scale and bias are rounded
    # to f bits (each off by <= 2^-(f+1)) and the result truncated (<= 2^-f), so
    # |d logit| <= max|acc| 2^-(f+1) + 2^-(f+1) + 2^-f; plus float32 rounding of the model itself.
    # The input itself is rounded to ap_fixed<16,6> (2^-11 per feature), which the float model does not
    # see: now and then that flips a hidden code (one step moves logits by ~0.1), so the folding bound
    # holds on all but <= 1 % of rows, and the class must agree on >= 99.9 %.
    last = view.layers[-1]
    f = last.scale_format.fraction
    acc_max = float(np.abs(last.weights).sum(1).max()) * view.layers[-2].requantizer.max_code
    bound = acc_max * 2.0 ** -(f + 1) + 2.0 ** -(f + 1) + 2.0 ** -f + 1e-5 * np.abs(want).max()
    assert (np.abs(got - want).max(1) > bound).mean() <= 0.01


STUDY = """
name = "hw"
seed = 0
[data]
n_rows = 1500
[train]
epochs = 2
lr = 0.003
batch_size = 128
patience = 2
[search]
sampler = "random"
n_trials = {n}
[search.space]
n_layers = 1
width = {{ low = 4, high = 16 }}
bits = {{ choices = [4, 32] }}
[objectives]
{objectives}
"""


def test_a_luts_study_runs_resumes_and_compares(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(STUDY.format(n=2, objectives='luts = "minimize"'))
    assert main(["search", "s.toml", "--quiet"]) == 0
    (tmp_path / "s.toml").write_text(STUDY.format(n=3, objectives='luts = "minimize"'))
    assert main(["search", "s.toml", "--quiet"]) == 0  # resumed: one more trial
    s = optuna.load_study(study_name="hw-search", storage="sqlite:///runs/hw.db")
    done = [t for t in s.trials if t.state.name == "COMPLETE"]
    assert len(done) == 3 and len(s.directions) == 2
    assert all(t.values[1] == t.user_attrs["luts"] and t.user_attrs["ebops"] > 0 for t in done)
    capsys.readouterr()
    assert main(["compare", "--storage", "sqlite:///runs/hw.db", "--cost", "luts", "--json", "--out", "c"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["cost"] == "luts" and out["studies"][0]["front"][0]["luts"] > 0
    assert {p["a"] + p["b"] for p in out["cost_agreement"]["correlations"]} >= {"bopsluts"}
    assert any(p.endswith("costs.png") for p in out["figures"])


@pytest.mark.parametrize("objectives, hw, says", [
    ('flops = "minimize"', True, "unknown key 'flops'"),
    ('luts = "minimize"', False, "pip install 'qapbo[hw]'"),
    ('bops = "minimize"\nebops = "minimize"\nluts = "minimize"', True, "at most 2 costs"),
])
def test_bad_objectives_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, objectives, hw, says):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cost, "hw_available", lambda: hw)
    (tmp_path / "s.toml").write_text(STUDY.format(n=1, objectives=objectives))
    assert main(["search", "s.toml"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
    assert not os.path.exists("runs")
