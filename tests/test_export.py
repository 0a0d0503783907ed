"""QONNX export: the graph hls4ml reads carries each layer's bit width, the pruned zeros and the
stored model's exact function; the JSON beside it carries the input standardization."""

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import onnx
import optuna
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from qapbo.data.split import load_data
from qapbo.errors import ExportError
from qapbo.export.qonnx import to_qonnx
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.study.file import load_study_file
from qapbo.study.qap import run_qap
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

STUDY = """
name = "exp"
seed = 0
[data]
n_rows = 1500
[train]
epochs = 3
lr = 0.003
batch_size = 128
[qap]
hidden = [16, 8]
precisions = [4]
modes = ["ft"]
schedule = [0.0, 0.5]
"""


def run_graph(path, x):
    g = ModelWrapper(str(path))
    i, o = g.graph.input[0].name, g.graph.output[0].name
    return np.concatenate([execute_onnx(g, {i: row[None, :]})[o] for row in x.astype(np.float32)])


def quant_bit_widths(path):
    g = ModelWrapper(str(path))
    return [int(g.get_initializer(n.input[3])) for n in g.graph.node if n.op_type == "Quant"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    path = tmp / "exp.toml"
    path.write_text(STUDY)
    url = f"sqlite:///{tmp}/exp.db"
    run_qap(load_study_file(path), storage=url, progress=False, log=lambda m: None)
    return tmp, path, url


def test_cli_export_is_the_stored_model_with_its_standardization(stored):
    tmp, path, url = stored
    out = tmp / "front" / "pruned.onnx"
    p = subprocess.run(QAPBO.split() + ["export", str(path), "--trial", "1", "--storage", url, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "" and "same class 32/32" in p.stdout
    onnx.checker.check_model(onnx.load(str(out)))
    study = load_study_file(path)
    trial = optuna.load_study(study_name="exp-qap", storage=url).trials[1]
    model, _ = load_checkpoint(artifact_store(artifact_dir(study, url)), trial.user_attrs["checkpoint"])
    # 4-bit weights in all 3 layers and 4-bit activations after both hidden layers
    assert sorted(quant_bit_widths(out)) == [4] * 5
    # the pruned zeros are in the graph: the weights feeding the weight Quant nodes
    g = ModelWrapper(str(out))
    weights = [g.get_initializer(n.input[0]) for n in g.graph.node
               if n.op_type == "Quant" and g.get_initializer(n.input[0]) is not None]
    n_weights = sum(w.size for w in weights)
    assert n_weights == 16 * 16 + 16 * 8 + 8 * 5
    assert sum(int((w == 0).sum()) for w in weights) / n_weights == pytest.approx(trial.user_attrs["sparsity"])
    # the graph computes the stored model: qonnx's executor against the fast path, on real test rows
    data = load_data(study.data)
    x = data.x_test[:16]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_graph(out, x), want, atol=1e-5)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["qonnx"] == "pruned.onnx" and side["study"] == "exp-qap" and side["trial"] == 1
    assert [side["auc"], side["bops"]] == trial.values
    assert side["synthetic"] is True and side["data"].startswith("SYNTHETIC")
    np.testing.assert_array_equal(side["input"]["mean"], data.scaler.mean_)
    np.testing.assert_array_equal(side["input"]["scale"], data.scaler.scale_)
    assert side["input"]["features"] == list(data.feature_names) and side["output"]["classes"] == list(data.class_names)
    assert side["check"]["test_rows"] == 32 and side["check"]["max_abs_logit_diff"] <= 1e-4


def test_mixed_precision_widths_and_input_quantizer_reach_the_graph(tmp_path):
    spec = ModelSpec(n_inputs=16, n_classes=5, hidden=(8, 8), weight_bits=(6, 4, 8), act_bits=(5, 3), input_bits=12, bn="affine")
    model = build_model(spec, seed=3).eval()
    out = to_qonnx(model, tmp_path / "mixed.onnx")
    assert sorted(quant_bit_widths(out)) == sorted([12, 6, 4, 8, 5, 3])
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_graph(out, x), want, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["mixed.onnx"]  # no temporary left behind


@pytest.mark.parametrize("args,message", [
    (["--trial", "9"], "trial 9 of study 'exp-qap' does not exist; COMPLETE trials: 0-1"),
    (["--trial", "0", "--study", "exp-search"], "no study 'exp-search' of"),
    (["--trial", "0", "--study", "exp-refine"], "the storage holds: exp-qap"),
    (["--trial", "-1"], "argument --trial: -1 must be at least 0"),
    (["--trial", "0", "--synthetic", "--rows", "900"], "no results at sqlite:///"),
])
def test_bad_requests_one_line_exit_2_nothing_written(stored, args, message, tmp_path):
    _, path, url = stored
    if "--synthetic" in args:
        url = f"sqlite:///{tmp_path}/none.db"
    out = tmp_path / "x.onnx"
    p = subprocess.run(QAPBO.split() + ["export", str(path), "--storage", url, "--out", str(out), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []  # neither an export nor an empty database


def test_other_data_than_the_trials_is_refused(stored, tmp_path):
    _, path, url = stored
    other = tmp_path / "exp.toml"
    other.write_text(STUDY.replace("n_rows = 1500", "n_rows = 1600"))
    # the changed file is still the same study name; the data fingerprint tells them apart
    p = subprocess.run(QAPBO.split() + ["export", str(other), "--trial", "0", "--storage", url,
                                        "--out", str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "is not the data trial 0 was trained on" in p.stderr, p.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_missing_export_extra_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "qonnx", None)
    monkeypatch.setitem(sys.modules, "qonnx.core.modelwrapper", None)
    with pytest.raises(ExportError, match=r"pip install 'qapbo\[export\]'"):
        to_qonnx(build_model(ModelSpec(n_inputs=16, n_classes=5, hidden=(4,)), seed=0), tmp_path / "m.onnx")


def test_a_graph_that_fails_its_check_is_not_written(stored, tmp_path, monkeypatch):
    import qapbo.export.qonnx as export

    _, path, url = stored
    out = tmp_path / "kept.onnx"
    out.write_bytes(b"an earlier export")
    monkeypatch.setattr(export, "check_qonnx", lambda p, m, x: (0.5, len(x) - 3))
    with pytest.raises(ExportError, match="max logit difference 0.5 on 32 test rows"):
        export.export_trial(load_study_file(path), 1, out=out, storage=url)
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.onnx"]


def test_exported_files_get_the_usual_permissions(stored, tmp_path):
    _, path, url = stored
    out = tmp_path / "perm.onnx"
    old = os.umask(0o022)
    try:
        p = subprocess.run(QAPBO.split() + ["export", str(path), "--trial", "0", "--storage", url, "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    assert [stat.S_IMODE(f.stat().st_mode) for f in (out, out.with_suffix(".json"))] == [0o644] * 2  # not 0600
    written = [out, out.with_suffix(".json"), out.with_suffix(".hls4ml.json")]
    assert sorted(tmp_path.iterdir()) == sorted(written)
    assert stat.S_IMODE(written[2].stat().st_mode) == 0o644


def test_batch_statistics_at_inference_are_refused_in_one_line(tmp_path):
    path = tmp_path / "ns.toml"
    path.write_text(STUDY.replace("[qap]\n", "[qap]\nbn = \"no-stats\"\n").replace("[0.0, 0.5]", "[0.0]")
                    .replace("epochs = 3", "epochs = 1"))
    url = f"sqlite:///{tmp_path}/ns.db"
    run_qap(load_study_file(path), storage=url, progress=False, log=lambda m: None)
    out = tmp_path / "front" / "ns.onnx"
    p = subprocess.run(QAPBO.split() + ["export", str(path), "--trial", "0", "--storage", url, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and 'batch statistics at inference (bn = "no-stats")' in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
