"""The learned-precision chain as a study: `[learned]`, `qapbo learned`, part of `qapbo run`, compared, resumed after SIGKILL.

Small on purpose: 3,000 synthetic jets and a 16-16-8-5 learned-precision net for 120 epochs of a
steep beta ramp, run through the command line the way a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from qapbo.cost.measure import hw_available
from qapbo.records import constraint_values

pytestmark = pytest.mark.skipif(not hw_available(), reason="LUTs need da4ml (pip install 'qapbo[hw]')")

QAPBO = [sys.executable, "-m", "qapbo.cli"]
EPOCHS = 120
STUDY = f"""
name = "{{name}}"
seed = 0

[data]
source = "synthetic-jets"
n_rows = 3000

[learned]
hidden = [16, 8]
epochs = {EPOCHS}
batch_size = 256
beta0 = 1e-6
beta1 = 3e-3
"""
COSTS = ("luts", "latency", "ebops", "bops")


def _qapbo(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(QAPBO + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`qapbo run` of a file with [learned] alone: (study file, storage URL, figures directory, process)."""
    tmp = tmp_path_factory.mktemp("learned-run")
    path = tmp / "c.toml"
    path.write_text(STUDY.format(name="c"))
    url = f"sqlite:///{tmp}/c.db"
    p = _qapbo("run", str(path), "--storage", url, "--out", str(tmp / "cmp"), "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    return path, url, tmp / "cmp", p


def _trials(url: str, name: str = "c-learned") -> list:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def test_run_stores_the_chains_front_with_every_cost_and_its_compute(run):
    from qapbo.data.config import DataConfig
    from qapbo.data.split import load_data
    from qapbo.study.file import load_study_file
    from qapbo.train.learned import epoch_flops

    path, url, _, p = run
    s = optuna.load_study(study_name="c-learned", storage=url)
    assert s.user_attrs["qapbo_kind"] == "learned" and s.metric_names == ["auc", "luts"]
    done = [t for t in s.trials if t.state == TrialState.COMPLETE]
    tail = [t for t in s.trials if t.state == TrialState.PRUNED]
    assert len(done) >= 3 and len(tail) == 1 and tail[0].user_attrs["run_tail"]
    per_epoch = epoch_flops(load_data(DataConfig(n_rows=3000, seed=0)), load_study_file(path).learned)
    # 16-16-8-5: 2*16*16+16 + 2*16*8+8 + 2*8*5+5 + 24 ReLUs = 901 FLOPs a row; 1,800 training rows x 3
    # (forward, backward), again forward to calibrate, and 600 validation rows: 7,800 rows
    assert per_epoch == 7_800 * 901
    for t in done:
        a = t.user_attrs
        assert a["kind"] == "learned" and t.values == [a["auc"], a["luts"]]
        for c in COSTS:
            assert a[c] > 0 and a[f"{c}_definition"], c
        assert a["bops_definition"] == "hawks2021-perweight-v1" and a["ebops_definition"] == "hgq2-ebops-v1"
        assert a["ebops"] == a["ebops_front"]  # the front judged the very net that is stored
        assert constraint_values(t)["min_auc"] == pytest.approx(0.55 - a["auc"])
        assert a["flops"] == a["epochs"] * per_epoch and a["flops_definition"] == "qapbo-train-flops-v1"
        assert a["logic_same_class"] == a["logic_rows"] == 600 and a["logic_max_abs_diff"] == 0.0
        assert a["model"]["precision"] == "learned" and a["model"]["beta"] == a["beta"] > 0
        assert "SYNTHETIC" in a["data_note"]
    epochs = [t.params["epoch"] for t in done]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)
    betas = [t.user_attrs["beta"] for t in done]
    assert betas == sorted(betas) and betas[-1] / betas[0] > 3  # the ramp
    # on the front: more EBOPs only for a better validation AUC
    val = sorted((t.user_attrs["ebops"], t.user_attrs["val_auc"]) for t in done)
    assert all(a[1] < b[1] for a, b in zip(val, val[1:]))
    assert sum(t.user_attrs["epochs"] for t in s.trials) == EPOCHS == tail[0].user_attrs["run_epochs"]
    assert sum(t.user_attrs["cpu_seconds"] for t in s.trials) == pytest.approx(tail[0].user_attrs["run_cpu_seconds"])
    assert f"learned seed 0 ramp epoch {EPOCHS}/{EPOCHS}: beta" in p.stderr


def test_each_stored_checkpoint_reloads_and_gives_its_stored_auc_and_luts(run):
    from qapbo.cost.learned import learned_costs
    from qapbo.data.config import DataConfig
    from qapbo.data.split import load_data
    from qapbo.nn.metrics import evaluate
    from qapbo.study.file import load_study_file
    from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint

    path, url, _, _ = run
    store = artifact_store(artifact_dir(load_study_file(path), url), create=False)
    data = load_data(DataConfig(n_rows=3000, seed=0))
    for t in (t for t in _trials(url) if t.state == TrialState.COMPLETE):
        model, meta = load_checkpoint(store, t.user_attrs["checkpoint"])
        assert meta["epoch"] == t.params["epoch"]
        m = evaluate(model, data.x_test, data.y_test, data.class_names)
        assert m["auc"] == t.user_attrs["auc"] and m["accuracy"] == t.user_attrs["accuracy"]
        costs = learned_costs(model, hw=True)
        assert all(costs[c] == t.user_attrs[c] for c in COSTS)


def test_compare_and_the_figures_include_the_learned_study(run, tmp_path):
    from qapbo.compare.figures import fronts_figure
    from qapbo.compare.report import compare_stored
    from qapbo.study.storage import open_storage

    _, url, cmp_dir, p = run
    assert "| c-learned | learned |" in p.stdout
    assert {"fronts.png", "hypervolume.png"} <= {f.name for f in cmp_dir.iterdir()}
    r = _qapbo("compare", "--storage", url, "--cost", "luts", "--json", "--out", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    rows = {row["study"]: row for row in json.loads(r.stdout)["studies"]}
    assert rows["c-learned"]["kind"] == "learned" and rows["c-learned"]["stopped_early"] == 0
    assert rows["c-learned"]["epochs"] == EPOCHS and rows["c-learned"]["hypervolume"] > 0
    cmp = compare_stored(open_storage(url, read_only=True), None, cost="luts")
    legend = [t.get_text() for t in fronts_figure(cmp).axes[0].get_legend().get_texts()]
    assert any(x.startswith("c-learned learned-precision chain front (") for x in legend), legend


def _saved_epoch(state: Path) -> int:
    try:
        return int(torch.load(state, weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):  # not yet written
        return 0


def test_sigkill_mid_run_then_the_same_command_resumes_to_the_same_checkpoints(run, tmp_path):
    from qapbo.study.file import load_study_file
    from qapbo.study.learned import learned_workdir
    from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint

    path = tmp_path / "c.toml"
    path.write_text(STUDY.format(name="c"))  # the same study as the fixture's, in another storage
    url = f"sqlite:///{tmp_path}/k.db"
    study = load_study_file(path)
    state = learned_workdir(study, url, 0) / "ramp" / "state.pt"
    proc = subprocess.Popen(QAPBO + ["learned", str(path), "--storage", url, "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and _saved_epoch(state) < 10:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _saved_epoch(state)
    assert 10 <= killed_at < EPOCHS and not _trials(url)  # killed while training: nothing stored yet
    p = _qapbo("learned", str(path), "--storage", url, "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    again, whole = _trials(url), _trials(run[1])
    assert [(t.state, t.params) for t in again] == [(t.state, t.params) for t in whole]  # none lost, none twice
    stores = [artifact_store(artifact_dir(study, u), create=False) for u in (url, run[1])]
    for a, b in zip(again, whole):
        if a.state == TrialState.COMPLETE:
            assert a.values == b.values and all(a.user_attrs[c] == b.user_attrs[c] for c in (*COSTS, "val_auc"))
            ma, mb = (load_checkpoint(s, t.user_attrs["checkpoint"])[0] for s, t in zip(stores, (a, b)))
            sa, sb = ma.state_dict(), mb.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # bit for bit
    assert sum(t.user_attrs["epochs"] for t in again) == EPOCHS
    p = _qapbo("learned", str(path), "--storage", url, "--quiet")  # a finished study trains and stores nothing
    assert p.returncode == 0 and len(_trials(url)) == len(again)
    assert "1/1 seeds already stored" in p.stderr


def test_a_workdir_of_other_settings_is_refused(tmp_path):
    from qapbo.data.config import DataConfig
    from qapbo.data.split import load_data
    from qapbo.errors import TrainingError
    from qapbo.train.config import LearnedSettings
    from qapbo.train.learned import train_chain

    data = load_data(DataConfig(n_rows=3000, seed=0))
    s = LearnedSettings(hidden=(8,), epochs=3, batch_size=512)
    first = train_chain(data, s, tmp_path, seed=0)
    assert first and all(Path(c.path).exists() for c in first)
    assert [c.to_dict() for c in train_chain(data, s, tmp_path, seed=0)] == [c.to_dict() for c in first]  # done: no training
    with pytest.raises(TrainingError, match="other seed"):
        train_chain(data, s, tmp_path, seed=1)


@pytest.mark.parametrize("section, words", [
    ("[learned]\nbetta = 1e-5\n", "unknown key 'betta' in [learned] (did you mean 'betas'?)"),
    ("[learned]\nbeta0 = 0.0\n", "[learned] beta0 and beta1 hold 0.0: every beta must be > 0"),
    ("[learned]\nbetas = [1e-6, -1e-6]\n", "[learned] betas hold -1e-06: every beta must be > 0"),
    ("[learned]\ninit_bits = 17\n", "[learned] init_bits is 17: use a whole number of fractional bits from 0 to 16"),
    ("[learned]\nbits_lr = 0.0\n", "[learned] bits_lr is 0.0: use a learning rate > 0"),
    ("[learned]\nbatch_size = 1\n", "[learned] batch_size is 1: use a whole number >= 2"),
    ("[learned]\nseeds = [1, 1]\n", "[learned] seeds [1, 1] repeat a seed"),
])
def test_bad_learned_settings_are_one_line_exit_2_nothing_written(tmp_path, section, words):
    (tmp_path / "b.toml").write_text('name = "b"\n[data]\nsource = "synthetic-jets"\nn_rows = 3000\n' + section)
    p = _qapbo("learned", "b.toml", cwd=tmp_path)
    assert p.returncode == 2 and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == [tmp_path / "b.toml"]


def test_a_file_without_learned_is_one_line(tmp_path):
    (tmp_path / "b.toml").write_text('name = "b"\n[data]\nsource = "synthetic-jets"\nn_rows = 3000\n'
                                     '[qap]\nhidden = [8]\nprecisions = [6]\nmodes = ["ft"]\nschedule = [0.0]\n')
    p = _qapbo("learned", "b.toml", cwd=tmp_path)
    assert p.returncode == 2 and "no [learned] section" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [tmp_path / "b.toml"]


def test_the_shared_front_rule_keeps_only_undominated_states():
    from qapbo.train.front import front_after

    a, b = {"val_auc": 0.8, "ebops": 100.0}, {"val_auc": 0.7, "ebops": 50.0}
    assert front_after([], a) == [] and front_after([a], b) == [a]
    assert front_after([a, b], {"val_auc": 0.75, "ebops": 100.0}) is None  # a is as cheap and better
    assert front_after([a, b], {"val_auc": 0.8, "ebops": 100.0}) is None  # equal: weakly dominated
    assert front_after([a, b], {"val_auc": 0.9, "ebops": 40.0}) == []  # beats both
    assert np.isclose(front_after([a, b], {"val_auc": 0.85, "ebops": 60.0})[0]["ebops"], 50.0)  # drops a only


def test_points_within_a_cpu_budget_are_those_stored_by_then(run):
    from qapbo.compare.compute import points_within
    from qapbo.compare.results import load_results
    from qapbo.records import is_feasible
    from qapbo.study.storage import open_storage

    (r,) = load_results(open_storage(run[1], read_only=True), ["c-learned"], cost="luts")
    feasible = [(t.values[0], t.values[1]) for t in sorted(r.trials, key=lambda t: t.number) if is_feasible(t)]
    assert points_within(r, cpu_seconds=r.cpu_seconds) == feasible and len(feasible) >= 3
    assert points_within(r, cpu_seconds=0.0) == []
    first = min(r.trials, key=lambda t: t.number)
    assert points_within(r, cpu_seconds=first.user_attrs["cpu_seconds"]) == feasible[:1]
