"""What a user reads: the comparison table and its legend, warnings, and which command writes files."""

from __future__ import annotations

import json

import optuna
import pytest

from qapbo.cli import main
from qapbo.compare.report import compare
from qapbo.compare.results import StudyResult


def trial(auc: float, cost: float, number: int) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(values=[auc, cost], user_attrs={"seconds": 1.0, "epochs": 2})
    t.number = number
    return t


def _results(aucs_a, aucs_b):
    a = StudyResult("a-search", "search", [trial(x, 10.0 ** (3 + i), i) for i, x in enumerate(aucs_a)], synthetic=False)
    b = StudyResult("b-qap", "qap", [trial(x, 10.0 ** (3 + i), i) for i, x in enumerate(aucs_b)], synthetic=False)
    return [a, b]


def test_the_default_table_is_narrow_and_its_columns_are_defined_under_it():
    cmp = compare(_results([0.90, 0.95], [0.91, 0.93]))
    assert len(cmp.auc_targets) == 3 and len(cmp.budgets) == 2  # the defaults: all kept in the JSON
    md = cmp.to_markdown()
    header = next(line for line in md.splitlines() if line.startswith("| study |"))
    assert header.count("|") - 1 <= 10, header
    assert header.count("@ AUC>=") == 1 and header.count("<=") == 1  # the middle target and budget
    wide = next(line for line in cmp.to_markdown(wide=True).splitlines() if line.startswith("| study |"))
    assert wide.count("@ AUC>=") == 3 and "stopped early" in wide and "below min AUC" in wide
    assert "Columns: AUC is the macro one-vs-rest AUC on the test rows" in md
    assert "targets just below the best AUC of all fronts together (best - 0.02, - 0.01, - 0.005" in md
    given = compare(_results([0.90, 0.95], [0.91, 0.93]), auc_targets=[0.9, 0.92], budgets=[1e3, 1e4, 1e5])
    head = next(line for line in given.to_markdown().splitlines() if line.startswith("| study |"))
    assert head.count("@ AUC>=") == 2 and head.count("<=") == 3  # what the user asked for, all of it
    assert "targets as --auc-targets gave them" in given.to_markdown()


def test_a_comparison_every_network_aces_is_flagged_once():
    cmp = compare(_results([0.9995, 1.0], [1.0, 0.9999]))
    md = cmp.to_markdown()
    assert md.count("Warning: every network of a-search, b-qap scored AUC >= 0.999") == 1
    assert cmp.to_dict()["saturated"] == ["a-search", "b-qap"]
    assert compare(_results([0.9995, 0.97], [1.0, 0.9999])).saturated == ["b-qap"]  # per study
    assert "Warning" not in compare(_results([0.90, 0.95], [0.91, 0.93])).to_markdown()


def test_compare_json_writes_figures_only_with_out(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path}/r.db"
    s = optuna.create_study(study_name="r", storage=url, directions=["maximize", "minimize"])
    for i, (auc, cost) in enumerate([(0.8, 1e3), (0.9, 1e4)]):
        s.add_trial(optuna.trial.create_trial(values=[auc, cost], user_attrs={"seconds": 1.0, "epochs": 1}))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["compare", "--storage", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["figures"] == [] and sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert main(["compare", "--storage", url, "--json", "--out", "figs"]) == 0
    assert (tmp_path / "figs" / "fronts.png").exists()
    assert json.loads(capsys.readouterr().out)["figures"]


@pytest.mark.parametrize("wide", [False, True])
def test_run_and_compare_take_wide(wide):
    from qapbo.cli import build_parser

    args = build_parser().parse_args(["compare", "--storage", "sqlite:///x.db"] + (["--wide"] if wide else []))
    assert args.wide is wide
    assert build_parser().parse_args(["run", "s.toml", "--wide"]).wide


def test_trial_and_level_lines_name_the_test_sets_macro_auc(tmp_path):
    from qapbo.study.file import parse_study
    from qapbo.study.qap import run_qap
    from qapbo.study.search import run_search

    text = ("name = 'l'\n[data]\nn_rows = 1500\n[train]\nepochs = 1\nbatch_size = 256\n[search]\nn_trials = 1\n"
            "[search.space]\nn_layers = 1\nwidth = 8\nbits = { choices = [6, 8] }\n"
            "[qap]\nhidden = [8]\nprecisions = [8]\nmodes = ['ft']\nschedule = [0.0]\n")
    lines: list[str] = []
    study = parse_study(text, "l.toml")
    run_search(study, storage=f"sqlite:///{tmp_path}/l.db", progress="lines", log=lines.append)
    run_qap(study, storage=f"sqlite:///{tmp_path}/l.db", progress="lines", log=lines.append)
    trial = next(x for x in lines if x.startswith("trial   0"))
    level = next(x for x in lines if " level  0 " in x)
    assert "macro AUC (test) 0." in trial and "macro AUC (test) 0." in level, (trial, level)


def test_a_runs_first_line_names_the_table_and_its_split(tmp_path):
    from qapbo.study.file import parse_study
    from qapbo.study.qap import run_qap

    rows = ["a,b,kind"] + [f"{(i % 3) + 0.1 * (i % 7)},{(i * 37) % 11},{'xyz'[i % 3]}" for i in range(300)]
    (tmp_path / "wine.csv").write_text("\n".join(rows) + "\n")
    text = (f"name = 't'\n[data]\nsource = 'table'\npath = '{tmp_path / 'wine.csv'}'\nlabel_column = 'kind'\n"
            "[train]\nepochs = 1\nbatch_size = 64\n[qap]\nhidden = [4]\nprecisions = [8]\nmodes = ['ft']\n"
            "schedule = [0.0]\n")
    lines: list[str] = []
    run_qap(parse_study(text, "t.toml"), storage=f"sqlite:///{tmp_path}/t.db", progress="lines", log=lines.append)
    first = next(x for x in lines if x.startswith("qap t:"))
    # 300 rows: 20 % test, then 20 % of the rest validation (as scikit-learn's train_test_split rounds)
    assert first.endswith("data: table wine.csv (180 train / 60 validation / 60 test rows, 3 classes)"), first
