"""A learned-precision trial and hardware: `qapbo export` refuses it with one line naming what works, and what
works does: da4ml's HLS project of the stored net's exact logic gives the stored model's logits on every test row."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from optuna.trial import TrialState

from qapbo.cli import main
from qapbo.cost.measure import hw_available
from qapbo.data.split import load_data
from qapbo.errors import ExportError
from qapbo.export.qonnx import to_qonnx
from qapbo.nn.learned import LearnedTagger
from qapbo.study.file import load_study_file
from qapbo.study.search import run_search
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint

FILE = """
name = "lx"
seed = 0
[data]
n_rows = 1500
[train]
epochs = 4
lr = 0.005
batch_size = 128
[search]
sampler = "random"
n_trials = 1
[search.space]
precision = "learned"
n_layers = 1
width = { choices = [8, 16] }
beta = 1e-5
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A one-trial learned search: (study file, storage URL, its trial)."""
    tmp = tmp_path_factory.mktemp("lx")
    (tmp / "lx.toml").write_text(FILE)
    study = load_study_file(tmp / "lx.toml")
    url = f"sqlite:///{tmp}/lx.db"
    (ostudy,) = run_search(study, storage=url, progress=False, log=lambda _m: None)
    (trial,) = ostudy.get_trials()
    assert trial.state == TrialState.COMPLETE
    return study, url, trial


def test_qapbo_export_refuses_a_learned_trial_in_one_line_and_writes_nothing(stored, tmp_path, capsys):
    study, url, trial = stored
    out = tmp_path / "out" / "net.onnx"
    assert main(["export", study.path, "--trial", str(trial.number), "--storage", url, "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "is a learned-precision net" in lines[0] and "nothing was written" in lines[0]
    assert "qapbo export writes fixed-precision and HGQ2 trials" in lines[0] and "da4ml writes" in lines[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_to_qonnx_refuses_a_learned_net(tmp_path):
    with pytest.raises(ExportError, match="is a learned-precision net"):
        to_qonnx(LearnedTagger(4, (3,), 2), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.skipif(not hw_available() or shutil.which("g++") is None, reason="needs da4ml and g++")
def test_the_readme_recipe_da4ml_hls_gives_the_stored_logits_on_every_test_row(stored, tmp_path):
    from da4ml.codegen import HLSModel

    from qapbo.cost.learned import input_values, trace

    study, url, trial = stored
    # the README's recipe
    model, _ = load_checkpoint(artifact_store(artifact_dir(study, url), create=False), trial.user_attrs["checkpoint"])
    comb = trace(model.fixed_point_layers())
    hls = HLSModel(comb, "tagger", str(tmp_path / "tagger_hls"))
    hls.write()
    hls.compile()
    x = load_data(study.data).x_test
    logits = np.asarray(hls.predict(input_values(model, x)), np.float64).reshape(len(x), -1)
    # against the stored model
    with torch.no_grad():
        want = model(torch.from_numpy(x)).double().numpy()
    assert (logits.argmax(1) == want.argmax(1)).all() and np.abs(logits - want).max() <= 1e-5
    assert comb.cost == trial.user_attrs["luts"]
    assert (Path(tmp_path) / "tagger_hls" / "src").is_dir()
