"""qapbo run / compare / plot from a clean storage, as users call them."""

import json
import shutil
import subprocess
import sys

import matplotlib.image as mpimg
import optuna
import pytest

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"

STUDY = """
name = "both"
seed = 0
[data]
n_rows = 1500
[train]
epochs = 2
lr = 0.003
batch_size = 128
patience = 2
[search]
sampler = "random"
n_trials = 4
[search.space]
n_layers = { low = 1, high = 2 }
width = { low = 4, high = 32, log = true }
bits = { choices = [4, 8] }
[qap]
hidden = [16, 8]
precisions = [6]
modes = ["ft", "lt"]
schedule = [0.0, 0.5, 0.8]
"""


def qapbo(*args, cwd):
    return subprocess.run(QAPBO.split() + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    (d / "both.toml").write_text(STUDY)
    p = qapbo("run", "both.toml", "--quiet", cwd=d)
    assert p.returncode == 0, p.stderr
    return d, p


def test_run_runs_search_and_qap_then_compares(finished):
    d, p = finished
    url = f"sqlite:///{d}/runs/both.db"
    assert {s for s in optuna.study.get_all_study_names(url)} == {"both-search", "both-qap"}
    assert "| both-search | search | 4 |" in p.stdout and "| both-qap | qap | 6 |" in p.stdout
    assert "SYNTHETIC" in p.stdout and "reference point AUC = 0.5" in p.stdout
    for name in ["fronts", "hypervolume", "bkg_eff", "efficiency"]:
        png = d / "runs" / "both-compare" / f"{name}.png"
        pdf = d / "runs" / "both-compare" / f"{name}.pdf"
        img = mpimg.imread(png)  # re-readable as an image
        assert img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 0.01  # not blank
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000


def test_compare_json_and_plot(finished):
    d, _ = finished
    url = f"sqlite:///{d}/runs/both.db"
    p = qapbo("compare", "--storage", url, "--studies", "both-search,both-qap", "--json", "--out", "cmp",
              "--auc-targets", "0.6,0.99", "--bops-budgets", "1e5", cwd=d)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["synthetic_data"] is True and out["reference_point"]["auc"] == 0.5
    assert [r["study"] for r in out["studies"]] == ["both-search", "both-qap"]
    assert out["auc_targets"] == [0.6, 0.99]
    for r in out["studies"]:
        assert r["min_cost_at_auc"]["0.99"] is None  # nobody reaches AUC 0.99 on 1,500 jets
    c = out["coverage"][0]
    assert 0.0 <= c["c_ab"] <= 1.0 and 0.0 <= c["c_ba"] <= 1.0
    assert (d / "cmp" / "fronts.png").stat().st_size > 10_000
    p = qapbo("plot", "hypervolume", "--storage", url, "--out", "one", cwd=d)
    assert p.returncode == 0 and (d / "one" / "hypervolume.pdf").exists() and "wrote" in p.stdout


def test_rerun_is_a_resume_that_adds_nothing(finished):
    d, _ = finished
    p = qapbo("run", "both.toml", "--quiet", cwd=d)
    assert p.returncode == 0, p.stderr
    assert "4 COMPLETE trial(s) stored" in p.stderr and "6/6 levels already stored" in p.stderr
    assert len(optuna.load_study(study_name="both-search", storage=f"sqlite:///{d}/runs/both.db").trials) == 4


def test_compare_with_no_finished_trials_exits_2(tmp_path):
    url = f"sqlite:///{tmp_path}/empty.db"
    optuna.create_study(study_name="nothing", storage=url, directions=["maximize", "minimize"])
    p = qapbo("compare", "--storage", url, cwd=tmp_path)
    assert p.returncode == 2
    assert "no finished trials to compare" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = qapbo("compare", "--storage", url, "--studies", "missing", cwd=tmp_path)
    assert p.returncode == 2 and "no study named missing" in p.stderr
