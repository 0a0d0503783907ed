"""Searching learned per-weight precision: the space (precision, beta, init_bits, bits_lr), early stopping's
cost bound for learned trials, and tiny searches on synthetic data (learned only, and a choice of both)."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from qapbo.cost.bops import linear_bops
from qapbo.errors import SpaceError, StudyFileError
from qapbo.nn.learned import LearnedTagger
from qapbo.nn.spec import ModelSpec
from qapbo.study.early_stop import nominal_bops
from qapbo.study.file import parse_study
from qapbo.study.search import prepare_search, run_search
from qapbo.study.space import DEFAULT_BETA, parse_space
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint
from qapbo.train.config import TrainConfig


def fail(msg):
    raise SpaceError(msg)


def space(**d):
    return parse_space(d, TrainConfig(), fail)


def ask(sp, params=None, sampler=None):
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    if params:
        study.enqueue_trial(params)
    trial = study.ask()
    return trial, sp.suggest(trial, 16, 5)


# ------------------------------------------------------------------------------ the space

def test_a_learned_space_searches_beta_and_initial_bits_and_fixes_the_rest():
    sp = space(precision="learned", n_layers=1, width=8, init_bits={"low": 2, "high": 5})
    assert sp.learned and sp.beta.kind == "float" and (sp.beta.low, sp.beta.high, sp.beta.log) == (1e-7, 1e-4, True)
    trial, cand = ask(sp, {"beta": 3e-6, "init_bits": 4})
    assert trial.params == {"beta": 3e-6, "init_bits": 4}  # nothing of fixed precision is asked
    assert cand.spec == ModelSpec(n_inputs=16, hidden=(8,), n_classes=5, precision="learned", beta=3e-6, init_bits=4)
    assert (cand.l1, cand.sparsity) == (0.0, 0.0)
    assert cand.train_config(TrainConfig()).l1 == 0.0 and cand.train_config(TrainConfig()).lr == TrainConfig().lr
    canon = sp.canonical()
    assert canon["precision"] == "learned" and canon["beta"] == DEFAULT_BETA and canon["bits_lr"] == 5e-3
    assert canon["init_bits"] == {"low": 2, "high": 5, "log": False}


def test_a_fixed_space_keeps_its_canonical_form():
    # a stored study's space must compare equal after the learned keys exist, so none are added to it
    assert set(space(bits={"choices": [4, 6]}).canonical()) == {
        "n_layers", "bits", "input_bits", "bn", "lr", "l1", "sparsity", "act_bits", "width"}


def test_a_choice_of_precisions_asks_each_kind_its_own_parameters():
    sp = space(precision={"choices": ["fixed", "learned"]}, n_layers=1, width=8, bits={"choices": [4, 6]},
               bn={"choices": ["affine", "none"]}, sparsity={"choices": [0.0, 0.5]}, beta={"choices": [1e-6, 1e-5]})
    trial, cand = ask(sp, {"precision": "learned", "beta": 1e-5})
    assert set(trial.params) == {"precision", "beta"} and cand.spec.learned and cand.spec.bn == "none"
    trial, cand = ask(sp, {"precision": "fixed", "bits": 4, "bn": "none", "sparsity": 0.5})
    assert set(trial.params) == {"precision", "bits", "bn", "sparsity"} and not cand.spec.learned
    assert cand.spec.weight_bits == (4, 4) and cand.sparsity == 0.5


def test_grid_takes_a_learned_space_but_not_a_choice_of_precisions():
    sp = space(precision="learned", n_layers=1, width=8, beta={"choices": [1e-6, 1e-5]}, init_bits={"choices": [2, 3]})
    assert sp.grid() == {"beta": [1e-6, 1e-5], "init_bits": [2, 3]}
    with pytest.raises(SpaceError, match="needs one precision"):
        space(precision={"choices": ["fixed", "learned"]}, n_layers=1, width=8).grid()


@pytest.mark.parametrize("d,says", [
    (dict(beta=1e-5, width=8), "beta: only for learned precision"),
    (dict(precision="learned", bits={"choices": [4, 6]}), "bits would be searched for nothing"),
    (dict(precision="learned", sparsity=0.5, l1=0.0), "l1, sparsity would be searched for nothing"),
    (dict(precision="mixed"), "precision value(s) ['mixed'] unknown"),
    (dict(precision="learned", init_bits={"low": 2, "high": 20}), "init_bits must lie in [0, 16]"),
    (dict(precision="learned", beta=-1.0), "beta must be >= 0"),
    (dict(precision="learned", bits_lr=0.0), "bits_lr must be positive"),
    (dict(precision="learned", n_layers=1, width=8, beta=1e-5), "nothing to search"),
])
def test_bad_learned_spaces_are_refused_with_one_message(d, says):
    with pytest.raises(SpaceError) as exc:
        space(**d)
    assert says in str(exc.value)


# ------------------------------------------------------------------------------ early stopping's cost bound

def test_the_nominal_bops_of_a_learned_trial_are_its_starting_widths():
    spec = ModelSpec(n_inputs=16, hidden=(8, 4), n_classes=5, precision="learned", init_bits=3)
    # every weight, input and activation at 3 fractional bits plus a sign bit: Hawks' BOPs at 4 bits
    by_hand = (8 * 16 * (4 * 4 + 4 + 4 + 4) + 4 * 8 * (4 * 4 + 4 + 4 + 3) + 5 * 4 * (4 * 4 + 4 + 4 + 2))
    assert nominal_bops(spec, 0.0) == by_hand == sum(linear_bops(i, o, 4, 4) for i, o in ((16, 8), (8, 4), (4, 5)))


# ------------------------------------------------------------------------------ tiny searches

FILE = """
name = "ls"
seed = 0
[data]
n_rows = 3000
[train]
epochs = 12
lr = 0.003
batch_size = 128
patience = 4
[search]
sampler = "random"
n_trials = {n_trials}
early_stop_warmup = 2
[search.space]
{space}
"""

LEARNED = """precision = "learned"
n_layers = { low = 1, high = 2 }
width = { choices = [4, 8, 32] }
beta = { choices = [1e-6, 1e-4] }
bits_lr = 2e-2
lr = { choices = [0.003, 1e-7] }"""

GOOD = [dict(n_layers=1, width_1=8, beta=1e-6, lr=0.003), dict(n_layers=2, width_1=8, width_2=8, beta=1e-4, lr=0.003),
        dict(n_layers=1, width_1=32, beta=1e-4, lr=0.003), dict(n_layers=2, width_1=32, width_2=8, beta=1e-6, lr=0.003)]
#: the largest net at a learning rate that cannot learn: the front has better nets for less
HOPELESS = dict(n_layers=2, width_1=32, width_2=32, beta=1e-6, lr=1e-7)


def quiet(_msg):
    pass


def test_a_learned_search_stores_learned_nets_and_stops_a_hopeless_one(tmp_path):
    study = parse_study(FILE.format(n_trials=5, space=LEARNED), "ls.toml")
    url = f"sqlite:///{tmp_path}/ls.db"
    (ostudy,) = prepare_search(study, storage=url, say=quiet).studies
    for params in [*GOOD, HOPELESS]:
        ostudy.enqueue_trial(params)
    lines = []
    (ostudy,) = run_search(study, storage=url, progress="lines", log=lines.append)
    trials = ostudy.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 + [TrialState.PRUNED], lines
    store = artifact_store(artifact_dir(study, url))
    for t in trials[:4]:
        a = t.user_attrs
        assert a["model"]["precision"] == "learned" and a["model"]["beta"] == t.params["beta"]
        assert a["bops_definition"] == "hawks2021-perweight-v1" and t.values[1] == a["bops"]
        assert a["train_config"]["l1"] == 0.0 and a["train_config"]["lr"] == t.params["lr"]
        spec = ModelSpec.from_dict(a["model"])
        assert a["nominal_bops"] == pytest.approx(nominal_bops(spec, 0.0))
        model, _ = load_checkpoint(store, a["checkpoint"])
        assert isinstance(model, LearnedTagger) and model.spec == spec
        assert math.isclose(float(model.ebops().detach()), a["ebops"])
    stopped = trials[4]
    assert stopped.params == HOPELESS and "cannot reach" in stopped.user_attrs["stop_reason"]
    assert 3 <= stopped.user_attrs["epochs"] <= 2 + 3
    assert f"trial   4  PRUNED at {stopped.user_attrs['stop_reason']}" in lines


def test_a_search_over_both_precisions_trains_each_kind(tmp_path):
    mixed = """precision = { choices = ["fixed", "learned"] }
n_layers = 1
width = { choices = [8, 16] }
bits = { choices = [4, 6] }
beta = { low = 1e-6, high = 1e-4, log = true }"""
    study = parse_study(FILE.format(n_trials=4, space=mixed), "mx.toml")
    url = f"sqlite:///{tmp_path}/mx.db"
    (ostudy,) = prepare_search(study, storage=url, say=quiet).studies
    ostudy.enqueue_trial({"precision": "learned", "width_1": 8, "beta": 1e-5})
    ostudy.enqueue_trial({"precision": "fixed", "width_1": 8, "bits": 4})
    (ostudy,) = run_search(study, storage=url, progress=False, log=quiet)
    trials = ostudy.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    kinds = {t.params["precision"]: t.user_attrs for t in trials[:2]}
    assert kinds["learned"]["model"]["precision"] == "learned" and kinds["learned"]["model"]["bn"] == "none"
    assert kinds["learned"]["bops_definition"] == "hawks2021-perweight-v1"
    assert kinds["fixed"]["model"]["weight_bits"] == [4, 4] and kinds["fixed"]["bops_definition"] == "hawks2021-v1"
    for t in trials:
        assert ("beta" in t.params) == (t.params["precision"] == "learned")
        assert ("bits" in t.params) == (t.params["precision"] == "fixed")


def test_refine_takes_a_learned_member_up_a_rising_beta(tmp_path):
    from qapbo.study.refine import run_refine

    space = LEARNED.replace("beta = { choices = [1e-6, 1e-4] }", "beta = { choices = [1e-6, 1e-5] }")
    text = FILE.format(n_trials=2, space=space) + "[refine]\nmembers = 1\nbetas = [10, 1000]\n"
    study = parse_study(text, "lr.toml")
    url = f"sqlite:///{tmp_path}/lr.db"
    (ostudy,) = prepare_search(study, storage=url, say=quiet).studies
    ostudy.enqueue_trial(dict(n_layers=1, width_1=32, beta=1e-5, lr=0.003))
    ostudy.enqueue_trial(dict(n_layers=1, width_1=4, beta=1e-6, lr=0.003))
    run_search(study, storage=url, progress=False, log=quiet)
    lines: list[str] = []
    refine = run_refine(study, storage=url, progress="lines", log=lines.append)
    levels = sorted(refine.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.params["level"])
    member = ostudy.trials[int(levels[0].params["member"].split("#")[1])]
    own = member.params["beta"]
    assert [t.user_attrs["target_beta"] for t in levels] == pytest.approx([own, 10 * own, 1000 * own]), lines
    assert levels[0].user_attrs["auc"] == member.user_attrs["auc"] and levels[0].user_attrs["epochs"] == 0
    store = artifact_store(artifact_dir(study, url))
    for t in levels:
        model, _ = load_checkpoint(store, t.user_attrs["checkpoint"])
        assert isinstance(model, LearnedTagger) and model.spec.beta == pytest.approx(t.user_attrs["target_beta"])
        assert t.user_attrs["model"]["beta"] == pytest.approx(t.user_attrs["target_beta"])
        assert math.isclose(float(model.ebops().detach()), t.user_attrs["ebops"]) and t.values[1] == t.user_attrs["bops"]
    for t in levels[1:]:
        assert t.user_attrs["epochs"] > 0 and t.user_attrs["train_config"]["seed"] == levels[1].user_attrs[
            "train_config"]["seed"] + t.params["level"] - 1
    # a thousand times the member's beta costs it most of its EBOPs
    assert levels[2].user_attrs["ebops"] < 0.5 * levels[0].user_attrs["ebops"]


def test_refine_betas_are_validated():
    for bad, says in [("[0.5, 2]", "above 1"), ("[3, 3]", "increase strictly"), ("[]", "non-empty")]:
        with pytest.raises(StudyFileError, match=says):
            parse_study(FILE.format(n_trials=1, space=LEARNED) + f"[refine]\nbetas = {bad}\n", "b.toml")
    assert "betas" not in parse_study(FILE.format(n_trials=1, space=LEARNED) + "[refine]\n").canonical["refine"]
