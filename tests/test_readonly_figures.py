"""compare and plot on data other than the jets: read-only storage, any number of classes, odd studies.

The storage here is written by hand with Optuna (10 classes that are perfectly separated, so the
background efficiency is 0 everywhere; a front of one point; a study of FAIL trials only; a
chance-level network), then `qapbo compare` and `qapbo plot` must draw it without a traceback and
leave every byte and the directory listing as they were.
"""

import hashlib
import json
import shutil
import subprocess
import sys

import matplotlib.image as mpimg
import optuna
import pytest
from optuna.distributions import FloatDistribution

from qapbo.compare.figures import panel_grid
from qapbo.compare.results import load_results

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"
CLASSES = [str(k) for k in range(10)]


def qapbo(*args, cwd):
    return subprocess.run(QAPBO.split() + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def _trial(auc, bops, x):
    return optuna.trial.create_trial(
        params={"x": x}, distributions={"x": FloatDistribution(0, 1)}, values=[auc, bops],
        user_attrs={"bkg_eff_at_sig50": {c: 0.0 for c in CLASSES}, "seconds": 1.0, "epochs": 3,
                    "network_efficiency": 0.3, "aiq": 0.6, "sparsity": 0.0})


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    d = tmp_path_factory.mktemp("ro")
    url = f"sqlite:///{d}/results.db"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    s = optuna.create_study(study_name="ten-search", storage=url, directions=["maximize", "minimize"])
    s.set_user_attr("qapbo_kind", "search")
    for i, (auc, bops) in enumerate([(0.99, 40_000), (0.995, 90_000), (0.97, 60_000), (0.5, 5_266)]):
        s.add_trial(_trial(auc, bops, i / 10))
    one = optuna.create_study(study_name="one-qap", storage=url, directions=["maximize", "minimize"])
    one.set_user_attr("qapbo_kind", "qap")
    one.add_trial(_trial(0.98, 50_000, 0.5))  # a front of one point
    fail = optuna.create_study(study_name="all-failed", storage=url, directions=["maximize", "minimize"])
    fail.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    fail.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    return d, url


def _snapshot(d):
    return {p.relative_to(d): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def test_chance_level_network_is_infeasible_and_off_the_front(storage):
    _, url = storage
    (search, *_) = load_results(optuna.storages.RDBStorage(url, skip_table_creation=True), ["ten-search"])
    assert [t.values[0] for t in search.infeasible] == [0.5]
    assert sorted(t.values[1] for t in search.front) == [40_000, 90_000]  # not the 5,266-BOPs chance model


def test_compare_and_plot_draw_any_study_and_change_nothing(storage, tmp_path):
    d, url = storage
    before = _snapshot(d)
    out = tmp_path / "figs"
    p = qapbo("compare", "--storage", url, "--json", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    rows = {r["study"]: r for r in json.loads(p.stdout)["studies"]}
    assert set(rows) == {"ten-search", "one-qap"}  # the study of FAIL/PRUNED trials has nothing to show
    assert rows["ten-search"]["infeasible"] == 1 and rows["ten-search"]["front_size"] == 2
    assert rows["one-qap"]["front_size"] == 1 and rows["one-qap"]["hypervolume"] > 0
    img = mpimg.imread(out / "bkg_eff.png")
    assert img.shape[1] < 2300  # 10 classes wrap into rows: about 14.5 inches at 150 dpi, not 40
    assert img.shape[0] > img.shape[1] / 3
    p = qapbo("plot", "bkg-eff", "--storage", url, "--out", str(tmp_path / "one"), cwd=tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "one" / "bkg_eff.pdf").read_bytes().startswith(b"%PDF")
    assert _snapshot(d) == before


@pytest.mark.parametrize("target", ["new/dir/results.db", "empty.db", "results.db/below.db", "."])
def test_read_only_commands_never_create_storage(storage, tmp_path, target, capsys):
    from qapbo.cli import main  # in-process: the same code path as the console script, without its start-up

    d, _ = storage
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "results.db").write_text("a plain file")
    before_here, before_store = _snapshot(tmp_path), _snapshot(d)
    url = f"sqlite:///{tmp_path / target}"
    for args in (["compare", "--storage", url, "--out", str(d / "never")],
                 ["plot", "fronts", "--storage", url, "--out", str(d / "never")]):
        assert main(args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0]
        assert "server is running" not in lines[0] and "no finished trials" not in lines[0]
    assert _snapshot(tmp_path) == before_here and _snapshot(d) == before_store


def test_panel_grid_wraps():
    assert panel_grid(1) == (1, 1) and panel_grid(5) == (1, 5) and panel_grid(10) == (2, 5)
    assert panel_grid(6) == (2, 3) and panel_grid(7) == (2, 4) and panel_grid(12) == (3, 4)
