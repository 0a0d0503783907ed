"""QAP runs end to end: storage, checkpoints, resume after SIGKILL, changed study files."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from qapbo.cost.bops import model_bops
from qapbo.data.split import load_data
from qapbo.errors import StudyFileError
from qapbo.nn.metrics import evaluate
from qapbo.study.file import load_study_file, parse_study
from qapbo.study.qap import qap_study_name, run_qap
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

TINY = """
name = "{name}"
seed = 0
[data]
n_rows = {rows}
[train]
epochs = {epochs}
lr = 0.003
batch_size = 128
patience = {epochs}
[qap]
hidden = [32, 16]
precisions = [32, 4]
modes = ["ft", "lt"]
schedule = [0.0, 0.5, 0.8]
"""


def write_study(tmp_path, name="tiny", rows=1500, epochs=3, **changes):
    text = TINY.format(name=name, rows=rows, epochs=epochs)
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def trials_of(url, name):
    s = optuna.load_study(study_name=name, storage=url)
    return s.get_trials(deepcopy=False)


def test_run_stores_one_trial_per_level_with_reloadable_checkpoints(tmp_path):
    path = write_study(tmp_path)
    study = load_study_file(path)
    url = f"sqlite:///{tmp_path}/tiny.db"
    ostudy = run_qap(study, storage=url, progress=False, log=lambda m: None)
    trials = ostudy.get_trials()
    assert len(trials) == 2 * 2 * 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    keys = {(t.params["precision"], t.params["mode"], t.params["level"]) for t in trials}
    assert len(keys) == 12
    data = load_data(study.data)
    store = artifact_store(artifact_dir(study, url))
    assert artifact_dir(study, url) == tmp_path / "tiny.artifacts"
    for t in trials:
        a = t.user_attrs
        for key in ["accuracy", "auc_per_class", "bkg_eff_at_sig50", "sparsity_per_layer", "epochs", "seconds",
                    "bops_definition", "data_fingerprint", "checkpoint"]:
            assert key in a
        assert t.values == [a["auc"], a["bops"]]
        assert a["data_fingerprint"] == data.fingerprint
        assert (t.datetime_complete - t.datetime_start).total_seconds() == pytest.approx(a["seconds"], abs=1e-3)
        model, meta = load_checkpoint(store, a["checkpoint"])
        assert meta["level"] == t.params["level"]
        again = evaluate(model, data.x_test, data.y_test, data.class_names)
        assert again["auc"] == a["auc"] and again["sparsity"] == a["sparsity"]
        assert model_bops(model).total == a["bops"]
    # rerunning a finished run adds nothing
    run_qap(study, storage=url, progress=False, log=lambda m: None)
    assert len(trials_of(url, qap_study_name(study))) == 12


def test_changed_study_file_is_refused_and_storage_untouched(tmp_path):
    path = write_study(tmp_path, epochs=2)
    url = f"sqlite:///{tmp_path}/tiny.db"
    run_qap(load_study_file(path), storage=url, progress=False, log=lambda m: None)
    before = (tmp_path / "tiny.db").read_bytes()
    changed = write_study(tmp_path, epochs=2, **{"precisions = [32, 4]": "precisions = [32, 6]",
                                                 "lr = 0.003": "lr = 0.01"})
    with pytest.raises(StudyFileError) as err:
        run_qap(load_study_file(changed), storage=url, progress=False, log=lambda m: None)
    msg = str(err.value)
    assert "changed since study 'tiny-qap' started" in msg
    assert "qap.precisions: [32, 4] -> [32, 6]" in msg and "train.lr: 0.003 -> 0.01" in msg
    assert (tmp_path / "tiny.db").read_bytes() == before


def _run_cli(path, url, **kw):
    return subprocess.Popen(QAPBO.split() + ["qap", str(path), "--storage", url, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _complete(db):
    if not os.path.exists(db):
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_sigkill_mid_level_then_resume_matches_uninterrupted_run(tmp_path):
    path = write_study(tmp_path, rows=3000, epochs=8)
    # reference: one uninterrupted run
    ref_url = f"sqlite:///{tmp_path}/ref.db"
    ref = _run_cli(path, ref_url)
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    # killed run: SIGKILL right after the 4th level is stored, i.e. while level 5 trains
    db = tmp_path / "killed.db"
    url = f"sqlite:///{db}"
    proc = _run_cli(path, url)
    deadline = time.time() + 240
    while _complete(db) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _complete(db)
    assert 4 <= stored < 12, "the run should have been killed mid-way"
    resumed = _run_cli(path, url)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"{stored}/12 levels already stored" in err
    got = trials_of(url, "tiny-qap")
    want = trials_of(ref_url, "tiny-qap")
    assert len(got) == 12 and all(t.state == optuna.trial.TrialState.COMPLETE for t in got)

    def table(trials):
        return {(t.params["precision"], t.params["mode"], t.params["level"]): t for t in trials}

    g, w = table(got), table(want)
    assert set(g) == set(w) and len(g) == 12  # exactly one trial per (precision, mode, level)
    for k in w:
        assert g[k].values == w[k].values, k
        for attr in ["accuracy", "auc_per_class", "sparsity_per_layer", "epochs", "best_val_loss"]:
            assert g[k].user_attrs[attr] == w[k].user_attrs[attr], (k, attr)


@pytest.mark.parametrize(
    "text,message",
    [
        ("name = 'x'\n[qap]\nprecision = [6]\n", "unknown key 'precision' in [qap] (did you mean 'precisions'?)"),
        ("name = 'x'\n[trian]\nepochs = 3\n", "unknown section [trian] (did you mean 'train'?)"),
        ("name = 'x'\n[train]\nepochs = 'ten'\n", "[train] key 'epochs' must be an integer, got str 'ten'"),
        ("name = 'x'\n[qap]\nprecisions = [6, 40]\n", "bit width 40 for layer 1 is out of range"),
        ("name = 'x'\n[qap]\nprecisions = []\n", "precisions is empty"),
        ("name = 'x'\n[qap]\nschedule = [0.0, 0.9, 0.5]\n", "must increase strictly"),
        ("name = 'x'\n[qap]\nschedule = [0.1, 0.5]\n", "must start at 0.0"),
        ("name = 'x'\n[qap]\nmodes = ['ft', 'rewind']\n", "modes ['ft', 'rewind'] must be"),
        ("seed = 1\n", "missing key 'name'"),
        ("name = 'x\n", "not valid TOML"),
        ("name = 'a/b'\n", "without slashes"),
        ("name = 'x'\n[data]\nsource = 'root'\n", "unknown data source 'root'"),
        ("name = 'x'\n[train]\nlr = -1\n", "lr is -1.0"),
    ],
)
def test_bad_study_files(text, message):
    with pytest.raises(StudyFileError) as err:
        parse_study(text, "s.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("s.toml")


@pytest.mark.parametrize("args,message", [
    (["qap", "missing.toml"], "no such study file"),
])
def test_cli_bad_study_exit_2(args, message, tmp_path):
    p = subprocess.run(QAPBO.split() + args, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_cli_unreachable_storage_exit_2(tmp_path):
    path = write_study(tmp_path, epochs=1)
    p = subprocess.run(QAPBO.split() + ["qap", str(path), "--storage", "postgresql://u:secret@127.0.0.1:1/db",
                                        "--quiet"], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert "cannot open storage postgresql://u:***@127.0.0.1:1/db" in p.stderr
    assert "secret" not in p.stderr and "Traceback" not in p.stderr


def test_folds_and_label_randomization_are_tagged_and_compared(tmp_path):
    from qapbo.compare.report import compare
    from qapbo.compare.results import load_results

    text = TINY.format(name="gen", rows=1500, epochs=2).replace(
        "[data]\nn_rows = 1500", "[data]\nn_rows = 1500\nfolds = 2\nrandomize_labels = [0.0, 0.5]").replace(
        "precisions = [32, 4]", "precisions = [6]").replace('modes = ["ft", "lt"]', 'modes = ["ft"]')
    study = parse_study(text, "gen.toml")
    url = f"sqlite:///{tmp_path}/gen.db"
    ostudy = run_qap(study, storage=url, progress=False, log=lambda m: None)
    trials = ostudy.get_trials()
    assert len(trials) == 2 * 2 * 3  # folds x randomizations x levels
    tags = {(t.params["fold"], t.params["randomized"]) for t in trials}
    assert tags == {(0, 0.0), (1, 0.0), (0, 0.5), (1, 0.5)}
    for t in trials:
        assert t.user_attrs["data"]["fold"] == t.params["fold"]
        assert t.user_attrs["data"]["randomize_labels"] == t.params["randomized"]
        assert 0.0 <= t.user_attrs["network_efficiency"] <= 1.0 and "aiq" in t.user_attrs
    results = load_results(url)
    assert [r.name for r in results] == ["gen-qap [labels 0% random]", "gen-qap [labels 50% random]"]
    cmp = compare(results)
    assert all(r["hypervolume_seeds"] == 2 and r["hypervolume_std"] >= 0 for r in cmp.rows)
    # the figure tells the shares apart: one colour and one legend entry per share, folds folded in
    from qapbo.compare.figures import fronts_figure

    ax = fronts_figure(cmp).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [x for x in legend if not x.startswith("below AUC")] == [  # levels below the AUC axis are marked apart
        "labels 0% random: QAP 6-bit FT (2 seeds/folds)", "labels 50% random: QAP 6-bit FT (2 seeds/folds)"]
    colors = {tuple(line.get_color()) for line in ax.get_lines()}
    assert len(ax.get_lines()) == 4 and len(colors) == 2


def test_two_workers_resume_and_match_a_one_process_run(tmp_path):
    """Workers take whole chains from a queue; the stored levels equal a one-process run's."""
    from qapbo.study.qap import qap_chains

    path = write_study(tmp_path, rows=2000, epochs=3)
    study = load_study_file(path)
    ref_url = f"sqlite:///{tmp_path}/ref.db"
    want = run_qap(study, storage=ref_url, progress=False, log=lambda m: None).get_trials()
    # one chain already stored by an earlier (stopped) run; the workers must only run the other three
    url = f"sqlite:///{tmp_path}/workers.db"
    chains = qap_chains(study)
    assert [(c["precision"], c["mode"]) for c in chains] == [(32, "ft"), (32, "lt"), (4, "ft"), (4, "lt")]
    run_qap(study, storage=url, progress=False, log=lambda m: None, chains=[3])
    p = subprocess.run(QAPBO.split() + ["qap", str(path), "--storage", url, "--workers", "2", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "3/12 levels already stored" in p.stderr and "3 chain(s) to run on 2 workers" in p.stderr
    level_lines = [ln for ln in p.stderr.splitlines() if " level " in ln and "AUC" in ln]
    assert len(level_lines) == 9 and all(ln.startswith("[worker ") for ln in level_lines)
    assert not any("4-bit LT" in ln for ln in level_lines)  # the stored chain was not run again
    got = trials_of(url, "tiny-qap")
    assert len(got) == 12 and all(t.state == optuna.trial.TrialState.COMPLETE for t in got)

    def table(trials):
        return {(t.params["precision"], t.params["mode"], t.params["level"]): t for t in trials}

    g, w = table(got), table(want)
    assert set(g) == set(w) and len(g) == 12
    for k in w:
        assert g[k].values == w[k].values, k
        assert g[k].user_attrs["sparsity_per_layer"] == w[k].user_attrs["sparsity_per_layer"], k


def _children(pid):
    kids = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(stat))
    return kids


def test_sigint_to_the_parent_alone_stops_every_worker_then_resume(tmp_path):
    """`kill -INT` of the parent (a scheduler, not a terminal): the workers stop too; a rerun finishes."""
    # levels of ~1-2 s: the workers must still have several to go when they are told to stop
    path = write_study(tmp_path, rows=3000, epochs=40)
    db = tmp_path / "int.db"
    url = f"sqlite:///{db}"
    proc = subprocess.Popen(QAPBO.split() + ["qap", str(path), "--storage", url, "--workers", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while _complete(db) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert len(workers) >= 2, "the workers (and the multiprocessing resource tracker) should be running"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
    time.sleep(1)  # the resource tracker exits once its pipe from the parent closes
    for pid in workers:
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone
        assert state == "Z", f"a worker outlived the interrupted parent: {pid} {state} {cmd}"
    stored = _complete(db)
    assert 2 <= stored < 12
    again = subprocess.run(QAPBO.split() + ["qap", str(path), "--storage", url, "--workers", "2", "--quiet"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{stored}/12 levels already stored" in again.stderr
    trials = trials_of(url, "tiny-qap")
    keys = {(t.params["precision"], t.params["mode"], t.params["level"]) for t in trials}
    assert len(trials) == 12 and len(keys) == 12


def test_a_layer_pruned_away_is_named_in_the_level_line():
    from qapbo.train.prune import collapsed_note

    assert collapsed_note([0.99, 0.9995, 0.5]) == ""
    assert collapsed_note([0.9, 1.0, 0.5]) == "  (layer 2 fully pruned: the output no longer depends on the input)"
    assert "layers 1, 3 fully pruned" in collapsed_note([1.0, 0.2, 1.0])
