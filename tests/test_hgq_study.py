"""The HGQ2 contender as a study: `[hgq]`, `qapbo hgq`, part of `qapbo run`, compared, exported.

Small on purpose: 3,000 synthetic jets and a 16-32-16-5 HGQ2 net for 40 epochs, run through the
command line the way a user runs it. Needs the extra ``qapbo[hgq]`` (the test extra brings it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from qapbo.records import constraint_values
from qapbo.train import hgq

pytestmark = [pytest.mark.skipif(not hgq.hgq_available(), reason="needs the extra qapbo[hgq]"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

QAPBO = [sys.executable, "-m", "qapbo.cli"]
HGQ = """
[hgq]
hidden = [32, 16]
epochs = 40
batch_size = 256
beta0 = 1e-6
beta1 = 3e-3
"""
STUDY = """
name = "{name}"
seed = 0

[data]
source = "synthetic-jets"
n_rows = 3000

[train]
epochs = 3
batch_size = 256
{qap}
""" + HGQ
QAP = """
[qap]
hidden = [16, 8]
precisions = [6]
modes = ["ft"]
schedule = [0.0, 0.5]
"""
COSTS = ("luts", "latency", "ebops", "ebops_hgq", "bops")


def _qapbo(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(QAPBO + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`qapbo run` of a file with [qap] and [hgq]: (study file, storage URL, figures directory)."""
    tmp = tmp_path_factory.mktemp("hgq-run")
    path = tmp / "h.toml"
    path.write_text(STUDY.format(name="h", qap=QAP))
    url = f"sqlite:///{tmp}/h.db"
    p = _qapbo("run", str(path), "--storage", url, "--out", str(tmp / "cmp"), "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    return path, url, tmp / "cmp", p


def _hgq_trials(url: str, name: str = "h-hgq") -> list:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def test_run_stores_the_hgq_front_beside_qap_with_every_cost(run):
    path, url, _, p = run
    assert set(optuna.get_all_study_names(url)) == {"h-qap", "h-hgq"}
    s = optuna.load_study(study_name="h-hgq", storage=url)
    assert s.user_attrs["qapbo_kind"] == "hgq" and s.metric_names == ["auc", "luts"]
    done = [t for t in s.trials if t.state == TrialState.COMPLETE]
    tail = [t for t in s.trials if t.state == TrialState.PRUNED]
    assert len(done) >= 3 and len(tail) == 1 and tail[0].user_attrs["run_tail"]
    for t in done:
        a = t.user_attrs
        assert a["kind"] == "hgq" and t.values == [a["auc"], a["luts"]]
        for c in COSTS:
            assert a[c] > 0 and a[f"{c}_definition"], c
        assert a["bops_definition"] == "hawks2021-perweight-v1" and a["epochs"] >= 0 and a["seconds"] >= 0
        assert constraint_values(t)["min_auc"] == pytest.approx(0.55 - a["auc"])
        assert t.system_attrs["constraints"] == [pytest.approx(0.55 - a["auc"])]  # what optuna-dashboard reads
        # one row forward through 16-32-16-5: 2*16*32+32 + 2*32*16+16 + 2*16*5+5 + 32+16 ReLUs = 2,309 FLOPs;
        # an epoch: 1,800 training rows x 3 (forward, backward) + 600 validation rows = 6,000 x 2,309
        assert a["flops"] == a["epochs"] * 13_854_000 and a["flops_definition"] == "qapbo-train-flops-v1"
        assert a["logic_same_class"] == a["logic_rows"] == 600  # da4ml's trace, checked when stored
        assert "SYNTHETIC" in a["data_note"]
    epochs = [t.params["epoch"] for t in done]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)
    # the compute that produced each checkpoint, summed in trial order, is the whole training
    assert sum(t.user_attrs["epochs"] for t in s.trials) == 40 == tail[0].user_attrs["run_epochs"]
    assert sum(t.user_attrs["epochs"] for t in done) == epochs[-1]
    assert sum(t.user_attrs["seconds"] for t in s.trials) == pytest.approx(tail[0].user_attrs["run_seconds"])
    assert "hgq seed 0 ramp epoch 40/40: beta" in p.stderr


def test_each_stored_model_gives_its_class_on_every_test_row_through_da4ml(run):
    from qapbo.data.config import DataConfig
    from qapbo.data.split import load_data
    from qapbo.nn.metrics import macro_auc
    from qapbo.study.file import load_study_file
    from qapbo.study.hgq import load_stored_model

    path, url, _, _ = run
    study = load_study_file(path)
    data = load_data(DataConfig(n_rows=3000, seed=0))
    for t in (t for t in _hgq_trials(url) if t.state == TrialState.COMPLETE):
        model = load_stored_model(study, url, t)
        logits = hgq.keras_logits(model, data.x_test)
        assert macro_auc(hgq.softmax(logits), data.y_test) == t.user_attrs["auc"]
        traced = hgq.trace_hgq(model, data.x_train)
        assert (hgq.logic_logits(traced, data.x_test).argmax(1) == logits.argmax(1)).all()
        assert traced.comb.cost == t.user_attrs["luts"]


def test_compare_and_every_figure_include_hgq(run, tmp_path):
    from qapbo.compare.figures import fronts_figure, hypervolume_figure
    from qapbo.compare.report import compare_stored
    from qapbo.study.storage import open_storage

    _, url, cmp_dir, p = run
    assert "| h-hgq | hgq |" in p.stdout and "| h-qap | qap |" in p.stdout
    assert {"fronts.png", "hypervolume.png", "bkg_eff.png", "costs.png"} <= {f.name for f in cmp_dir.iterdir()}
    r = _qapbo("compare", "--storage", url, "--cost", "luts", "--json", "--out", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    rows = {row["study"]: row for row in json.loads(r.stdout)["studies"]}
    assert rows["h-hgq"]["kind"] == "hgq" and rows["h-hgq"]["stopped_early"] == 0
    assert rows["h-hgq"]["epochs"] == 40 and rows["h-hgq"]["hypervolume"] > 0
    assert any(e["a"] == "h-hgq" or e["b"] == "h-hgq" for e in json.loads(r.stdout)["equal_compute"])
    cmp = compare_stored(open_storage(url, read_only=True), None, cost="luts")
    legend = [t.get_text() for t in fronts_figure(cmp).axes[0].get_legend().get_texts()]
    assert any(x.startswith("h-hgq HGQ2 front (") for x in legend), legend
    hv = [t.get_text() for ax in hypervolume_figure(cmp).axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "h-hgq (HGQ2, checkpoint by checkpoint)" in hv, hv


def test_sigkill_mid_run_then_the_same_command_resumes_to_the_same_checkpoints(run, tmp_path):
    from qapbo.study.file import load_study_file
    from qapbo.study.hgq import hgq_workdir

    path = tmp_path / "k.toml"
    path.write_text(STUDY.format(name="k", qap=""))
    url = f"sqlite:///{tmp_path}/k.db"
    study = load_study_file(path)
    work = hgq_workdir(study, url, 0)
    proc = subprocess.Popen(QAPBO + ["hgq", str(path), "--storage", url, "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (not work.exists() or hgq.spent(work, study.hgq)[0].epochs < 15):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert 15 <= hgq.spent(work, study.hgq)[0].epochs < 40
    p = _qapbo("hgq", str(path), "--storage", url, "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    again, whole = _hgq_trials(url, "k-hgq"), _hgq_trials(run[1])
    assert [(t.state, t.params) for t in again] == [(t.state, t.params) for t in whole]  # none lost, none twice
    for a, b in zip(again, whole):
        if a.state == TrialState.COMPLETE:
            assert a.values == b.values and all(a.user_attrs[c] == b.user_attrs[c] for c in COSTS)
    assert sum(t.user_attrs["epochs"] for t in again) == 40
    p = _qapbo("hgq", str(path), "--storage", url, "--quiet")  # a finished study trains and stores nothing
    assert p.returncode == 0 and len(_hgq_trials(url, "k-hgq")) == len(again)
    assert "1/1 seeds already stored" in p.stderr


@pytest.mark.parametrize("section, words", [
    ("[hgq]\nbetta = 1e-5\n", "unknown key 'betta' in [hgq] (did you mean 'betas'?)"),
    ("[hgq]\nbeta0 = 0.0\n", "[hgq] beta0 and beta1 hold 0.0: every beta must be > 0"),
    ("[hgq]\nbetas = [1e-6, -1e-6]\n", "[hgq] betas hold -1e-06: every beta must be > 0"),
])
def test_bad_hgq_settings_are_one_line_exit_2_nothing_written(tmp_path, section, words):
    (tmp_path / "b.toml").write_text('name = "b"\n[data]\nsource = "synthetic-jets"\nn_rows = 3000\n' + section)
    p = _qapbo("hgq", "b.toml", cwd=tmp_path)
    assert p.returncode == 2 and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == [tmp_path / "b.toml"]


def test_without_the_extra_hgq_is_one_line_naming_the_install(tmp_path):
    (tmp_path / "b.toml").write_text(STUDY.format(name="b", qap=""))
    code = "import sys; sys.modules['hgq'] = None; from qapbo.cli import main; sys.exit(main(['hgq', 'b.toml']))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == "qapbo hgq: error: HGQ2 needs hgq2, which is not installed: pip install 'qapbo[hgq]'"
    assert list(tmp_path.iterdir()) == [tmp_path / "b.toml"]


def readme_hgq_recipe() -> str:
    """The Python recipe of the README's HGQ2 export subsection, verbatim."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("### An HGQ2 checkpoint to hardware"):]
    return section[section.index("```python\n") + len("```python\n"):].split("```", 1)[0]


@pytest.mark.skipif(shutil.which("g++") is None, reason="hls4ml compiles its emulation with g++ (.ci/run installs it)")
def test_export_checks_with_hls4ml_and_the_readme_recipe_reproduces_the_stored_model(run, tmp_path):
    from qapbo.data.config import DataConfig
    from qapbo.data.split import load_data

    path, url, _, _ = run
    front = [t for t in _hgq_trials(url) if t.state == TrialState.COMPLETE]
    t = front[len(front) // 2]
    out = tmp_path / "front" / "h7.keras"
    p = _qapbo("export", str(path), "--study", "h-hgq", "--trial", str(t.number), "--storage", url, "--out",
               str(out), "--check-hls4ml")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "same class 600/600, max logit difference 0" in p.stdout, p.stdout
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["luts"] == t.user_attrs["luts"] and side["hls4ml"]["hls4ml_check"]["same_class"] == 600
    config = out.with_suffix(".hls4ml.json").read_bytes()
    assert json.loads(config)["Model"]["Strategy"] == "distributed_arithmetic"
    plain = tmp_path / "plain" / "h7.keras"  # without the check: the same configuration, byte for byte
    assert _qapbo("export", str(path), "--study", "h-hgq", "--trial", str(t.number), "--storage", url, "--out",
                  str(plain)).returncode == 0
    assert plain.with_suffix(".hls4ml.json").read_bytes() == config

    data = load_data(DataConfig(n_rows=3000, seed=0))
    model = hgq.load_checkpoint(out)
    want = hgq.keras_logits(model, data.x_test)
    np.save(tmp_path / "x.npy", data.x_test)
    recipe = readme_hgq_recipe()
    assert '"front/h7.keras"' in recipe and '"front/h7.hls4ml.json"' in recipe, recipe
    script = tmp_path / "recipe.py"
    script.write_text("import sys, numpy as np\n"
                      "x_standardized = np.load(sys.argv[1])\n"
                      f"exec({recipe!r}, globals())\n"
                      "np.save('logits.npy', logits)\n")
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "x.npy")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=900, env={k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"})
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(tmp_path / "logits.npy").reshape(len(want), -1)
    assert (got.argmax(1) == want.argmax(1)).all() and np.array_equal(got, want)

    bad = _qapbo("export", str(path), "--study", "h-hgq", "--trial", str(t.number), "--storage", url, "--out",
                 str(tmp_path / "x.keras"), "--precision", "8")
    assert bad.returncode == 2 and "--precision applies to QONNX exports" in bad.stderr


def test_run_without_the_extra_stops_before_training_anything(tmp_path):
    (tmp_path / "b.toml").write_text(STUDY.format(name="b", qap=QAP))
    code = "import sys; sys.modules['hgq'] = None; from qapbo.cli import main; sys.exit(main(['run', 'b.toml']))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "pip install 'qapbo[hgq]'; or remove the [hgq] section of b.toml" in p.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "b.toml"]  # no QAP level trained or stored first
