"""The reliability matrix: kill, interrupt, fill the disk, mistype things; nothing stored is lost."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import optuna
import pytest
from conftest import count_trials
from optuna.trial import TrialState

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

GOOD = """
name = "rel"
seed = 0
[data]
n_rows = 1500
[train]
epochs = {epochs}
patience = {epochs}
batch_size = 64
lr = 0.003
[search]
sampler = "tpe"
n_trials = {n_trials}
heartbeat_interval = 1
grace_period = 2
early_stop = false  # kills and resumes are counted in COMPLETE trials: none may stop early
[search.space]
n_layers = {{ low = 1, high = 2 }}
width = {{ low = 4, high = 32, log = true }}
bits = {{ choices = [3, 4, 6, 32] }}
"""


def good(epochs=2, n_trials=2):
    return GOOD.format(epochs=epochs, n_trials=n_trials)


def cli(*args, cwd, timeout=300):
    return subprocess.run(QAPBO.split() + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


def fingerprint(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((d / "runs").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A directory with a finished two-trial study in runs/rel.db."""
    d = tmp_path_factory.mktemp("rel")
    (d / "rel.toml").write_text(good())
    p = cli("search", "rel.toml", "--quiet", cwd=d)
    assert p.returncode == 0, p.stderr
    return d


def _corrupt_h5(d):
    with h5py.File(d / "jets.h5", "w") as h:
        h.create_dataset("jets", data=np.zeros((100, 30), dtype=np.float32))
        h.create_dataset("jetFeatureNames", data=np.array([b"x"] * 30))
    raw = (d / "jets.h5").read_bytes()
    (d / "jets.h5").write_bytes(raw[:2000])
    return good().replace("[data]\nn_rows = 1500", "[data]\nsource = 'hdf5'\npath = 'jets.h5'")


def _nan_table(d):
    rows = "\n".join(f"{i % 7}.5,{'nan' if i == 3 else i},{'ab'[i % 2]}" for i in range(60))
    (d / "nan.csv").write_text("f0,f1,class\n" + rows + "\n")
    return good().replace("[data]\nn_rows = 1500", "[data]\nsource = 'table'\npath = 'nan.csv'")


CASES = {
    "malformed TOML": (lambda d: good().replace('name = "rel"', 'name = "rel'), "not valid TOML"),
    "unknown key": (lambda d: good().replace("patience", "patient"), "unknown key 'patient' in [train]"),
    "wrong type": (lambda d: good().replace("lr = 0.003", "lr = 'fast'"), "[train] key 'lr' must be a number"),
    "bit width out of range": (lambda d: good().replace("[3, 4, 6, 32]", "[3, 4, 6, 33]"), "bits value 33 is out"),
    "empty search space": (lambda d: good().replace("n_layers = { low = 1, high = 2 }", "n_layers = 1")
                           .replace("width = { low = 4, high = 32, log = true }", "width = 8")
                           .replace("bits = { choices = [3, 4, 6, 32] }", "bits = 4"), "nothing to search"),
    "unknown sampler": (lambda d: good().replace('sampler = "tpe"', 'sampler = "cma"'), "unknown sampler 'cma'"),
    "missing data file": (lambda d: good().replace("[data]\nn_rows = 1500", "[data]\nsource = 'hdf5'\npath = 'no.h5'"),
                          "no such file or directory"),
    "corrupt HDF5": (_corrupt_h5, "unreadable HDF5"),
    "NaN in data": (_nan_table, "NaN or infinite value(s) in 1 row(s), columns f1"),
    "changed space (name clash)": (lambda d: good().replace("[3, 4, 6, 32]", "[4, 8]"),
                                   "changed since study 'rel-search' started: search.space.bits.choices"),
    "changed objectives": (lambda d: good() + "[objectives]\nconstraints = ['auc >= 0.5']\n",
                           "objectives.constraints: [] -> [\"auc >= 0.5\"]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_exit_2_storage_untouched(stored, case):
    make, message = CASES[case]
    before = fingerprint(stored)
    (stored / "bad.toml").write_text(make(stored))
    p = cli("search", "bad.toml", "--quiet", cwd=stored)
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert fingerprint(stored) == before


def test_unreachable_storage_url(stored):
    p = cli("search", "rel.toml", "--storage", "sqlite:////proc/qapbo/nope.db", "--quiet", cwd=stored)
    assert p.returncode == 2 and "cannot create /proc/qapbo" in p.stderr and "Traceback" not in p.stderr




def _complete_values(url):
    s = optuna.load_study(study_name="rel-search", storage=url)
    return {t.number: (t.values, t.params, t.user_attrs["checkpoint"]) for t in s.trials
            if t.state == TrialState.COMPLETE}


def test_sigkill_at_several_points_loses_nothing(tmp_path):
    (tmp_path / "rel.toml").write_text(good(epochs=12, n_trials=5))
    db = tmp_path / "runs" / "rel.db"
    url = f"sqlite:///{db}"
    arts = tmp_path / "runs" / "rel.artifacts"
    cmd = QAPBO.split() + ["search", "rel.toml", "--quiet"]

    def until(cond, limit=120):
        end = time.time() + limit
        while not cond() and time.time() < end:
            time.sleep(0.01)

    def n_artifacts():
        return len(list(arts.glob("*"))) if arts.exists() else 0

    kills = {
        "during training": lambda: until(lambda: count_trials(db, "RUNNING") == 1 and count_trials(db, "COMPLETE") >= 1),
        "during a storage write": lambda: (lambda n: until(lambda: n_artifacts() > n))(n_artifacts()),
        "between trials": lambda: (lambda n: until(lambda: count_trials(db, "COMPLETE") > n))(count_trials(db, "COMPLETE")),
    }
    seen = {}
    for point, wait in kills.items():
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(lambda: db.exists())
        wait()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = _complete_values(url)
        for number, v in seen.items():  # completed trials are never lost or overwritten
            assert now[number] == v, point
        seen = now
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    trials = optuna.load_study(study_name="rel-search", storage=url).trials
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 5
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    final = _complete_values(url)
    assert all(final[n] == v for n, v in seen.items())
    assert len({v[2] for v in final.values()}) == 5  # one checkpoint per COMPLETE trial


def test_ctrl_c_stops_cleanly_and_marks_the_running_trial_fail(tmp_path):
    (tmp_path / "rel.toml").write_text(good(epochs=40, n_trials=3))
    db = tmp_path / "runs" / "rel.db"
    proc = subprocess.Popen(QAPBO.split() + ["search", "rel.toml", "--quiet"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 120
    while count_trials(db, "RUNNING") == 0 and time.time() < end:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
    assert count_trials(db, "RUNNING") == 0 and count_trials(db, "FAIL") == 1
    p = cli("search", "rel.toml", "--quiet", cwd=tmp_path)
    assert p.returncode == 0 and count_trials(db, "COMPLETE") == 3


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root in a sandbox that allows mounts)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path):
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: the disk is full now
        pass
    finally:
        os.close(fd)


def test_disk_full_is_a_clear_error_and_keeps_stored_trials(small_fs, tmp_path):
    (tmp_path / "rel.toml").write_text(good(n_trials=1))
    url = f"sqlite:///{small_fs}/rel.db"
    assert cli("search", "rel.toml", "--storage", url, "--quiet", cwd=tmp_path).returncode == 0
    kept = _complete_values(url)
    _fill(small_fs)
    p = cli("search", "rel.toml", "--storage", url, "--n-trials", "3", "--quiet", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "cannot write results" in p.stderr and "stored trials are kept" in p.stderr
    assert "Traceback" not in p.stderr
    (small_fs / "filler").unlink()
    assert all(_complete_values(url)[n] == v for n, v in kept.items())


def test_read_only_storage_is_a_clear_error(small_fs, tmp_path):
    (tmp_path / "rel.toml").write_text(good(n_trials=1))
    url = f"sqlite:///{small_fs}/rel.db"
    assert cli("search", "rel.toml", "--storage", url, "--quiet", cwd=tmp_path).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    p = cli("search", "rel.toml", "--storage", url, "--n-trials", "2", "--quiet", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "cannot write results" in p.stderr and "Traceback" not in p.stderr
    assert len(_complete_values(url)) == 1
