"""Dominance-based early stopping: is a running search trial already hopeless?

Optuna refuses ``trial.report`` in multi-objective studies, so its pruners cannot stop a search
trial. The question here is a Pareto one: can this trial still reach the study's front? It
cannot when some member of the front as stored (``Study.best_trials``: feasible COMPLETE
trials) has a higher validation AUC than the trial can still reach, at costs no higher than the
trial's own. Stopped trials are stored PRUNED by :mod:`qapbo.study.search`.

Two optimistic estimates make that decision, both learned from the study's own trials:

* **What the trial can still reach**: its best validation macro AUC so far plus a margin
  (:func:`margin`) learned from the learning curves (``intermediate_val_auc``) of the study's
  COMPLETE trials: how much each of them still gained after epoch ``e``. Validation AUC is
  compared with the front members' validation AUC (``val_auc``), like with like; members stored
  without it are ignored, which can only stop fewer trials.
* **What the trial will cost**: its nominal BOPs are known before training (architecture,
  bit widths, density ``1 - target sparsity``: :func:`nominal_bops`; for learned precision, whose
  widths are not known before training, the BOPs of the widths it starts from: every weight,
  input and activation at ``init_bits`` fractional bits plus a sign bit), but weights that quantize to
  zero and global (non-uniform) pruning move the trained BOPs away from it, and EBOPs, LUTs and
  latency depend on the trained weights. One rule for every cost ``c``: its lower bound is
  ``nominal_bops x min(c / nominal_bops)`` over the study's COMPLETE trials that recorded both
  (:func:`cost_ratios`), BOPs included. The smallest ratio seen is an empirical bound, not a
  proof; without any such trial nothing is stopped for the front (only for ``min_auc``). A
  learned-precision trial's costs shrink with its ``beta``, which the nominal BOPs ignore: the
  ratio's minimum comes from the study's strongest-beta trials, so its bound is loose for weaker
  ones (fewer trials stopped, none stopped wrongly for it), and in a study of both precisions the
  one minimum over all trials loosens the fixed trials' bounds too.

A trial whose optimistic AUC stays below the study's ``min_auc`` is stopped too: it can never
be feasible.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from qapbo.cost.bops import linear_bops
from qapbo.nn.spec import ModelSpec
from qapbo.study.space import SearchSettings

#: The margin's floor: a few thousandths of AUC are validation noise on a few thousand jets.
MARGIN_FLOOR = 0.01
#: The margin is ``max gain x (1 + INFLATION / n)`` over n learning curves (see :func:`margin`).
INFLATION = 4.0
#: Seconds between two reads of the storage inside one trial (an epoch takes ~0.05-0.1 s).
REFRESH_SECONDS = 2.0
DEFAULT_WARMUP = SearchSettings.early_stop_warmup  # the [search] keys' defaults, written once there
DEFAULT_STARTUP_TRIALS = SearchSettings.early_stop_startup_trials


def nominal_bops(spec: ModelSpec, sparsity: float) -> float:
    """PROTOCOL's BOPs of ``spec`` with every layer at density ``1 - sparsity``, before training.

    Equals :func:`qapbo.cost.bops.model_bops` of an untrained, unpruned network when ``sparsity`` is 0.
    A learned-precision spec counts every weight, input and activation at ``init_bits + 1`` bits (its
    initial fractional bits and a sign bit; the integer bits come from values not known yet).
    """
    widths = spec.widths
    n = len(widths) - 1
    if spec.learned:
        w_bits, a_bits = (spec.init_bits + 1,) * n, (spec.init_bits + 1,) * n
    else:
        w_bits, a_bits = spec.weight_bits, (spec.input_bits, *spec.act_bits)
    return sum(linear_bops(n_in, n_out, w, a, 1.0 - sparsity)
               for n_in, n_out, w, a in zip(widths[:-1], widths[1:], w_bits, a_bits))


@dataclass(frozen=True)
class Curve:
    """A COMPLETE trial's validation AUC per epoch and the validation AUC of the model it kept."""

    values: tuple[float, ...]
    final: float


def margin(curves: Sequence[Curve], epoch: int) -> float:
    """How much AUC a trial at ``epoch`` may still gain, learned from finished ``curves``.

    ``gain_i(e) = final_i - max(curve_i[:e])`` (0 when curve i had ended by epoch e): what trial
    i gained after its first e epochs. The margin is ``max(MARGIN_FLOOR, max_i gain_i(e) x
    (1 + INFLATION / n))``. Why inflate: the largest of n gains underestimates the tail; for
    exchangeable gains a new trial exceeds all n with probability 1 / (n + 1), 20 % with 4
    curves. Doubling the largest gain at n = 4 (1.5x at 8, 1.17x at 24) buys room for a trial
    that learns more slowly than any seen so far, and the room shrinks as evidence grows.
    """
    if not curves:
        raise ValueError("margin needs at least one learning curve")
    gains = [c.final - max(c.values[:epoch]) if len(c.values) > epoch else 0.0 for c in curves]
    return max(MARGIN_FLOOR, max(0.0, *gains) * (1.0 + INFLATION / len(curves)))


def cost_ratios(trials: Sequence[FrozenTrial], costs: Sequence[str]) -> dict[str, float]:
    """The smallest ``cost / nominal_bops`` per cost over ``trials`` that recorded both."""
    out: dict[str, float] = {}
    for t in trials:
        nominal = t.user_attrs.get("nominal_bops")
        if not nominal:
            continue
        for c in costs:
            v = t.user_attrs.get(c)
            if v is not None and math.isfinite(float(v)):
                out[c] = min(out.get(c, math.inf), float(v) / float(nominal))
    return out


@dataclass(frozen=True)
class Member:
    """A front member as the decision needs it: trial number, validation AUC, objective costs."""

    number: int
    val_auc: float
    costs: tuple[float, ...]


@dataclass(frozen=True)
class Evidence:
    """What the study's stored trials say, read once per refresh."""

    front: tuple[Member, ...]
    curves: tuple[Curve, ...]
    ratios: dict[str, float]


def read_evidence(study: optuna.Study, costs: Sequence[str]) -> Evidence:
    """The front (members with ``val_auc``), learning curves and cost ratios of ``study``'s COMPLETE trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    curves = tuple(Curve(tuple(float(v) for v in t.user_attrs["intermediate_val_auc"]), float(t.user_attrs["val_auc"]))
                   for t in complete if t.user_attrs.get("val_auc") is not None
                   and t.user_attrs.get("intermediate_val_auc"))
    front = tuple(Member(t.number, float(t.user_attrs["val_auc"]), tuple(float(v) for v in t.values[1:]))
                  for t in study.best_trials if t.user_attrs.get("val_auc") is not None)
    return Evidence(front=front, curves=curves, ratios=cost_ratios(complete, costs))


def decide(best: float, epoch: int, nominal: float, evidence: Evidence, costs: Sequence[str], min_auc: float,
           startup_trials: int = DEFAULT_STARTUP_TRIALS) -> str | None:
    """Why a trial with best validation AUC ``best`` after ``epoch`` epochs is hopeless, or None.

    Hopeless: its optimistic AUC (``best + margin(epoch)``) is below ``min_auc``, or below the
    validation AUC of a front member whose every cost is at most the trial's lower bound of that
    cost. Nothing is decided before ``startup_trials`` learning curves exist.
    """
    if len(evidence.curves) < startup_trials:
        return None
    m = margin(evidence.curves, epoch)
    optimistic = best + m
    head = f"epoch {epoch}: best validation AUC {best:.3f} + margin {m:.3f}"
    if optimistic < min_auc:
        return f"{head} stays below min_auc {min_auc:g}"
    if any(c not in evidence.ratios for c in costs):
        return None  # no bound on some cost yet
    bounds = [nominal * evidence.ratios[c] for c in costs]
    beaten = [f for f in evidence.front
              if f.val_auc > optimistic and all(fc <= b for fc, b in zip(f.costs, bounds))]
    if not beaten:
        return None
    f = max(beaten, key=lambda f: (f.val_auc, -f.number))
    at = ", ".join(f"{c} <= {b:.3g}" for c, b in zip(costs, bounds))
    return f"{head} cannot reach trial {f.number}'s validation AUC {f.val_auc:.3f} at {at}"


class EarlyStopper:
    """The per-search early-stopping state: the evidence read from storage, refreshed at most
    every :data:`REFRESH_SECONDS` (and at every trial's start), so an epoch costs no query.

    With one worker the stored trials do not change while a trial runs, so the decision depends
    on the stored trials alone (same seed, same trials). With several workers each reads the
    storage, and so the front other workers have stored meanwhile.
    """

    def __init__(self, costs: Sequence[str], min_auc: float, warmup: int = DEFAULT_WARMUP,
                 startup_trials: int = DEFAULT_STARTUP_TRIALS, clock: Callable[[], float] = time.monotonic):
        self.costs, self.min_auc = tuple(costs), min_auc
        self.warmup, self.startup_trials, self.clock = warmup, startup_trials, clock
        self.study: optuna.Study | None = None
        self._evidence: Evidence | None = None
        self._read_at = -math.inf

    def start_trial(self, study: optuna.Study) -> None:
        """A trial of ``study`` starts: the next check reads the storage afresh."""
        self.study, self._evidence = study, None

    def evidence(self) -> Evidence:
        if self.study is None:
            raise RuntimeError("EarlyStopper.start_trial(study) must come first")
        if self._evidence is None or self.clock() - self._read_at >= REFRESH_SECONDS:
            self._evidence = read_evidence(self.study, self.costs)
            self._read_at = self.clock()
        return self._evidence

    def check(self, curve: Sequence[float], nominal: float) -> str | None:
        """The reason to stop a trial whose validation AUC per epoch so far is ``curve``, or None."""
        epoch = len(curve)
        if epoch <= self.warmup:
            return None
        return decide(max(curve), epoch, nominal, self.evidence(), self.costs, self.min_auc, self.startup_trials)
