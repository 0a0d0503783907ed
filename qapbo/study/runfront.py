"""Storing the final Pareto front of one training run as trials: what the HGQ2 contender and the learned-precision chain share.

A method that trains one run per seed and keeps a front of checkpoints during it (HGQ2,
:mod:`qapbo.study.hgq`; qapbo's learned-precision chain, :mod:`qapbo.study.learned`) stores, once a
seed's training is done, every checkpoint of that final front as one COMPLETE trial (a single
``add_trial`` each, so a killed run leaves no partial trial) and then one PRUNED trial, the tail
(:data:`qapbo.records.ATTR_RUN_TAIL`), holding the epochs trained after the last checkpoint; the
tail marks the seed done. The method says how a checkpoint is measured (its costs, metrics and
uploaded artifact); this module adds the same compute vocabulary to every trial:

``epochs``, ``seconds``, ``cpu_seconds`` and ``flops`` are what the seed trained since the previous
stored checkpoint, so summed in trial order they are the study's history (as for QAP levels); the
checkpoint's ``epoch`` parameter and ``run_epochs``/``run_seconds``/``run_cpu_seconds`` are the
totals at which it was saved. Runs of fixed betas train one after another: a run's compute starts
where the previous one ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Protocol, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from qapbo.cost.definitions import FLOPS_DEFINITION
from qapbo.data.split import JetData
from qapbo.progress import bar
from qapbo.records import ATTR_RUN_TAIL, constraint_attrs, violations

KEY = ("seed", "run", "epoch")  # a checkpoint's trial parameters
LINES_EVERY = 50  # epochs between two progress lines in ``lines`` mode


class RunSpent(Protocol):
    """What one run has trained (its last saved state)."""

    run: str
    epochs: int
    seconds: float
    cpu_seconds: float


class Checkpoint(Protocol):
    """A kept checkpoint: its run, the epochs and seconds of that run when it was saved, its beta and validation scores."""

    run: str
    seed: int
    epochs: int
    seconds: float
    cpu_seconds: float
    beta: float
    val_auc: float
    val_accuracy: float


@dataclass(frozen=True)
class RunFront:
    """Where one method's front is stored and how its trials are tagged."""

    study: optuna.Study
    kind: str  # the trials' ``kind`` (:data:`qapbo.records.KINDS`)
    tag: str  # how its progress lines start, e.g. "hgq"
    cost: str  # the study's second objective (a record key)
    distributions: dict[str, optuna.distributions.BaseDistribution]
    data: JetData
    epoch_flops: int  # training FLOPs of one epoch (:mod:`qapbo.cost.flops`' rule)
    min_auc: float


def stored(study: optuna.Study) -> tuple[dict[tuple, FrozenTrial], set[int]]:
    """(COMPLETE trials by :data:`KEY`, seeds whose tail is stored) of a front study."""
    trials = study.get_trials(deepcopy=False)
    done = {tuple(t.params[k] for k in KEY): t for t in trials if t.state == TrialState.COMPLETE}
    finished = {int(t.params["seed"]) for t in trials if t.state == TrialState.PRUNED and t.user_attrs.get(ATTR_RUN_TAIL)}
    return done, finished


def store_front(f: RunFront, seed: int, runs: Sequence[RunSpent], checkpoints: Sequence[Checkpoint],
                done: dict[tuple, FrozenTrial], measure: Callable[[Checkpoint], dict[str, Any]], last_epoch: int,
                say: Callable[[str], None]) -> None:
    """Store a finished seed: every checkpoint not in ``done`` (measured by ``measure``: metrics, costs,
    ``checkpoint`` artifact id), then the tail that marks the seed done."""
    offset, total = {}, (0, 0.0, 0.0)
    for r in runs:
        offset[r.run] = total
        total = (total[0] + r.epochs, total[1] + r.seconds, total[2] + r.cpu_seconds)
    order = {r.run: i for i, r in enumerate(runs)}
    prev = (0, 0.0, 0.0)
    for c in sorted(checkpoints, key=lambda c: (order[c.run], c.epochs)):
        o = offset[c.run]
        at = (o[0] + c.epochs, o[1] + c.seconds, o[2] + c.cpu_seconds)
        if (seed, c.run, c.epochs) not in done:
            rec = {**measure(c), **_compute(f, at, prev), "kind": f.kind, "beta": c.beta, "val_auc": c.val_auc,
                   "val_accuracy": c.val_accuracy}
            _add_checkpoint(f, {"seed": c.seed, "run": c.run, "epoch": c.epochs}, rec, say)
        prev = at
    tail = optuna.trial.create_trial(
        params={"seed": seed, "run": runs[-1].run, "epoch": last_epoch}, distributions=f.distributions,
        user_attrs={"kind": f.kind, ATTR_RUN_TAIL: True, **_compute(f, total, prev), "synthetic": f.data.synthetic,
                    "data_note": f.data.label},
        state=TrialState.PRUNED)
    f.study.add_trial(tail)
    say(f"{f.tag} seed {seed}: {len(checkpoints)} checkpoints on its front; {total[0]} epochs in {total[1]:.0f} s "
        f"({total[2]:.0f} CPU s) of training")


def _compute(f: RunFront, at: tuple, prev: tuple) -> dict[str, Any]:
    epochs = at[0] - prev[0]
    return {"epochs": epochs, "seconds": at[1] - prev[1], "cpu_seconds": at[2] - prev[2],
            "flops": epochs * f.epoch_flops, "flops_definition": FLOPS_DEFINITION,
            "run_epochs": at[0], "run_seconds": at[1], "run_cpu_seconds": at[2]}


def data_attrs(data: JetData) -> dict[str, Any]:
    """What every checkpoint's record says of its data (as :func:`qapbo.train.measure.measure` does)."""
    return {"data": data.describe(), "data_fingerprint": data.fingerprint, "synthetic": data.synthetic,
            "data_note": data.label}


def _add_checkpoint(f: RunFront, params: dict[str, Any], rec: dict[str, Any], say: Callable[[str], None]) -> None:
    trial = optuna.trial.create_trial(
        params=params, distributions=f.distributions, values=[rec["auc"], float(rec[f.cost])], user_attrs=rec,
        state=TrialState.COMPLETE, system_attrs=constraint_attrs(violations(rec["auc"], f.min_auc)))
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=max(rec["seconds"], 0.0))
    f.study.add_trial(trial)
    below = "  (below min_auc: infeasible, on no front)" if rec["auc"] < f.min_auc else ""
    exact = "" if rec.get("logic_same_class") == rec.get("logic_rows") else \
        f"  da4ml logic differs on {rec['logic_rows'] - rec['logic_same_class']} test rows"
    luts = f"  LUTs {rec['luts']:,.0f}" if "luts" in rec else ""
    say(f"{f.tag} seed {params['seed']} {params['run']} epoch {params['epoch']:4d} (beta {rec['beta']:.3g}): macro AUC "
        f"(test) {rec['auc']:.4f}{luts}  BOPs {rec['bops']:,.0f}  EBOPs {rec['ebops']:,.0f}  "
        f"{rec['sparsity']:.0%} zero weights  acc {rec['accuracy']:.4f}{below}{exact}")


class EpochProgress:
    """A bar over a run's epochs (``bars``) or a line every :data:`LINES_EVERY` epochs (``lines``)."""

    def __init__(self, mode: str, say: Callable[[str], None], epochs: int, tag: str):
        self.mode, self.say, self.epochs, self.tag, self.bar, self.run = mode, say, epochs, tag, None, None

    def __enter__(self) -> "EpochProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, e: Any) -> None:
        if self.mode == "bars":
            if self.run != e.run:
                if self.bar is not None:
                    self.bar.close()
                self.bar = bar(self.mode, total=e.epochs, initial=e.epoch - 1, desc=f"{self.tag} {e.run}",
                               unit="epoch", leave=False)
                self.run = e.run
            self.bar.update(1)
            self.bar.set_postfix(val_auc=f"{e.val_auc:.4f}", ebops=f"{e.ebops:,.0f}", front=e.front)
        elif e.epoch % LINES_EVERY == 0 or e.epoch == e.epochs:
            self.say(f"{self.tag} {e.run} epoch {e.epoch}/{e.epochs}: beta {e.beta:.3g}  validation AUC "
                     f"{e.val_auc:.4f}  EBOPs {e.ebops:,.0f}  {e.front} on the front  {e.seconds:.0f} s")
