"""Refining the search's front with QAP: member choice, a killed run resumed, bad input refused."""

import hashlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from qapbo.cli import main as qapbo_main
from qapbo.errors import StudyFileError
from qapbo.records import ATTR_REFINE_OF
from qapbo.study.file import load_study_file, parse_study
from qapbo.study.refine import ATTR_MEMBERS, run_refine, spread
from qapbo.study.search import run_search

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

STUDY = """
name = "rf"
seed = 0
[data]
n_rows = 3000
[train]
epochs = {epochs}
patience = {epochs}
batch_size = 128
lr = 0.003
[search]
sampler = "grid"
[search.space]
n_layers = 1
width = {{ choices = [4, 32] }}
bits = {{ choices = [3, 32] }}
sparsity = {{ choices = {sparsity} }}
[refine]
members = {members}
schedule = [0.3, 0.5, 0.8]
"""


def study_text(epochs=10, members=2, sparsity="[0.0, 0.5]"):
    return STUDY.format(epochs=epochs, members=members, sparsity=sparsity)


def cli(*args, cwd, timeout=300):
    return subprocess.run(QAPBO.split() + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


def fingerprint(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and p.suffix != ".toml"}


def refine_complete(db: Path) -> int:
    """COMPLETE trials of the refine study, read with sqlite3 while another process writes."""
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials t JOIN studies s ON t.study_id = s.study_id "
                               "WHERE s.study_name = 'rf-refine' AND t.state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A directory with rf.toml and its finished eight-trial (grid) search in runs/rf.db (no refine yet)."""
    d = tmp_path_factory.mktemp("refine")
    (d / "rf.toml").write_text(study_text())
    run_search(load_study_file(d / "rf.toml"), storage=f"sqlite:///{d}/runs/rf.db", progress="none")
    return d


def copy_of(searched: Path, into: Path) -> Path:
    shutil.copytree(searched / "runs", into / "runs")
    shutil.copy(searched / "rf.toml", into / "rf.toml")
    return into


# ------------------------------------------------------------------------------- member choice

FRONT = [(0.60, 10.0), (0.62, 12.0), (0.80, 1e3), (0.88, 1e4), (0.90, 1e5)]


@pytest.mark.parametrize("k,want", [(1, [4]), (2, [0, 4]), (3, [0, 2, 4]), (4, [0, 2, 3, 4]), (5, [0, 1, 2, 3, 4]),
                                    (9, [0, 1, 2, 3, 4])])
def test_spread_takes_both_ends_then_the_farthest_point(k, want):
    # normalised to the front's range: x = (log10 cost - 1) / 4, y = (AUC - 0.6) / 0.3, i.e.
    # (0, 0), (0.0198, 0.0667), (0.5, 0.667), (0.75, 0.933), (1, 1). Distances to the ends {0, 4}:
    # point 1: 0.070, point 2: min(0.833, 0.601) = 0.601, point 3: min(1.197, 0.259) = 0.259 -> point 2;
    # then point 3 (0.259, its distance to point 2 is 0.366) beats point 1 (0.070).
    assert spread(FRONT, k) == want
    assert spread(FRONT, k) == spread(list(FRONT), k)  # deterministic


def test_spread_ties_go_to_the_earlier_point_and_costs_can_be_several():
    square = [(0.7, 10.0, 100.0), (0.8, 100.0, 10.0), (0.9, 1000.0, 1000.0), (0.75, 100.0, 100.0)]
    # ends: the best AUC (2) and the lowest first cost (0). Normalised (AUC, log c1, log c2):
    # 0 (0, 0, 0.5), 1 (0.5, 0.5, 0), 2 (1, 1, 1), 3 (0.25, 0.5, 0.5); nearest end of point 1:
    # min(sqrt(.25+.25+.25), sqrt(.25+.25+1)) = 0.866, of point 3: min(sqrt(.0625+.25), sqrt(.5625+.25+.25))
    # = 0.559: point 1 comes next.
    assert spread(square, 3) == [0, 1, 2]
    twins = [(0.6, 10.0), (0.75, 100.0), (0.75, 100.0), (0.9, 1000.0)]
    assert spread(twins, 3) == [0, 1, 3]  # 1 and 2 are the same point: the earlier one


# ---------------------------------------------------------------------------- the test

def test_killed_refine_resumes_with_exactly_the_levels_asked_for(searched, tmp_path):
    """The issue's test: SIGKILL after the first stored level, rerun, and every member ends with its
    level 0 and exactly the schedule's fractions above its own sparsity, once each."""
    ref = copy_of(searched, tmp_path / "ref")
    want = run_refine(load_study_file(ref / "rf.toml"), storage=f"sqlite:///{ref}/runs/rf.db",
                      progress="none").get_trials()

    d = copy_of(searched, tmp_path / "killed")
    db = d / "runs" / "rf.db"
    proc = subprocess.Popen(QAPBO.split() + ["refine", "rf.toml", "--quiet"], cwd=d,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while refine_complete(db) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # the first level is stored: kill while the next one trains
    proc.wait()
    stored = refine_complete(db)
    assert 1 <= stored < len(want), "the run should have been killed mid-way"
    p = cli("refine", "rf.toml", "--quiet", cwd=d)
    assert p.returncode == 0, p.stderr
    assert f"{stored}/{len(want)} levels already stored" in p.stderr

    url = f"sqlite:///{db}"
    refined = optuna.load_study(study_name="rf-refine", storage=url)
    search = optuna.load_study(study_name="rf-search", storage=url)
    assert refined.user_attrs["qapbo_kind"] == "refine" and refined.user_attrs[ATTR_REFINE_OF] == ["rf-search"]
    members = [search.trials[m["number"]] for m in refined.user_attrs[ATTR_MEMBERS]]
    assert all(m["study"] == "rf-search" for m in refined.user_attrs[ATTR_MEMBERS])
    front = sorted(search.best_trials, key=lambda t: (t.values[1], -t.values[0]))
    assert len(front) >= 3, "the grid should give a front of several members"
    picked = [front[i].number for i in spread([t.values for t in front], 2)]
    assert [m.number for m in members] == picked == [front[0].number, front[-1].number]  # both ends
    got = refined.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in got)
    keys = [(t.params["member"], t.params["level"]) for t in got]
    assert len(keys) == len(set(keys))  # no level stored twice
    for m in members:
        tag = f"rf-search#{m.number}"
        mine = sorted((t for t in got if t.params["member"] == tag), key=lambda t: t.params["level"])
        own = m.user_attrs["target_sparsity"]
        asked = [f for f in (0.3, 0.5, 0.8) if f > own]  # exactly the schedule's levels above the member
        assert [t.params["level"] for t in mine] == list(range(1 + len(asked)))
        assert [t.user_attrs["target_sparsity"] for t in mine] == [own, *asked]
        for t, frac in zip(mine[1:], asked):
            assert t.user_attrs["sparsity"] == pytest.approx(frac, abs=0.01)
            assert t.user_attrs["epochs"] > 0 and t.user_attrs["member"] == tag
        # level 0 is the member, measured again from its checkpoint, untrained
        zero = mine[0]
        assert zero.values == m.values and zero.user_attrs["checkpoint"] == m.user_attrs["checkpoint"]
        assert (zero.user_attrs["epochs"], zero.user_attrs["seconds"]) == (0, 0.0)
        assert all(t.user_attrs["kind"] == "refine" for t in mine)
        assert all(t.values == [t.user_attrs["auc"], t.user_attrs["bops"]] for t in mine)
        assert all(t.user_attrs["train_config"]["lr"] == m.user_attrs["train_config"]["lr"] for t in mine[1:])
        # the refined front dominates or equals the member at its own cost
        assert any(t.values[0] >= m.values[0] and t.values[1] <= m.values[1] for t in refined.best_trials)
    # the same levels, the same numbers as a run that was never killed
    table = {(t.params["member"], t.params["level"]): t for t in want}
    assert set(table) == set(keys)
    for t in got:
        w = table[(t.params["member"], t.params["level"])]
        assert t.values == w.values and t.user_attrs["sparsity_per_layer"] == w.user_attrs["sparsity_per_layer"]

    # a finished run only reports; a search grown since does not change the members
    best = max(front, key=lambda t: t.values[0])
    better = optuna.trial.create_trial(  # a search trial added since: a new end of the front
        params=best.params, distributions=best.distributions, values=[best.values[0] + 0.01, best.values[1]],
        user_attrs=best.user_attrs, constraints=best.constraints, state=TrialState.COMPLETE)
    search.add_trial(better)
    before = fingerprint(d / "runs")
    p = cli("refine", "rf.toml", "--quiet", cwd=d)
    assert p.returncode == 0 and f"{len(want)}/{len(want)} levels already stored" in p.stderr
    assert "the search's front has changed since this refine study started" in p.stderr
    assert fingerprint(d / "runs") == before


def test_run_goes_search_refine_compare(tmp_path):
    (tmp_path / "rf.toml").write_text(study_text(epochs=2, members="'all'", sparsity="[0.0]"))
    url = f"sqlite:///{tmp_path}/rf.db"
    assert qapbo_main(["run", str(tmp_path / "rf.toml"), "--storage", url, "--out", str(tmp_path / "cmp"),
                       "--progress", "none"]) == 0
    names = optuna.study.get_all_study_names(url)
    assert sorted(names) == ["rf-refine", "rf-search"]
    from qapbo.compare.results import load_results

    kinds = {r.name: r.kind for r in load_results(url)}
    assert kinds == {"rf-search": "search", "rf-refine": "refine"}


# --------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("old,new,message", [
    ("members = 2", "members = 0", "[refine] members must be \"all\" (the whole front) or a number of members"),
    ("members = 2", "members = 'some'", "got 'some'"),
    ("members = 2", "members = 2.5", "got 2.5"),
    ("schedule = [0.3, 0.5, 0.8]", "schedule = [0.8, 0.5]", "schedule [0.8, 0.5] must increase strictly"),
    ("schedule = [0.3, 0.5, 0.8]", "schedule = [0.0, 0.5]", "level 0 is the member itself"),
    ("schedule = [0.3, 0.5, 0.8]", "schedule = [0.5, 1.0]", "fractions must lie in (0, 1)"),
    ("schedule = [0.3, 0.5, 0.8]", "schedule = []", "schedule must be a non-empty list"),
    ("schedule = [0.3, 0.5, 0.8]", "schedule = [0.5, 'x']", "schedule must be a non-empty list"),
    ("members = 2", "members = 2\nmode = 'lt'", "unknown key 'mode' in [refine]"),
])
def test_bad_refine_sections_name_the_problem(old, new, message):
    with pytest.raises(StudyFileError) as err:
        parse_study(study_text().replace(old, new), "rf.toml")
    assert message in str(err.value) and str(err.value).startswith("rf.toml: ")
    assert "\n" not in str(err.value)


def test_refine_needs_a_search_section():
    text = "name = 'q'\n[qap]\nprecisions = [6]\n[refine]\nmembers = 2\n"
    with pytest.raises(StudyFileError, match=r"\[refine\] refines the members of the search's front; add a \[search\]"):
        parse_study(text, "q.toml")


def test_default_schedule_is_the_protocols_without_zero():
    s = parse_study(study_text(members="'all'").replace("schedule = [0.3, 0.5, 0.8]\n", ""))
    assert s.refine.members is None
    assert s.refine.schedule == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9666, 0.9888)


@pytest.mark.parametrize("old,new,message", [
    ("members = 2", "members = 0", "[refine] members must be"),
    ("schedule = [0.3, 0.5, 0.8]", "schedule = [0.8, 0.5]", "must increase strictly"),
    ("lr = 0.003", "lr = 0.01", "changed since search study 'rf-search' started: search.space.lr: 0.003 -> 0.01; train.lr: 0.003 -> 0.01"),
])
def test_cli_bad_input_one_line_exit_2_storage_untouched(searched, old, new, message):
    before = fingerprint(searched)
    (searched / "bad.toml").write_text(study_text().replace(old, new))
    p = cli("refine", "bad.toml", "--storage", f"sqlite:///{searched}/runs/rf.db", "--quiet", cwd=searched)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and message in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert fingerprint(searched) == before
    names = optuna.study.get_all_study_names(f"sqlite:///{searched}/runs/rf.db")
    assert names == ["rf-search"]  # no refine study was created


def test_refine_without_a_stored_search_exit_2(searched, tmp_path):
    (tmp_path / "rf.toml").write_text(study_text())
    p = cli("refine", "rf.toml", "--quiet", cwd=tmp_path)  # no storage at all
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("qapbo refine: error: no storage at sqlite:///runs/rf.db yet: run "
                                "`qapbo search rf.toml` first (refine starts from the search's front)")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["rf.toml"]  # nothing created
    # a storage that holds other studies but not this file's search
    (searched / "other.toml").write_text(study_text().replace('name = "rf"', 'name = "other"'))
    before = fingerprint(searched)
    p = cli("refine", "other.toml", "--storage", f"sqlite:///{searched}/runs/rf.db", "--quiet", cwd=searched)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1
    assert "no COMPLETE search trials of other.toml in this storage: run `qapbo search other.toml` first" in lines[0]
    assert fingerprint(searched) == before
