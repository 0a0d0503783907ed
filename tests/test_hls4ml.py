"""The hand-off to hls4ml: the emitted configuration makes hls4ml's compiled C++ emulation give the
stored model's class on every test row (and its logits within the tolerance), where hls4ml's
default configuration does not; the fixed-point formats follow the written rule."""

import json
import shutil
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch

from qapbo.data import load_data
from qapbo.export import input_range
from qapbo.fixedpoint import LOGIT_TOLERANCE, Fixed, agreement, constant_format, fixed_point_view
from qapbo.hls4ml_config import Hls4mlError, check_hls4ml, require_hls4ml
from qapbo.models import ModelSpec, build_model
from qapbo.storage import artifact_dir, artifact_store, load_checkpoint
from qapbo.studyfile import load_study_file

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

STUDY = """
name = "hw"
seed = 0
[data]
n_rows = 2000
[train]
epochs = 4
lr = 0.003
batch_size = 128
[qap]
hidden = [32, 16]
precisions = [6, 4]
modes = ["ft"]
schedule = [0.0, 0.8]
[search]
sampler = "random"
n_trials = 1
[search.space]
n_layers = 2
width = { low = 16, high = 24 }
bits = 8
input_bits = 8
bn = "none"
"""


def export(path, url, study, trial, out, *extra):
    return subprocess.run(QAPBO.split() + ["export", str(path), "--study", study, "--trial", str(trial),
                                           "--storage", url, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("g++") is None, reason="hls4ml compiles its emulation with g++ (.ci/run installs it)")
def test_emitted_configuration_makes_hls4ml_reproduce_the_stored_model_and_the_default_does_not(tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text(STUDY)
    url = f"sqlite:///{tmp_path}/hw.db"
    p = subprocess.run(QAPBO.split() + ["run", str(path), "--storage", url, "--out", str(tmp_path / "cmp")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    qap = optuna.load_study(study_name="hw-qap", storage=url).trials
    pick = {(t.params["precision"], t.params["level"]): t.number for t in qap}
    chosen = [("hw-qap", pick[(6, 1)], "qap 6-bit 80% pruned"), ("hw-qap", pick[(6, 0)], "qap 6-bit unpruned"),
              ("hw-search", 0, "search 8-bit, 8-bit input, no BN"), ("hw-qap", pick[(4, 0)], "qap 4-bit")]
    study = load_study_file(path)
    data = load_data(study.data)
    store = artifact_store(artifact_dir(study, url))
    default_failed = []
    for name, trial, what in chosen:
        out = tmp_path / f"{name}-{trial}.onnx"
        p = export(path, url, name, trial, out, "--check-hls4ml")
        assert p.returncode == 0, (what, p.stderr)
        n = len(data.x_test)
        assert f"hls4ml C++ emulation on {n} test rows: same class {n}/{n}" in p.stdout, (what, p.stdout)
        config = json.loads(out.with_suffix(".hls4ml.json").read_text())
        side = json.loads(out.with_suffix(".json").read_text())["hls4ml"]
        assert side["config"] == out.with_suffix(".hls4ml.json").name
        assert side["hls4ml_check"]["same_class"] == n and side["hls4ml_check"]["max_abs_logit_diff"] <= LOGIT_TOLERANCE
        assert side["input_range"] == list(input_range(data))
        assert set(config) == {"Model", "LayerName"} and config["Model"]["Precision"]["default"] == "fixed<16,6>"
        frozen = optuna.load_study(study_name=name, storage=url).trials[trial]
        model, _ = load_checkpoint(store, frozen.user_attrs["checkpoint"])
        if what == "search 8-bit, 8-bit input, no BN":
            assert model.spec.input_bits == 8 and model.spec.bn == "none" and "Quant_0_scale" in config["LayerName"]
        # the default precision (the recipe without the emitted file) on the same graph
        if what in ("qap 6-bit unpruned", "search 8-bit, 8-bit input, no BN"):
            c = check_hls4ml(out, None, model, data.x_test, LOGIT_TOLERANCE)
            default_failed.append(not c.ok)
        # least exact: one bit less no longer reproduces the model in the numpy emulation of it
        p_bits = side["precision_bits"]
        same, diff = agreement(fixed_point_view(model, input_range(data), p_bits - 1), model, data.x_test)
        assert same < n or diff > LOGIT_TOLERANCE
    assert any(default_failed)


def test_formats_follow_the_rule():
    # smallest 0.003 (msb 2^-9): 8 significant bits -> 17 fraction bits; largest 0.5 -> 1 integer (sign) bit
    assert constant_format(np.array([0.003, -0.5, 0.0]), 8) == Fixed(1, 17)
    assert constant_format(np.array([0.003, 3.0]), 8) == Fixed(3, 17)
    assert constant_format(np.array([1.0, -0.25]), 8, fraction=12) == Fixed(2, 12)
    assert Fixed(3, 17).hls("RND") == "fixed<20,3,RND>" and Fixed(4, 0, signed=False).hls() == "ufixed<4,4>"
    assert Fixed(2, 2).bounds == (-2.0, 1.75)
    np.testing.assert_array_equal(Fixed(2, 2).round_even_saturate(np.array([0.375, 0.125, 9.0, -9.0])),
                                  [0.5, 0.0, 1.75, -2.0])


def test_emulation_is_the_model_at_high_precision_and_drifts_at_low():
    spec = ModelSpec(n_inputs=16, n_classes=5, hidden=(12, 8), weight_bits=(6, 4, 5), act_bits=(5, 3), input_bits=7,
                     bn="affine")
    model = build_model(spec, seed=1).eval()
    with torch.no_grad():  # BatchNorm statistics other than (0, 1), so the folding is exercised
        for bn in model.norms:
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 4.0)
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.2, 0.2)
    x = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
    view = fixed_point_view(model, (float(x.min()), float(x.max())), 30)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(view.emulate(x), want, atol=1e-5)
    assert view.layers[0].weights.dtype == np.int64 and np.abs(view.layers[1].weights).max() <= 7  # 4-bit narrow
    low = fixed_point_view(model, (float(x.min()), float(x.max())), 4)
    assert np.abs(low.emulate(x) - want).max() > 1e-3


def test_float_layers_have_no_fixed_point_form():
    from qapbo.fixedpoint import FixedPointError

    with pytest.raises(FixedPointError, match="layer 2 is float"):
        spec = ModelSpec(n_inputs=16, n_classes=5, hidden=(4,), weight_bits=(6, 32), act_bits=6)
        fixed_point_view(build_model(spec, seed=0), (-1, 1), 16)


def test_missing_hls4ml_or_compiler_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "hls4ml", None)
    with pytest.raises(Hls4mlError, match=r"pip install 'qapbo\[hls4ml\]'"):
        require_hls4ml()
    monkeypatch.delitem(sys.modules, "hls4ml")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Hls4mlError, match="g\\+\\+, which is not on PATH"):
        require_hls4ml()
