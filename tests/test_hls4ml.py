"""The hand-off to hls4ml: the emitted configuration makes hls4ml's compiled C++ emulation give the
stored model's class on every test row (and its logits within the tolerance), where hls4ml's
default configuration does not; the fixed-point formats follow the written rule."""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from qapbo.cost.fixedpoint import LOGIT_TOLERANCE, Fixed, agreement, constant_format, fixed_point_view
from qapbo.data.split import load_data
from qapbo.errors import Hls4mlError
from qapbo.export.hls4ml_config import check_hls4ml, require_hls4ml
from qapbo.export.qonnx import input_range
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.study.file import load_study_file
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint

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
[refine]
members = 1
schedule = [0.5]
"""


def export(path, url, study, trial, out, *extra):
    return subprocess.run(QAPBO.split() + ["export", str(path), "--study", study, "--trial", str(trial),
                                           "--storage", url, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600)


def readme_recipe() -> str:
    """The Python recipe of the README's hardware section, verbatim."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## Taking a point of the front to hardware"):]
    return section[section.index("```python\n") + len("```python\n"):].split("```", 1)[0]


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
    refined = [t.number for t in optuna.load_study(study_name="hw-refine", storage=url).trials if t.params["level"] == 1]
    chosen = [("hw-qap", pick[(6, 1)], "qap 6-bit 80% pruned", "da"), ("hw-qap", pick[(6, 0)], "qap 6-bit unpruned", "da"),
              ("hw-search", 0, "search 8-bit, 8-bit input, no BN", "da"), ("hw-refine", refined[0], "refine member", "da"),
              ("hw-qap", pick[(4, 0)], "qap 4-bit", "latency")]
    study = load_study_file(path)
    data = load_data(study.data)
    store = artifact_store(artifact_dir(study, url))
    default_failed, want = [], {}
    n = len(data.x_test)
    # every export compiles hls4ml's emulation with g++ (serial): run them side by side on the machine's cores
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = list(pool.map(lambda c: export(path, url, c[0], c[1], tmp_path / f"{c[0]}-{c[1]}.onnx",
                                              "--check-hls4ml", "--strategy", c[3]), chosen))
    for (name, trial, what, strategy), p in zip(chosen, done):
        out = tmp_path / f"{name}-{trial}.onnx"
        assert p.returncode == 0, (what, p.stderr)
        assert f"same class {n}/{n}" in p.stdout and f"hls4ml C++ emulation on {n} test rows" in p.stdout, (what, p.stdout)
        config = json.loads(out.with_suffix(".hls4ml.json").read_text())
        side = json.loads(out.with_suffix(".json").read_text())["hls4ml"]
        hls_name = {"da": "distributed_arithmetic", "latency": "Latency"}[strategy]
        assert config["Model"]["Strategy"] == side["strategy"] == side["hls4ml_check"]["strategy"] == hls_name
        assert side["config"] == out.with_suffix(".hls4ml.json").name
        assert side["hls4ml_check"]["same_class"] == n and side["hls4ml_check"]["max_abs_logit_diff"] <= LOGIT_TOLERANCE
        assert (side["hls4ml_check"]["da_kernel_luts"] is None) == (strategy == "latency")
        assert side["input_range"] == list(input_range(data))
        assert set(config) == {"Model", "LayerName"} and config["Model"]["Precision"]["default"] == "fixed<16,6>"
        frozen = optuna.load_study(study_name=name, storage=url).trials[trial]
        model, _ = load_checkpoint(store, frozen.user_attrs["checkpoint"])
        with torch.no_grad():
            want[out] = model.eval()(torch.from_numpy(data.x_test)).double().numpy()
        if what == "search 8-bit, 8-bit input, no BN":
            assert model.spec.input_bits == 8 and model.spec.bn == "none" and "Quant_0_scale" in config["LayerName"]
            # a plain export of the same trial writes the very files the check passed
            plain = tmp_path / "plain" / out.name
            assert export(path, url, name, trial, plain).returncode == 0
            for suffix in (".onnx", ".hls4ml.json"):
                assert plain.with_suffix(suffix).read_bytes() == out.with_suffix(suffix).read_bytes(), suffix
        # the default precision (the recipe without the emitted file) on the same graph
        if what == "qap 6-bit unpruned":  # 16 % same class in the README's table
            c = check_hls4ml(out, None, model, data.x_test, LOGIT_TOLERANCE)
            default_failed.append(not c.ok)
        # least exact: one bit less no longer reproduces the model in the numpy emulation of it
        p_bits = side["precision_bits"]
        same, diff = agreement(fixed_point_view(model, input_range(data), p_bits - 1), model, data.x_test)
        assert same < n or diff > LOGIT_TOLERANCE
    assert default_failed == [True]

    # The README's recipe, verbatim, in a fresh process, on the files as written after the check.
    np.save(tmp_path / "x.npy", data.x_test)
    recipe = readme_recipe()
    assert '"front/t12.onnx"' in recipe and '"front/t12.hls4ml.json"' in recipe, recipe
    script = tmp_path / "recipe.py"
    script.write_text(
        "import sys, numpy as np\n"
        f"recipe = {recipe!r}\n"
        "x_standardized = np.load(sys.argv[1])\n"
        "for stem in sys.argv[2:]:\n"
        "    ns = {'x_standardized': x_standardized}\n"
        "    exec(recipe.replace('front/t12', stem).replace('t12_prj', stem + '_prj'), ns)\n"
        "    np.save(stem + '.logits.npy', ns['logits'])\n")
    stems = [str(out.with_suffix("")) for out in want]
    runs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "x.npy"), *stems[i::2]], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for r in runs:
        _, err = r.communicate(timeout=900)
        assert r.returncode == 0, err[-3000:]
    for out, logits in want.items():
        got = np.load(str(out.with_suffix("")) + ".logits.npy").reshape(n, -1)
        assert (got.argmax(1) == logits.argmax(1)).all(), out.name
        assert np.abs(got - logits).max() <= LOGIT_TOLERANCE, out.name


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
    from qapbo.errors import FixedPointError

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
