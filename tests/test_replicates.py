"""Replicates: every method of a study file run N times with other training and sampler seeds on the
same data split, each replicate its own resumable studies, compared with intervals and rank tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from qapbo.study.file import parse_study

QAPBO = [sys.executable, "-m", "qapbo.cli"]
STUDY = """
name = "v"
seed = 0
replicates = 3

[data]
source = "synthetic-jets"
n_rows = 1500

[train]
epochs = 2
batch_size = 256

[search]
n_trials = 4
[search.space]
n_layers = 1
width = { low = 4, high = 16 }
bits = { choices = [4, 8] }

[qap]
hidden = [8]
precisions = [6]
modes = ["ft"]
schedule = [0.0, 0.5]
"""


def test_replicates_share_the_split_and_differ_in_seeds():
    s = parse_study(STUDY, "v.toml")
    reps = s.replicas()
    assert [r.name for r in reps] == ["v", "v-r1", "v-r2"]
    assert [r.data.seed for r in reps] == [0, 0, 0] and [r.train.seed for r in reps] == [0, 1000, 2000]
    assert [r.qap.seeds for r in reps] == [(0,), (1000,), (2000,)]
    assert s.all_study_names() == ["v-search", "v-qap", "v-r1-search", "v-r1-qap", "v-r2-search", "v-r2-qap"]
    assert reps[0].section("qap") == parse_study(STUDY.replace("replicates = 3", ""), "v.toml").section("qap")
    assert reps[1].section("qap")["replicate"] == {"of": "v", "index": 1, "data_seed": 0}
    with pytest.raises(Exception, match="replicates = 0: use 1"):
        parse_study(STUDY.replace("replicates = 3", "replicates = 0"), "v.toml")


def _stored(url):
    try:
        names = optuna.get_all_study_names(url)
    except Exception:
        return {}
    return {n: optuna.load_study(study_name=n, storage=url).get_trials() for n in names}


def test_a_killed_replicated_run_resumes_with_every_replicate_complete_and_none_duplicated(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(STUDY)
    url = f"sqlite:///{tmp_path}/runs/v.db"  # the default: every replicate in the file's own storage
    cmd = QAPBO + ["run", str(path), "--out", str(tmp_path / "cmp"), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # kill once the second replicate has started
            if any(t.state == TrialState.COMPLETE for t in _stored(url).get("v-r1-search", [])):
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert "v-r2-qap" not in _stored(url)
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.db")) == ["v.db"]  # no runs/v-r1.db
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    stored = _stored(url)
    assert set(stored) == {"v-search", "v-qap", "v-r1-search", "v-r1-qap", "v-r2-search", "v-r2-qap"}
    for name, trials in stored.items():
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if name.endswith("-qap"):
            assert sorted(t.params["level"] for t in done) == [0, 1], name  # none lost, none twice
        else:
            assert len(done) == 4, name
        s = optuna.load_study(study_name=name, storage=url)
        assert s.user_attrs["qapbo_replicate"]["of"] == "v"
    assert {t.params["seed"] for r in ("", "-r1", "-r2") for t in stored[f"v{r}-qap"]} == {0, 1000, 2000}
    # one data split: every replicate's networks saw the same rows
    assert len({t.user_attrs["data_fingerprint"] for ts in stored.values() for t in ts
                if t.state == TrialState.COMPLETE}) == 1
    assert "Replicates: every method run with other training and sampler seeds" in p.stdout
    assert "| v-search | search | 3 |" in p.stdout and "| v-qap | qap | 3 |" in p.stdout
    assert ("v-search and v-qap are not distinguishable" in p.stdout or "leads" in p.stdout)
    assert (tmp_path / "cmp" / "attainment.png").stat().st_size > 10_000
    r = subprocess.run(QAPBO + ["compare", "--storage", url, "--json"], capture_output=True, text=True, cwd=tmp_path)
    out = json.loads(r.stdout)
    assert [m["method"] for m in out["replicates"]] == ["v-search", "v-qap"]
    assert all(len(m["hypervolumes"]) == 3 and m["low"] <= m["median"] <= m["high"] for m in out["replicates"])
    (pair,) = out["replicate_pairs"]
    assert 0.0 <= pair["superiority"] <= 1.0 and 0.0 < pair["p_value"] <= 1.0
    assert pair["distinguishable"] is False  # 3 against 3 can never reach p < 0.05 (smallest p = 0.1)
    # pairs of the coverage and equal-compute tables stay within a replicate (no v-search against v-r1-qap)
    assert sorted((c["a"], c["b"]) for c in out["coverage"]) == sorted(
        (f"v{r}-search", f"v{r}-qap") for r in ("", "-r1", "-r2"))
    assert sorted((c["a"], c["b"]) for c in out["equal_compute"]) == sorted(
        (f"v{r}-search", f"v{r}-qap") for r in ("", "-r1", "-r2"))
