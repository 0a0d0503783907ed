"""The Optuna search layer end to end: budget, checkpoints, resume after SIGKILL, refusals."""

import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import count_trials
from optuna.trial import TrialState

from qapbo.cost.bops import model_bops
from qapbo.errors import StudyFileError
from qapbo.records import constraint_values
from qapbo.study.file import load_study_file, parse_study
from qapbo.study.search import pruning_schedule, run_search
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint, stored_study_text

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

TINY = """
name = "{name}"
seed = 0
[data]
n_rows = 1500
[train]
epochs = {epochs}
lr = 0.003
batch_size = 128
patience = 3
[search]
sampler = "{sampler}"
n_trials = {n_trials}
heartbeat_interval = 1
grace_period = 2
[search.space]
n_layers = {{ low = 1, high = 2 }}
width = {{ low = 4, high = 32, log = true }}
bits = {{ choices = [3, 4, 6, 32] }}
sparsity = {{ choices = [0.0, 0.5] }}
"""


def write(tmp_path, name="s", epochs=3, sampler="tpe", n_trials=6, extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(name=name, epochs=epochs, sampler=sampler, n_trials=n_trials) + extra)
    return path


def quiet(_msg):
    pass


def test_six_trials_complete_with_checkpoints_that_reproduce_bops(tmp_path):
    study = load_study_file(write(tmp_path))
    url = f"sqlite:///{tmp_path}/s.db"
    (ostudy,) = run_search(study, storage=url, progress=False, log=quiet)
    trials = ostudy.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    store = artifact_store(artifact_dir(study, url))
    for t in trials:
        model, meta = load_checkpoint(store, t.user_attrs["checkpoint"])
        assert meta["trial"] == t.number
        assert model_bops(model).total == t.values[1] == t.user_attrs["bops"]
        assert t.values[0] == t.user_attrs["auc"]
        assert len(t.user_attrs["intermediate_val_auc"]) >= t.user_attrs["epochs"]
        for key in ["accuracy", "auc_per_class", "bkg_eff_at_sig50", "sparsity_per_layer", "seconds",
                    "bops_definition", "data_fingerprint"]:
            assert key in t.user_attrs
        if t.params["sparsity"] == 0.5:
            assert abs(t.user_attrs["sparsity"] - 0.5) < 0.01
    # the study file and its hash travel with the study
    assert stored_study_text(ostudy) == study.text
    # resuming a finished study runs nothing more
    run_search(study, storage=url, progress=False, log=quiet)
    assert len(optuna.load_study(study_name="s-search", storage=url).trials) == 6


def test_same_seed_proposes_the_same_parameters(tmp_path):
    study = load_study_file(write(tmp_path, epochs=1, n_trials=4))
    a = run_search(study, storage=f"sqlite:///{tmp_path}/a.db", progress=False, log=quiet)[0]
    b = run_search(study, storage=f"sqlite:///{tmp_path}/b.db", progress=False, log=quiet)[0]
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]


def test_changed_space_is_refused_and_storage_untouched(tmp_path):
    path = write(tmp_path, epochs=1, n_trials=2)
    url = f"sqlite:///{tmp_path}/s.db"
    run_search(load_study_file(path), storage=url, progress=False, log=quiet)
    before = (tmp_path / "s.db").read_bytes()
    path.write_text(path.read_text().replace("choices = [3, 4, 6, 32]", "choices = [2, 4]"))
    with pytest.raises(StudyFileError, match=r"search.space.bits.choices: \[3, 4, 6, 32\] -> \[2, 4\]"):
        run_search(load_study_file(path), storage=url, progress=False, log=quiet)
    assert (tmp_path / "s.db").read_bytes() == before
    # a larger budget is not a changed space: the study resumes
    path.write_text(path.read_text().replace("choices = [2, 4]", "choices = [3, 4, 6, 32]")
                    .replace("n_trials = 2", "n_trials = 3"))
    (ostudy,) = run_search(load_study_file(path), storage=url, progress=False, log=quiet)
    assert len(ostudy.get_trials(states=(TrialState.COMPLETE,))) == 3


def test_nan_loss_fails_one_trial_with_its_reason_and_the_study_goes_on(tmp_path):
    extra = "lr = { choices = [0.003, 1e30] }\nbn = 'none'\n"
    path = write(tmp_path, epochs=2, sampler="random", n_trials=3, extra=extra)
    (ostudy,) = run_search(load_study_file(path), storage=f"sqlite:///{tmp_path}/s.db", progress=False, log=quiet)
    failed = ostudy.get_trials(states=(TrialState.FAIL,))
    complete = ostudy.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3 and failed
    for t in failed:
        assert t.params["lr"] == 1e30 and "loss became" in t.user_attrs["fail_reason"] and t.values is None
    assert all(t.params["lr"] == 0.003 for t in complete)




def test_sigkill_mid_trial_then_resume(tmp_path):
    path = write(tmp_path, epochs=30, n_trials=4)
    db = tmp_path / "k.db"
    cmd = QAPBO.split() + ["search", str(path), "--storage", f"sqlite:///{db}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (count_trials(db, "COMPLETE") >= 1 and count_trials(db, "RUNNING") == 1) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the next trial's training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert count_trials(db, "RUNNING") == 1, "the kill should leave one zombie trial"
    zombie = [t for t in optuna.load_study(study_name="s-search", storage=f"sqlite:///{db}").trials
              if t.state == TrialState.RUNNING][0]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "marked 1 dead trial(s) FAIL" in done.stderr
    trials = optuna.load_study(study_name="s-search", storage=f"sqlite:///{db}").trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 4
    assert states.count(TrialState.RUNNING) == 0 and states.count(TrialState.WAITING) == 0
    assert trials[zombie.number].state == TrialState.FAIL
    retried = [t for t in trials if t.number > zombie.number and t.params == zombie.params]
    assert retried and retried[0].state == TrialState.COMPLETE  # its parameters ran again


def test_ctrl_c_mid_trial_then_resume_runs_its_parameters_again(tmp_path):
    path = write(tmp_path, epochs=30, n_trials=3)
    db = tmp_path / "i.db"
    cmd = QAPBO.split() + ["search", str(path), "--storage", f"sqlite:///{db}", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (count_trials(db, "COMPLETE") >= 1 and count_trials(db, "RUNNING") == 1) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the next trial's training
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted; rerun the same command to resume" in err, err
    url = f"sqlite:///{db}"
    (stopped,) = optuna.load_study(study_name="s-search", storage=url).get_trials(states=(TrialState.FAIL,))
    assert stopped.user_attrs["interrupted"] is True and "interrupted (Ctrl-C)" in stopped.user_attrs["fail_reason"]
    assert count_trials(db, "RUNNING") == 0  # Optuna stored it FAIL at once: nothing waits for a heartbeat
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (f"1 interrupted trial(s) (trial {stopped.number}) queued to run again with the same parameters"
            in done.stderr), done.stderr
    trials = optuna.load_study(study_name="s-search", storage=url).trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 1
    assert states.count(TrialState.RUNNING) == 0 and states.count(TrialState.WAITING) == 0
    (retried,) = [t for t in trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert retried.params == stopped.params and retried.state == TrialState.COMPLETE
    assert "interrupted" not in retried.user_attrs and "fail_reason" not in retried.user_attrs
    # a third run has nothing left to queue
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "queued to run again" not in again.stderr
    assert len(optuna.load_study(study_name="s-search", storage=url).trials) == 4


def test_an_interrupted_trial_is_queued_once_and_within_max_retry(tmp_path, monkeypatch):
    from qapbo.study.search import Objective, prepare_search

    path = write(tmp_path, epochs=1, n_trials=2)
    path.write_text(path.read_text().replace("grace_period = 2", "grace_period = 2\nmax_retry = 1"))
    study = load_study_file(path)
    url = f"sqlite:///{tmp_path}/q.db"
    fit = Objective._fit

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Objective, "_fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(study, storage=url, progress=False, log=quiet)
    # prepared twice (a parent and its worker): queued once
    for _ in range(2):
        prepare_search(study, storage=url, say=quiet)
    (ostudy,) = prepare_search(study, storage=url, say=quiet).studies
    assert [t.state for t in ostudy.trials] == [TrialState.FAIL, TrialState.WAITING]
    # interrupted again: its retry is queued once more (max_retry = 1 allows one retry of trial 0, not two)
    with pytest.raises(KeyboardInterrupt):
        run_search(study, storage=url, progress=False, log=quiet)
    (ostudy,) = prepare_search(study, storage=url, say=quiet).studies
    assert [t.state for t in ostudy.trials] == [TrialState.FAIL, TrialState.FAIL]
    monkeypatch.setattr(Objective, "_fit", fit)
    (ostudy,) = run_search(study, storage=url, progress=False, log=quiet)
    assert [t.state for t in ostudy.trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE,
                                                TrialState.COMPLETE]


def test_pruning_schedule_inside_a_trial():
    assert pruning_schedule(0.0) == (0.0,)
    assert pruning_schedule(0.5) == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    assert pruning_schedule(0.95) == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


BASE = "name = 'x'\n[search]\nn_trials = 2\n"


@pytest.mark.parametrize(
    "extra,message",
    [
        ("sampler = 'cmaes'\n", "unknown sampler 'cmaes'"),
        ("[search.space]\nbits = { choices = [4, 64] }\n", "bits value 64 is out of range"),
        ("[search.space]\nn_layers = 2\nwidth = 16\nbits = 6\n", "every dimension is fixed"),
        ("[search.space]\nwidht = 3\n", "unknown key 'widht' in [search.space] (did you mean 'width'?)"),
        ("[search.space]\nwidth = { low = 64, high = 8 }\n", "width low (64) must be below high (8)"),
        ("[search.space]\nbn = { choices = ['affine', 'batch'] }\n", "bn value(s) ['batch'] unknown"),
        ("[search.space]\nsparsity = { choices = [0.0, 1.0] }\n", "sparsity targets must lie in [0, 1)"),
        ("preset = 'paper-bo'\n[search.space]\nbits = 6\n", "preset and space exclude each other"),
        ("preset = 'paper-bo'\nprecisions = [6, 1]\n", "precisions value 1 is out of range"),
        ("[search.space]\nbits = { choices = [4, 6] }\n[objectives]\nconstraints = ['auc > 0.9']\n",
         "constraint 'auc > 0.9' not understood"),
        ("[search.space]\nbits = { choices = [4, 6] }\n[objectives]\nbops = 'maximize'\n", "bops = \"minimize\""),
    ],
)
def test_bad_search_files(extra, message):
    with pytest.raises(StudyFileError) as err:
        parse_study(BASE + extra, "s.toml")
    assert message in str(err.value)


def test_paper_bo_preset_runs_one_study_per_precision(tmp_path):
    text = ("name = 'p'\n[data]\nn_rows = 1500\n[train]\nepochs = 1\nbatch_size = 128\n"
            "[search]\npreset = 'paper-bo'\nprecisions = [32, 6]\nn_trials = 2\nsampler = 'random'\n")
    study = parse_study(text, "p.toml")
    studies = run_search(study, storage=f"sqlite:///{tmp_path}/p.db", progress=False, log=quiet)
    assert [s.study_name for s in studies] == ["p-search-32b", "p-search-6b"]
    for s, bits in zip(studies, (32, 6)):
        for t in s.trials:
            assert set(t.params) == {"width_1", "width_2", "width_3"}
            assert 8 <= t.params["width_1"] <= 128 and 4 <= t.params["width_3"] <= 64
            assert t.user_attrs["model"]["weight_bits"] == [bits] * 4


def test_constraints_are_stored_for_the_sampler(tmp_path):
    extra = "[objectives]\nconstraints = ['auc >= 0.99', 'bops <= 1e9']\n"
    (ostudy,) = run_search(load_study_file(write(tmp_path, epochs=1, n_trials=2, extra=extra)),
                           storage=f"sqlite:///{tmp_path}/c.db", progress=False, log=quiet)
    for t in ostudy.trials:
        auc, bops = t.values
        assert t.user_attrs["constraints"] == pytest.approx([0.99 - auc, bops - 1e9])
        assert constraint_values(t) == pytest.approx({"auc >= 0.99": 0.99 - auc, "bops <= 1e+09": bops - 1e9,
                                                      "min_auc": 0.55 - auc})  # the study's minimum useful AUC
        # in Optuna's list form, which its samplers and optuna-dashboard read, each once
        assert list(t.constraints.values()) == pytest.approx([0.99 - auc, bops - 1e9, 0.55 - auc])
    assert ostudy.best_trials == []  # AUC 0.99 is out of reach: no feasible trial, no front


def test_botorch_without_the_extra_says_how_to_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("optuna_integration") is not None:
        pytest.skip("optuna-integration is installed here")
    path = write(tmp_path, sampler="botorch", n_trials=1, epochs=1)
    p = subprocess.run(QAPBO.split() + ["search", str(path), "--storage", f"sqlite:///{tmp_path}/b.db", "--quiet"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "pip install 'qapbo[botorch]'" in p.stderr and "Traceback" not in p.stderr


def test_a_pruned_trial_counts_the_training_of_every_level(tmp_path):
    text = ("name = 'pl'\n[data]\nn_rows = 1500\n[train]\nepochs = 2\npatience = 2\nbatch_size = 128\n"
            "[search]\nsampler = 'random'\nn_trials = 1\n[search.space]\nn_layers = 1\n"
            "width = { choices = [8, 16] }\nsparsity = 0.5\n")
    (ostudy,) = run_search(parse_study(text, "pl.toml"), storage=f"sqlite:///{tmp_path}/pl.db", progress=False,
                           log=quiet)
    (t,) = ostudy.trials
    assert t.user_attrs["pruning_levels"] == 6  # 0, 10, 20, 30, 40, 50 %
    assert t.user_attrs["epochs"] == 6 * 2  # every level trained its 2 epochs
    assert len(t.user_attrs["intermediate_val_auc"]) == 12
    # FLOPs of all 12 epochs: each trains the training rows and evaluates the validation rows twice (loss, AUC)
    from qapbo.cost.flops import forward_flops
    from qapbo.data.split import load_data

    data = load_data(parse_study(text, "pl.toml").data)
    n_train, n_val = len(data.y_train), len(data.y_val)
    rows = n_train - 1 if n_train % 128 == 1 else n_train
    f = forward_flops((16, t.params["width_1"], 5), "affine")
    assert t.user_attrs["flops"] == 12 * (3 * f * rows + 2 * f * n_val)
    assert t.user_attrs["flops_definition"] == "qapbo-train-flops-v1"
    assert 0 < t.user_attrs["cpu_seconds"]
