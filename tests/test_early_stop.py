"""Dominance-based early stopping: the margin, the decision, and hopeless trials really PRUNED."""

import random
import re
import shutil
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from qapbo.cost.bops import model_bops
from qapbo.cost.flops import forward_flops
from qapbo.data.split import load_data
from qapbo.errors import StudyFileError
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.study.early_stop import Curve, EarlyStopper, Evidence, Member, cost_ratios, decide, margin, nominal_bops
from qapbo.study.file import parse_study
from qapbo.study.search import make_sampler, prepare_search, run_search
from qapbo.study.storage import stored_config

QAPBO = shutil.which("qapbo") or f"{sys.executable} -m qapbo.cli"


def quiet(_msg):
    pass


# ------------------------------------------------------------------------------ nominal BOPs

@pytest.mark.parametrize("bits,sparsity,expected", [(32, 0.0, 4_652_832), (6, 0.0, 412_960), (6, 0.8, 162_592)])
def test_nominal_bops_matches_the_protocol_worked_values(bits, sparsity, expected):
    spec = ModelSpec(n_inputs=16, hidden=(64, 32, 32), n_classes=5, weight_bits=bits)
    assert nominal_bops(spec, sparsity) == pytest.approx(expected, abs=1)


def test_nominal_bops_of_an_unpruned_mixed_precision_net_equals_its_measured_bops():
    spec = ModelSpec(n_inputs=16, hidden=(12, 7), n_classes=5, weight_bits=(6, 4, 8), act_bits=(3, 5), input_bits=8)
    assert nominal_bops(spec, 0.0) == pytest.approx(model_bops(build_model(spec, seed=1)).total)


# ------------------------------------------------------------------------------ the margin

CURVES = [
    Curve((0.5, 0.6, 0.7, 0.8), 0.8),  # learns late
    Curve((0.6, 0.65), 0.65),  # ended after 2 epochs
    Curve((0.7, 0.7, 0.7, 0.72, 0.75, 0.74), 0.75),
    Curve((0.55, 0.6, 0.62), 0.61),  # kept a model below its best AUC (e.g. after pruning)
]


def test_margin_is_the_largest_later_gain_inflated_by_the_number_of_curves():
    # epoch 2: gains 0.8-0.6, 0 (ended), 0.75-0.7, 0.61-0.6 -> 0.2, times (1 + 4/4)
    assert margin(CURVES, 2) == pytest.approx(0.4)
    # epoch 4: only curve 3 goes on: 0.75 - 0.72
    assert margin(CURVES, 4) == pytest.approx(0.06)
    # every curve ended: the floor
    assert margin(CURVES, 6) == pytest.approx(0.01)
    # twice the evidence, less inflation: 0.2 x (1 + 4/8)
    assert margin(CURVES * 2, 2) == pytest.approx(0.3)


# ------------------------------------------------------------------------------ the decision

FRONT = (Member(1, 0.80, (1000.0,)), Member(2, 0.90, (5000.0,)))
EVIDENCE = Evidence(front=FRONT, curves=tuple(CURVES), ratios={"bops": 0.5})


def test_a_trial_below_a_cheaper_member_is_hopeless():
    # epoch 4: margin 0.06; best 0.70 -> at most 0.76; cost >= 4000 x 0.5 = 2000 >= trial 1's 1000
    reason = decide(0.70, 4, 4000.0, EVIDENCE, ("bops",), 0.55)
    assert reason == "epoch 4: best validation AUC 0.700 + margin 0.060 cannot reach trial 1's validation AUC 0.800 at bops <= 2e+03"


@pytest.mark.parametrize("best,epoch,nominal,why", [
    (0.75, 4, 4000.0, "0.75 + 0.06 = 0.81 beats trial 1"),
    (0.70, 4, 1000.0, "cost bound 500: every member costs more"),
    (0.70, 2, 4000.0, "margin 0.4 early on: 1.1"),
])
def test_a_trial_that_can_still_reach_the_front_goes_on(best, epoch, nominal, why):
    assert decide(best, epoch, nominal, EVIDENCE, ("bops",), 0.55) is None, why


def test_the_costlier_member_counts_when_the_bound_reaches_it():
    # bound 12000 >= 5000: trial 2 (0.90) is the member cited, the best one that is beaten
    reason = decide(0.80, 4, 24000.0, EVIDENCE, ("bops",), 0.55)
    assert "cannot reach trial 2's validation AUC 0.900" in reason


def test_below_min_auc_is_hopeless_even_without_a_cost_bound():
    no_ratio = Evidence(front=FRONT, curves=tuple(CURVES), ratios={})
    assert decide(0.45, 6, 4000.0, no_ratio, ("bops",), 0.55) == \
        "epoch 6: best validation AUC 0.450 + margin 0.010 stays below min_auc 0.55"
    assert decide(0.70, 4, 4000.0, no_ratio, ("bops",), 0.55) is None  # no ratio: no front decision


def test_nothing_is_decided_before_enough_curves():
    few = Evidence(front=FRONT, curves=tuple(CURVES[:3]), ratios={"bops": 0.5})
    assert decide(0.10, 6, 4000.0, few, ("bops",), 0.55) is None
    assert decide(0.10, 6, 4000.0, few, ("bops",), 0.55, startup_trials=3) is not None


def test_every_cost_must_be_at_most_its_bound():
    two = Evidence(front=(Member(1, 0.80, (1000.0, 50.0)),), curves=tuple(CURVES), ratios={"bops": 0.5, "luts": 0.01})
    assert decide(0.70, 4, 4000.0, two, ("bops", "luts"), 0.55) is None  # luts bound 40 < 50
    assert decide(0.70, 4, 6000.0, two, ("bops", "luts"), 0.55).endswith("bops <= 3e+03, luts <= 60")


def test_cost_ratios_take_the_smallest_ratio_over_trials_that_have_both():
    def t(attrs):
        return create_trial(values=[0.9, 1.0], user_attrs=attrs)

    trials = [t({"nominal_bops": 1000.0, "bops": 800.0, "luts": 50.0}), t({"nominal_bops": 2000.0, "bops": 1200.0}),
              t({"bops": 10.0}), t({"nominal_bops": 100.0})]
    assert cost_ratios(trials, ("bops", "luts")) == pytest.approx({"bops": 0.6, "luts": 0.05})


def _add(study, number_auc_bops, curve=(0.5, 0.7, 0.8), nominal=None):
    for auc, bops in number_auc_bops:
        study.add_trial(create_trial(values=[auc, bops], constraints={"min_auc": 0.55 - auc},
                                     user_attrs={"val_auc": auc, "intermediate_val_auc": list(curve), "bops": bops,
                                                 "nominal_bops": nominal or bops}))


def test_the_stopper_reads_the_storage_at_most_every_two_seconds_and_at_each_trial():
    now = [0.0]
    study = optuna.create_study(directions=["maximize", "minimize"])
    _add(study, [(0.80, 1000.0), (0.85, 3000.0), (0.70, 500.0)])
    stopper = EarlyStopper(("bops",), 0.55, warmup=2, startup_trials=4, clock=lambda: now[0])
    stopper.start_trial(study)
    curve = [0.5, 0.6, 0.6, 0.6]
    assert stopper.check(curve[:2], 4000.0) is None  # warm-up: no storage read at all
    assert stopper._evidence is None
    assert stopper.check(curve, 4000.0) is None  # three curves, four needed
    _add(study, [(0.90, 8000.0)])
    now[0] = 1.9
    assert stopper.check(curve, 4000.0) is None  # not re-read yet
    now[0] = 2.0
    # re-read: four curves, all ended by epoch 4 (margin 0.01); bound 4000 reaches trials 0-2, best is 1
    assert "cannot reach trial 1's validation AUC 0.850" in stopper.check(curve, 4000.0)
    _add(study, [(0.95, 900.0)])
    stopper.start_trial(study)  # a new trial reads afresh
    assert "trial 4's validation AUC" in stopper.check(curve, 4000.0)


# ------------------------------------------------------------------------------ end to end

FILE = """
name = "es"
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
{extra}
[search.space]
n_layers = {{ low = 1, high = 2 }}
width = {{ choices = [4, 8, 32] }}
bits = {{ choices = [3, 4, 32] }}
lr = {{ choices = [0.003, 1e-7] }}
"""

GOOD = [dict(n_layers=1, width_1=8, bits=4, lr=0.003), dict(n_layers=2, width_1=8, width_2=8, bits=4, lr=0.003),
        dict(n_layers=1, width_1=32, bits=3, lr=0.003), dict(n_layers=2, width_1=32, width_2=8, bits=4, lr=0.003)]
#: the largest network at a learning rate that cannot learn: the front has better nets for less
HOPELESS = dict(n_layers=2, width_1=32, width_2=32, bits=32, lr=1e-7)
#: the cheapest network, learning: its cost bound is below every member's cost, so it joins the front
CHEAPEST = dict(n_layers=1, width_1=4, bits=3, lr=0.003)


def _run(tmp_path, extra="", n_trials=6):
    study = parse_study(FILE.format(n_trials=n_trials, extra=extra), "es.toml")
    url = f"sqlite:///{tmp_path}/es.db"
    (ostudy,) = prepare_search(study, storage=url, say=quiet).studies
    for params in [*GOOD, HOPELESS, CHEAPEST]:
        ostudy.enqueue_trial(params)
    lines = []
    (ostudy,) = run_search(study, storage=url, progress="lines", log=lines.append)
    return study, url, ostudy, lines


def test_a_hopeless_trial_is_pruned_soon_after_warm_up_and_a_front_trial_is_not(tmp_path):
    study, url, ostudy, lines = _run(tmp_path)
    trials = ostudy.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 + [TrialState.PRUNED, TrialState.COMPLETE]
    stopped = trials[4]
    assert stopped.params == HOPELESS
    assert 3 <= stopped.user_attrs["epochs"] <= 2 + 3  # within a few epochs after the 2 of warm-up
    assert len(stopped.user_attrs["intermediate_val_auc"]) == stopped.user_attrs["epochs"]
    assert stopped.user_attrs["seconds"] > 0 and stopped.user_attrs["kind"] == "search"
    # a stopped trial's compute in FLOPs too: its epochs of 16-32-32-5 (BatchNorm affine), each training the
    # training rows and evaluating the validation rows twice (loss, and the AUC early stopping reads)
    data = load_data(study.data)
    rows = len(data.y_train) - 1 if len(data.y_train) % 128 == 1 else len(data.y_train)
    f = forward_flops((16, 32, 32, 5), "affine")
    assert stopped.user_attrs["flops"] == stopped.user_attrs["epochs"] * (3 * f * rows + 2 * f * len(data.y_val))
    assert stopped.user_attrs["cpu_seconds"] > 0
    assert stopped.user_attrs["nominal_bops"] == pytest.approx(
        nominal_bops(ModelSpec(n_inputs=16, hidden=(32, 32), n_classes=5, weight_bits=32), 0.0))
    reason = stopped.user_attrs["stop_reason"]
    assert reason.startswith(f"epoch {stopped.user_attrs['epochs']}: best validation AUC ") and "cannot reach" in reason
    assert stopped.values is None and stopped.number not in {t.number for t in ostudy.best_trials}
    assert f"trial   4  PRUNED at {reason}" in lines
    cheapest = trials[5]
    assert cheapest.params == CHEAPEST and cheapest.number in {t.number for t in ostudy.best_trials}
    for t in trials[:4] + [cheapest]:
        assert 0.5 < t.user_attrs["val_auc"] <= 1.0 and t.user_attrs["nominal_bops"] > 0
    # the budget counts the PRUNED trial: 6 trials evaluated, a resumed run adds none
    run_search(study, storage=url, progress=False, log=quiet)
    assert len(optuna.load_study(study_name="es-search", storage=url).trials) == 6


def test_early_stop_false_prunes_nothing(tmp_path):
    _, _, ostudy, _ = _run(tmp_path, extra="early_stop = false")
    trials = ostudy.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert trials[4].params == HOPELESS and "stop_reason" not in trials[4].user_attrs


def test_a_study_stored_before_the_early_stop_keys_resumes_with_them(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    old = parse_study(FILE.replace("early_stop_warmup = 2", "").format(n_trials=2, extra=""), "es.toml")
    run_search(old, storage=url, progress=False, log=quiet)
    stored = stored_config(optuna.load_study(study_name="es-search", storage=url))
    assert not any(k.startswith("early_stop") for k in stored["search"])  # as before the keys existed
    new = parse_study(FILE.format(n_trials=3, extra="early_stop = false\nearly_stop_startup_trials = 6"), "es.toml")
    (ostudy,) = run_search(new, storage=url, progress=False, log=quiet)
    assert len(ostudy.get_trials(states=(TrialState.COMPLETE,))) == 3


@pytest.mark.parametrize("line,message", [
    ("early_stop = \"yes\"", "[search] key 'early_stop' must be true or false, got str 'yes'"),
    ("early_stp = true", "unknown key 'early_stp' in [search] (did you mean 'early_stop'?)"),
])
def test_bad_early_stop_keys_exit_2_with_one_line(tmp_path, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(FILE.format(n_trials=2, extra=line))
    p = subprocess.run(QAPBO.split() + ["search", str(path), "--storage", f"sqlite:///{tmp_path}/b.db"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.db").exists()


@pytest.mark.parametrize("text,message", [
    (FILE.format(n_trials=2, extra="").replace("early_stop_warmup = 2", "early_stop_warmup = -1"),
     "early_stop_warmup is -1: use 0 or more epochs"),
    (FILE.format(n_trials=2, extra="early_stop_startup_trials = 0"), "early_stop_startup_trials is 0: use at least 1"),
])
def test_early_stop_numbers_out_of_range(text, message):
    with pytest.raises(StudyFileError, match=re.escape(message)):
        parse_study(text, "es.toml")


# ------------------------------------------------------------------------------ samplers

SAMPLER_SPACE = """
name = "sp"
[search]
n_trials = 24
[search.space]
n_layers = 2
width = { choices = [4, 8, 16, 32] }
bits = { choices = [3, 4, 6, 8] }
sparsity = { choices = [0.0, 0.5] }
"""


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp", "random", "grid"])
@pytest.mark.parametrize("share", [0.3, 0.95])
def test_every_sampler_keeps_proposing_after_pruned_trials(sampler, share):
    """Optuna's multi-objective TPE once failed on pruned trials (optuna#5260): 30 and 95 % PRUNED here."""
    settings = parse_study(SAMPLER_SPACE, "sp.toml").search
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(sampler, 0, settings, settings.space))
    rng = random.Random(0)
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        cand = settings.space.suggest(trial, 16, 5)
        nominal = nominal_bops(cand.spec, cand.sparsity)
        if trial.number >= 2 and rng.random() < share:  # a few COMPLETE first, as in a real study
            trial.set_user_attr("stop_reason", "test")
            raise optuna.TrialPruned()
        auc = 0.6 + 0.3 * rng.random()
        trial.set_constraint("min_auc", 0.55 - auc)
        return auc, nominal

    study.optimize(objective, n_trials=24)
    states = [t.state for t in study.trials]
    assert len(states) == 24 and TrialState.FAIL not in states
    assert states.count(TrialState.PRUNED) >= (5 if share < 0.5 else 15)
    assert all(t.state != TrialState.PRUNED or t.values is None for t in study.trials)
