"""Every study file users run validates, on its own data and switched to synthetic jets."""

from pathlib import Path

import pytest

from qapbo.data.split import load_data
from qapbo.errors import DataError
from qapbo.study.file import load_study_file, parse_study
from qapbo.study.search import run_search

STUDIES = sorted((Path(__file__).parent.parent / "studies").glob("*.toml"))


def test_there_are_study_files():
    names = {p.stem for p in STUDIES}
    paper = {"quickstart", "paper-qap", "paper-bo", "joint-search", "ablation-bn-l1", "label-randomization"}
    assert paper <= names
    for name in paper:  # the main job and the paper studies run on physics-generated jets
        assert load_study_file(STUDIES[0].parent / f"{name}.toml").data.source == "pythia-jets"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_file_validates(path):
    study = load_study_file(path)
    assert study.name == path.stem
    text = path.read_text()
    assert text.lstrip().startswith("#")  # says what it reproduces, how long, which data
    assert "two cores" in text
    assert study.qap is not None or study.search is not None
    syn = load_study_file(path, synthetic=True, rows=500)
    assert syn.data.source == "synthetic-jets" and syn.data.n_rows == 500
    assert syn.name == f"{path.stem}-synthetic"
    assert syn.data.folds == study.data.folds and syn.randomizations == study.randomizations
    if study.data.source == "synthetic-jets":
        assert study.data.n_rows <= 20_000  # runs in minutes
    elif study.data.source == "pythia-jets":  # generated once and cached: loading is tested in test_jetgen
        assert study.data.n_rows in (20_000, 100_000) and "pythia-jets" in text and "qapbo[physics]" in text
    else:  # real data: a missing file says how to get going
        with pytest.raises(DataError, match="--synthetic"):
            load_data(study.data)


def test_paper_files_carry_the_protocol():
    qap = load_study_file(STUDIES[0].parent / "paper-qap.toml")
    assert qap.qap.precisions == (32, 12, 8, 6, 4) and qap.qap.modes == ("ft", "lt")
    assert qap.qap.schedule[-2:] == (0.9666, 0.9888) and qap.train.lr == 1e-4 and qap.train.patience == 10
    bo = load_study_file(STUDIES[0].parent / "paper-bo.toml")
    assert [n for n, _ in bo.search.studies(bo.name)] == [f"paper-bo-search-{b}b" for b in (32, 12, 6, 4)]
    assert bo.train.epochs == 25 and bo.search.n_trials == 20
    abl = load_study_file(STUDIES[0].parent / "ablation-bn-l1.toml")
    assert abl.search.n_trials == 4 * 2 * 4  # the whole grid


def test_grid_sampler_runs_every_combination_once(tmp_path):
    text = ("name = 'g'\n[data]\nn_rows = 1500\n[train]\nepochs = 1\nbatch_size = 256\n[search]\nsampler = 'grid'\n"
            "[search.space]\nn_layers = 1\nwidth = 8\nbits = { choices = [4, 8] }\nbn = { choices = ['none', 'affine'] }\n")
    (ostudy,) = run_search(parse_study(text, "g.toml"), storage=f"sqlite:///{tmp_path}/g.db", progress=False,
                           log=lambda m: None)
    combos = sorted((t.params["bits"], t.params["bn"]) for t in ostudy.trials)
    assert combos == [(4, "affine"), (4, "none"), (8, "affine"), (8, "none")]


def test_grid_needs_choices():
    from qapbo.errors import StudyFileError

    with pytest.raises(StudyFileError, match="grid' needs choices, not a range, for width_1"):
        parse_study("name = 'g'\n[search]\nsampler = 'grid'\n[search.space]\nn_layers = 1\n"
                    "width = { low = 4, high = 8 }\n", "g.toml")
