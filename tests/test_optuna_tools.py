"""Optuna's own tools read qapbo's storage cleanly: short `optuna studies` rows, named objectives,
constraints where Optuna's samplers and optuna-dashboard look, and studies stored the old way still resume."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from qapbo.errors import StudyFileError
from qapbo.records import (
    ATTR_CONSTRAINT_NAMES,
    CONSTRAINTS_KEY,
    constraint_attrs,
    constraint_values,
    is_feasible,
    violations,
)
from qapbo.study.file import config_hash, load_study_file, parse_study
from qapbo.study.search import run_search
from qapbo.study.storage import open_storage, open_study, stored_config, stored_study_text

OPTUNA = shutil.which("optuna") or str(Path(sys.executable).with_name("optuna"))

SEARCH = """
name = "t"
seed = 0
description = "a tiny search whose study file is long enough to matter: {pad}"
[data]
n_rows = 1500
[train]
epochs = 1
lr = 0.003
batch_size = 128
[search]
sampler = "random"
n_trials = {n_trials}
[search.space]
n_layers = {{ low = 1, high = 2 }}
width = {{ low = 4, high = 32, log = true }}
bits = {{ choices = [3, 4, 6, 32] }}
[objectives]
min_auc = {min_auc}
constraints = ["bops <= 1e12"]
"""
QAP = """
name = "t"
[data]
n_rows = 1000
[train]
epochs = 1
batch_size = 256
[qap]
hidden = [8]
precisions = [6]
modes = ["ft"]
schedule = [0.0, 0.5]
"""
SECTIONS = ("data", "train", "search", "objectives")


def quiet(_msg):
    pass


def search_file(tmp_path, n_trials=2, min_auc=0.55):
    path = tmp_path / "t.toml"
    path.write_text(SEARCH.format(pad="x" * 400, n_trials=n_trials, min_auc=min_auc))
    return path


def optuna_studies(url):
    p = subprocess.run([OPTUNA, "studies", "--storage", url, "-f", "json"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_optuna_studies_rows_are_short_and_objectives_named(tmp_path):
    from qapbo.study.qap import run_qap

    url = f"sqlite:///{tmp_path}/t.db"
    study = load_study_file(search_file(tmp_path))
    (ostudy,) = run_search(study, storage=url, progress=False, log=quiet)
    (tmp_path / "q.toml").write_text(QAP)
    qstudy = run_qap(load_study_file(tmp_path / "q.toml"), storage=url, progress="none")
    rows = optuna_studies(url)
    assert sorted(r["name"] for r in rows) == ["t-qap", "t-search"]
    for row in rows:
        assert len(json.dumps(row)) < 1000, row
        assert set(row["user_attrs"]) == {"qapbo_min_auc", "qapbo_kind", "qapbo_config_hash"}
    # the study file is stored once, whole, and read back
    assert stored_study_text(ostudy) == study.text
    assert stored_config(ostudy) == study.section(*SECTIONS)
    assert ostudy.user_attrs["qapbo_config_hash"] == config_hash(study.section(*SECTIONS))
    # Optuna's tools name the values
    assert optuna.load_study(study_name="t-search", storage=url).metric_names == ["auc", "bops"]
    assert optuna.load_study(study_name="t-qap", storage=url).metric_names == ["auc", "bops"]
    assert list(ostudy.trials_dataframe(multi_index=True)["values"].columns) == ["auc", "bops"]
    assert len(qstudy.trials) == 2


def test_infeasible_trials_carry_optunas_constraints_attribute(tmp_path):
    from qapbo.study.qap import run_qap

    url = f"sqlite:///{tmp_path}/t.db"
    (ostudy,) = run_search(load_study_file(search_file(tmp_path, min_auc=0.999)), storage=url, progress=False,
                           log=quiet)
    (tmp_path / "q.toml").write_text(QAP + "[objectives]\nmin_auc = 0.999\n")
    qstudy = run_qap(load_study_file(tmp_path / "q.toml"), storage=url, progress="none")
    for t in [*ostudy.trials, *qstudy.trials]:
        auc = t.values[0]
        assert auc < 0.999 and not is_feasible(t)
        if t.user_attrs["kind"] == "search":  # the user's constraint first, then the minimum useful AUC
            expected = {"bops <= 1e+12": t.values[1] - 1e12, "min_auc": 0.999 - auc}
        else:
            expected = {"min_auc": 0.999 - auc}
        assert t.system_attrs[CONSTRAINTS_KEY] == pytest.approx(list(expected.values()))
        assert t.system_attrs[ATTR_CONSTRAINT_NAMES] == list(expected)
        assert constraint_values(t) == pytest.approx(expected)
        # Optuna reads them once each (no second, per-name copy), as its samplers and best_trials do
        assert list(t.constraints.values()) == pytest.approx(list(expected.values()))
        assert not any(k.startswith("constraints:") for k in t.system_attrs)
    assert ostudy.best_trials == [] and qstudy.best_trials == []


def test_optuna_dashboard_sees_the_constraints(tmp_path):
    serializer = pytest.importorskip("optuna_dashboard._serializer")
    url = f"sqlite:///{tmp_path}/t.db"
    (ostudy,) = run_search(load_study_file(search_file(tmp_path, n_trials=1, min_auc=0.999)), storage=url,
                           progress=False, log=quiet)
    (t,) = ostudy.trials
    shown = serializer.serialize_frozen_trial(ostudy._study_id, t, {})
    assert shown["constraints"] == pytest.approx([t.values[1] - 1e12, 0.999 - t.values[0]])


def _old_style_study(url, study, n_done):
    """A search study as qapbo stored it before: the file and settings in user attributes, constraints per name."""
    rdb = open_storage(url)
    s = optuna.create_study(study_name="t-search", storage=rdb, directions=["maximize", "minimize"])
    wanted = study.section(*SECTIONS)
    for k, v in {"qapbo_min_auc": study.min_auc, "qapbo_kind": "search", "qapbo_study_file": study.text,
                 "qapbo_config_hash": config_hash(wanted), "qapbo_config": wanted}.items():
        s.set_user_attr(k, v)
    dists = {"n_layers": optuna.distributions.IntDistribution(1, 2),
             "width_1": optuna.distributions.IntDistribution(4, 32, log=True),
             "bits": optuna.distributions.CategoricalDistribution([3, 4, 6, 32])}
    for i in range(n_done):
        s.add_trial(optuna.trial.create_trial(
            params={"n_layers": 1, "width_1": 8 + i, "bits": 6}, distributions=dists, values=[0.8 + 0.01 * i, 1e4],
            user_attrs={"kind": "search", "auc": 0.8 + 0.01 * i, "bops": 1e4, "epochs": 1, "seconds": 1.0},
            constraints={"bops <= 1e+12": 1e4 - 1e12, "min_auc": study.min_auc - 0.8 - 0.01 * i}))
    return s


def test_a_study_stored_the_old_way_resumes_and_refuses_a_changed_file(tmp_path):
    url = f"sqlite:///{tmp_path}/t.db"
    path = search_file(tmp_path, n_trials=3)
    study = load_study_file(path)
    old = _old_style_study(url, study, n_done=1)
    assert stored_config(old) == study.section(*SECTIONS) and stored_study_text(old) == study.text
    assert constraint_values(old.trials[0]) == pytest.approx({"bops <= 1e+12": 1e4 - 1e12, "min_auc": -0.25})
    # a changed file is refused against the settings stored the old way
    path.write_text(path.read_text().replace("choices = [3, 4, 6, 32]", "choices = [2, 4]"))
    with pytest.raises(Exception, match=r"search.space.bits.choices: \[3, 4, 6, 32\] -> \[2, 4\]"):
        run_search(load_study_file(path), storage=url, progress=False, log=quiet)
    # the same file resumes it up to its budget; old and new trials are read alike
    path.write_text(path.read_text().replace("choices = [2, 4]", "choices = [3, 4, 6, 32]"))
    (s,) = run_search(load_study_file(path), storage=url, progress=False, log=quiet)
    trials = s.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3 and trials[0].params == {"n_layers": 1, "width_1": 8, "bits": 6}
    for t in trials:
        assert set(constraint_values(t)) == {"bops <= 1e+12", "min_auc"}
    assert s.metric_names == ["auc", "bops"]  # named on resume
    assert "qapbo:study_file" not in s._storage.get_study_system_attrs(s._study_id)  # left as it was stored
    assert {t.number for t in s.best_trials} <= {t.number for t in trials}


def test_the_constraint_writer():
    v = violations(0.6, 0.55, {"bops <= 1e+09": -5.0})
    assert list(v) == ["bops <= 1e+09", "min_auc"] and v["min_auc"] == pytest.approx(-0.05)
    attrs = constraint_attrs(v)
    assert attrs == {"constraints": [-5.0, pytest.approx(-0.05)], "qapbo_constraint_names": list(v)}
    t = optuna.trial.create_trial(values=[0.6, 1.0], system_attrs=attrs)
    assert constraint_values(t) == pytest.approx(v) and is_feasible(t)
    assert list(t.constraints.values()) == pytest.approx([-5.0, -0.05])
    with pytest.raises(ValueError, match="NaN"):
        constraint_attrs({"min_auc": float("nan")})
    # an unnamed list (written by Optuna's constraints_func) keeps its indices
    assert constraint_values(optuna.trial.create_trial(values=[0.6, 1.0], system_attrs={"constraints": [1.0]})) \
        == {"0": 1.0}


def test_a_creation_cut_short_is_finished_on_the_next_open(tmp_path):
    study = parse_study(QAP)
    rdb = open_storage(f"sqlite:///{tmp_path}/c.db")
    optuna.create_study(study_name="t-qap", storage=rdb, directions=["maximize", "minimize"])  # then killed
    s = open_study(rdb, study, "qap", ("data", "train", "qap"), ("maximize", "minimize"), "t-qap",
                   metric_names=("auc", "bops"))
    assert stored_config(s) == study.section("data", "train", "qap") and s.metric_names == ["auc", "bops"]


def test_a_pythia_study_stored_before_the_default_changed_is_not_resumed_on_other_jets(tmp_path):
    # Before issue 24 unset pythia-jets options stayed out of the stored settings and meant matched
    # jets, pT zlogz and fill. Today's defaults differ, so the same file must not resume that study.
    text = QAP.replace("n_rows = 1000", 'source = "pythia-jets"\nn_rows = 1000')
    sections, directions = ("data", "train", "qap"), ("maximize", "minimize")
    study = parse_study(text)
    assert {k: study.canonical["data"][k] for k in ("detector", "selection", "radius", "zlogz", "undefined")} \
        == {"detector": "none", "selection": "leading", "radius": 0.8, "zlogz": "energy", "undefined": "drop"}
    rdb = open_storage(f"sqlite:///{tmp_path}/old.db")
    s = open_study(rdb, study, "qap", sections, directions, "t-qap")
    old = json.loads(json.dumps(stored_config(s)))
    for k in ("detector", "selection", "radius", "zlogz", "undefined"):
        del old["data"][k]  # as the code before issue 24 stored it
    s._storage.set_study_system_attr(s._study_id, "qapbo:study_file", {"text": text, "config": old})
    with pytest.raises(StudyFileError) as err:
        open_study(rdb, study, "qap", sections, directions, "t-qap")
    assert 'data.selection: "matched" -> "leading"' in str(err.value)
    assert 'write selection = "matched", zlogz = "pt", undefined = "fill" in [data]' in str(err.value)
    # the earlier defaults written out resume it; naming the detector the old study left out is harmless
    legacy = text.replace("n_rows = 1000", 'n_rows = 1000\ndetector = "none"\nselection = "matched"\n'
                                           'zlogz = "pt"\nundefined = "fill"')
    assert open_study(rdb, parse_study(legacy), "qap", sections, directions, "t-qap")._study_id == s._study_id
    # one that names another value is refused as any changed setting is
    with pytest.raises(StudyFileError, match=r'data.radius: 0.8 -> 0.4'):
        open_study(rdb, parse_study(legacy.replace('detector = "none"', "radius = 0.4")), "qap", sections,
                   directions, "t-qap")
