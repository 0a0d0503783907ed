"""Learned per-weight precision end to end: the spec, the training loop, the costs and `qapbo train --precision learned`.

EBOPs and da4ml's LUTs of a small learned net by hand, the costs of a trained one against the cost
modules, da4ml's traced logic against a stored (checkpointed and reloaded) model on every test row,
the loop's rules (objective, ranges, the bits' own learning rate), and the command line with its
one-line refusals.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch

from qapbo.cost import learned as cl
from qapbo.cost.measure import hw_available, measure_costs
from qapbo.cost.perweight import network_bops, network_ebops
from qapbo.errors import SpecError
from qapbo.nn.learned import LearnedTagger
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import TrainConfig
from qapbo.train.loop import train
from qapbo.train.measure import train_and_measure

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"
needs_da4ml = pytest.mark.skipif(not hw_available(), reason="da4ml not installed (pip install 'qapbo[hw]')")


def t(v):
    return torch.tensor(v, dtype=torch.float32)


# ------------------------------------------------------------------------------ the spec

def test_a_learned_spec_round_trips_and_refuses_what_it_does_not_have():
    s = ModelSpec(n_inputs=16, n_classes=5, precision="learned", beta=1e-5, init_bits=4)
    assert s.bn == "none" and s.describe() == "16-64-32-32-5 learned f4 beta=1e-05"
    d = s.to_dict()
    assert d["precision"] == "learned" and d["beta"] == 1e-5 and d["init_bits"] == 4 and d["bits_lr"] == 5e-3
    assert "weight_bits" not in d and ModelSpec.from_dict(json.loads(json.dumps(d))) == s
    fixed = ModelSpec(n_inputs=16, n_classes=5, weight_bits=6).to_dict()
    assert "precision" not in fixed and "beta" not in fixed and fixed["bn"] == "affine"  # records stay as they were
    for kw, says in ((dict(weight_bits=6), "leave weight_bits unset"), (dict(bn="affine"), "no BatchNorm"),
                     (dict(init_bits=17), "init_bits is 17"), (dict(beta=-1.0), "beta is -1.0"),
                     (dict(bits_lr=0.0), "bits_lr is 0.0")):
        with pytest.raises(SpecError, match=says):
            ModelSpec(precision="learned", **kw)
    with pytest.raises(SpecError, match="only apply to precision"):
        ModelSpec(beta=1e-5)
    with pytest.raises(SpecError, match="unknown precision"):
        ModelSpec(precision="mixed")


def test_build_model_gives_a_seeded_learned_tagger_with_its_spec():
    spec = ModelSpec(n_inputs=5, hidden=(4,), n_classes=3, precision="learned", init_bits=2)
    a, b = build_model(spec, seed=7), build_model(spec, seed=7)
    assert isinstance(a, LearnedTagger) and a.spec == spec
    assert torch.equal(a.values, b.values) and torch.all(a.value_phi == 2.0) and torch.all(a.data_phi == 2.0)


# ------------------------------------------------------------------------------ costs by hand

def hand_net() -> LearnedTagger:
    """2-2-2: neuron 1 sums the two inputs, neuron 2 is pruned; output 1 is neuron 1, output 2 adds 0.5."""
    m = LearnedTagger(2, (2,), 2)
    with torch.no_grad():
        m.weight(0).copy_(t([[1.0, 1.0], [0.0, 0.0]]))
        m.weight(1).copy_(t([[1.0, 0.0], [1.0, 0.0]]))
        m.bias(1).copy_(t([0.0, 0.5]))
        m.value_phi.zero_()
        m.bias(1, m.value_phi).fill_(1.0)  # 0.5 is the code 1 at one fractional bit
        m.data_phi.zero_()  # every datalane in integers
    m.calibrate(t([[-8.0, -8.0], [7.0, 7.0], [3.0, -2.0]]))
    return m.eval()


@needs_da4ml
def test_ebops_luts_and_latency_of_a_small_learned_net_by_hand():
    m = hand_net()
    layers = m.fixed_point_layers()
    # inputs: codes -8..7 -> 4 bits with sign; hidden: neuron 1 in [0, 14] -> 4 bits unsigned, neuron 2 always 0 -> 0 bits
    assert layers[0]["in_width"].tolist() == [4, 4] and layers[1]["in_width"].tolist() == [4, 0]
    # EBOPs: layer 1: two weights of value 1 (2 bits with sign) on 4-bit inputs; layer 2: two such weights on
    # neuron 1 (4 bits), the bias 0.5 = code 1 (2 bits); zero weights and biases cost nothing
    assert network_ebops(layers) == (34, [4 * 2 + 4 * 2, 4 * 2 + 4 * 2 + 2])
    # da4ml's LUTs: x1 + x2 is one adder of two 4-bit operands: 4 (da4ml counts an adder's bits above the higher
    # operand LSB, less the top one); the ReLU of that 4-bit unsigned result: 4 / 2 = 2 (da4ml's LUT5 estimate);
    # its format (4 bits unsigned, no fraction) holds it: no rounding, no saturation; output 1 is a wire;
    # output 2 adds the constant 0.5: ceil(log2(0.5 + 2**-1)) + 1 = 1. Latency: the one adder level.
    rec = measure_costs(m)
    assert (rec["luts"], rec["latency"], rec["ebops"]) == (4 + 2 + 1, 1.0, 34.0)
    assert rec["luts_definition"] == "da4ml-0.6-adders-v1" and rec["latency_definition"] == "da4ml-0.6-depth-v1"
    assert rec["bops_definition"] == "hawks2021-perweight-v1" and rec["ebops_definition"] == "hgq2-ebops-v1"
    # BOPs: hawks2021-perweight-v1, p = 2/6 and 3/6 non-zero weights and biases
    bops = (2 / 6 * (2 * 4 + 2 * 4) + 2 * 8 + 4 + 4 * 1) + (3 / 6 * (2 * 4 + 2 * 4) + 2 * 4 + 4 + 4 * 1)
    assert rec["bops"] == pytest.approx(bops)
    # the logic computes the model exactly, saturation included (inputs beyond -8..7)
    x = np.random.default_rng(0).uniform(-12, 12, (300, 2)).astype(np.float32)
    comb = cl.trace(layers)
    want = m(torch.from_numpy(x)).detach().double().numpy()
    assert np.array_equal(cl.run_logic(comb, cl.input_values(m, x)), want)
    assert np.array_equal(cl.emulate(layers, cl.input_values(m, x)), want)


def test_lane_formats_in_da4ml_terms():
    layer = {"in_width": np.array([4, 3, 0, 5]), "in_f": np.array([0, 2, 3, -1]), "in_lo": np.array([-8, 0, 0, -3])}
    k, i, f = cl.lane_kif(layer)
    # signed 4 bits at f=0: [-8, 7]; unsigned 3 bits at f=2: [0, 1.75]; 0 bits; signed 5 bits at f=-1: step 2, [-32, 30]
    assert k.tolist() == [1, 0, 0, 1] and i.tolist() == [3, 1, -3, 5] and f.tolist() == [0, 2, 3, -1]
    assert (k + i + f).tolist() == [4, 3, 0, 5]


# ------------------------------------------------------------------------------ the loop and its record

def learned_spec(**kw):
    return ModelSpec(hidden=(16, 8), precision="learned", **kw)


FAST = TrainConfig(epochs=12, lr=5e-3, batch_size=256, l1=0.0, patience=50)


def test_train_and_measure_a_learned_net_records_every_cost_by_its_definition(tiny_data):
    m = train_and_measure(tiny_data, learned_spec(beta=1e-5), FAST)
    rec, model = m.record, m.model
    assert isinstance(model, LearnedTagger) and rec["model"]["precision"] == "learned"
    assert rec["model_name"] == "16-16-8-5 learned f3 beta=1e-05" and rec["auc"] > 0.65
    layers = model.fixed_point_layers()
    assert rec["ebops"] == float(network_ebops(layers)[0]) == float(model.ebops().detach())
    assert rec["bops"] == pytest.approx(network_bops(layers)[0]) and rec["bops_definition"] == "hawks2021-perweight-v1"
    # sparsity counts the weights trained to 0 bits
    w = np.concatenate([r["w_width"].ravel() for r in layers])
    assert rec["sparsity"] == pytest.approx(float((w == 0).mean()))
    kept = w[w > 0]
    assert rec["learned_bits"]["weights"] == {"mean": pytest.approx(kept.mean()), "max": int(kept.max())}
    assert rec["learned_bits"]["inputs"]["max"] == int(layers[0]["in_width"].max())
    # the measured net is the calibrated one: its ranges are exactly those of the training rows
    lo, hi = model.lo.clone(), model.hi.clone()
    model.calibrate(torch.from_numpy(tiny_data.x_train))
    assert torch.equal(lo, model.lo) and torch.equal(hi, model.hi)
    assert rec["flops"] > 0 and rec["train_config"]["l1"] == 0.0
    if "luts" in rec:
        assert rec["luts"] == cl.trace(layers).cost > 0


def test_beta_lowers_the_measured_costs(tiny_data):
    # ~80 steps: the bits move by at most bits_lr a step (Adam), so this short run gives them 2e-2
    cheap = train_and_measure(tiny_data, learned_spec(beta=3e-4, bits_lr=2e-2), FAST).record
    full = train_and_measure(tiny_data, learned_spec(beta=0.0, bits_lr=2e-2), FAST).record
    assert cheap["ebops"] < 0.7 * full["ebops"], (cheap["ebops"], full["ebops"])
    assert cheap["auc"] > 0.6 and full["auc"] > 0.65


def test_the_validation_loss_is_the_objective_and_the_bits_have_their_own_learning_rate(tiny_data):
    spec = learned_spec(beta=1e-4, bits_lr=2e-2).sized_for(tiny_data.n_features, tiny_data.n_classes)
    model = build_model(spec, seed=0)
    v0, p0 = model.values.detach().clone(), model.value_phi.detach().clone()
    one_step = TrainConfig(epochs=1, lr=1e-3, batch_size=len(tiny_data.y_train), l1=0.0)  # one Adam step
    res = train(model, tiny_data, one_step)
    # Adam's first step moves every parameter by its learning rate (m / sqrt(v) = +-1); the epoch's clamp
    # may raise a near-zero weight's bits further, never lower them
    dv = (model.values.detach() - v0).abs()
    dp = model.value_phi.detach() - p0
    assert dv.max().item() == pytest.approx(1e-3, rel=1e-3)
    moved = dp.abs() > 0
    assert torch.median(dp.abs()[moved]).item() == pytest.approx(2e-2, rel=1e-3)
    # the validation loss early stopping reads: cross-entropy plus beta * EBOPs on the validation rows
    from qapbo.train.loop import validation_loss

    ce = validation_loss(model, torch.from_numpy(tiny_data.x_val), torch.from_numpy(tiny_data.y_val))
    assert res.best_val_loss == pytest.approx(ce + 1e-4 * float(model.ebops().detach()), rel=1e-6)


def test_a_learned_net_refuses_magnitude_pruning():
    from qapbo.train.prune import prune_to_fraction_

    with pytest.raises(SpecError, match="prunes itself"):
        prune_to_fraction_(LearnedTagger(4, (3,), 2), 0.5)


# ------------------------------------------------------------------------------ the stored model in logic

@needs_da4ml
def test_da4ml_logic_gives_the_stored_models_class_on_every_test_row(tiny_data, tmp_path):
    from qapbo.study.storage import artifact_store, load_checkpoint, save_checkpoint

    m = train_and_measure(tiny_data, learned_spec(beta=3e-5), FAST)
    store = artifact_store(tmp_path / "artifacts")
    ostudy = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    stored, _ = load_checkpoint(store, save_checkpoint(store, ostudy, m.model, {}))
    assert isinstance(stored, LearnedTagger) and stored.spec == m.model.spec
    x = tiny_data.x_test
    with torch.no_grad():
        want = stored(torch.from_numpy(x)).double().numpy()
    layers = stored.fixed_point_layers()
    got = cl.run_logic(cl.trace(layers), cl.input_values(stored, x))
    assert (got.argmax(1) == want.argmax(1)).all()
    assert np.abs(got - want).max() <= 1e-5  # float32 rounding of the model's sums at most
    assert measure_costs(stored)["luts"] == m.record["luts"]


# ------------------------------------------------------------------------------ the command line

def run(*args, timeout=300):
    return subprocess.run(QAPBO.split() + list(args), capture_output=True, text=True, timeout=timeout)


TINY = ["--rows", "1500", "--epochs", "4", "--batch-size", "128", "--lr", "5e-3", "--quiet"]


def test_qapbo_train_precision_learned_prints_its_costs_and_record():
    p = run("train", "--precision", "learned", "--beta", "1e-5", "--hidden", "16,8", "--json", *TINY)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["model"] == {"n_inputs": 16, "hidden": [16, 8], "n_classes": 5, "bn": "none", "precision": "learned",
                            "init_bits": 3, "beta": 1e-5, "bits_lr": 5e-3}
    assert rec["bops_definition"] == "hawks2021-perweight-v1" and rec["ebops_definition"] == "hgq2-ebops-v1"
    assert rec["train_config"]["l1"] == 0.0 and rec["epochs"] == 4
    p = run("train", "--precision", "learned", "--beta", "1e-5", "--init-bits", "4", "--hidden", "16,8", *TINY)
    assert p.returncode == 0, p.stderr
    for label in ("16-16-8-5 learned f4 beta=1e-05", "hawks2021-perweight-v1", "hgq2-ebops-v1", "learned bits"):
        assert label in p.stdout
    if hw_available():
        assert "LUTs (da4ml)" in p.stdout and "da4ml-0.6-adders-v1" in p.stdout


@pytest.mark.parametrize("args,message", [
    (["--precision", "learned", "--bits", "6"], "leave weight_bits unset"),
    (["--precision", "learned", "--bn", "affine"], "no BatchNorm"),
    (["--precision", "learned", "--l1", "1e-4"], "--l1 does not apply to --precision learned"),
    (["--beta", "1e-5"], "only apply to precision \"learned\""),
    (["--precision", "learned", "--beta", "-1"], "beta is -1.0"),
    (["--precision", "learned", "--init-bits", "20"], "init_bits is 20"),
    (["--precision", "halfway"], "invalid choice: 'halfway'"),
])
def test_bad_learned_options_one_line_exit_2(args, message):
    p = run("train", *args, "--quiet")
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert message in lines[0] and "Traceback" not in p.stderr
