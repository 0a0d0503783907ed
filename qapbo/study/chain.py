"""Chains of trained checkpoints stored level by level: what QAP and refine (and the method families
that train a sequence of checkpoints) share.

A chain is a sequence of levels, each a trained network; each level becomes one COMPLETE trial,
written in a single ``add_trial`` after its checkpoint is uploaded, so a run killed at any moment
leaves no partial trial, and a rerun continues from the last stored level. The runner's callers say
what a level is (its parameters, its record); this module stores it, checks that what is stored has
no gap, and reports it in one line. Its constraints (min AUC and the user's) are stored in Optuna's
list form by :func:`qapbo.records.constraint_attrs`, and the study's objectives are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Sequence

import optuna

from qapbo.errors import StudyFileError
from qapbo.progress import LevelBars
from qapbo.records import constraint_attrs, violations
from qapbo.study.storage import name_metrics
from qapbo.train.prune import collapsed_note


def check_contiguous(levels: Sequence[int], what: str) -> None:
    """Stored levels of one chain must be 0..k: anything else was not written by qapbo."""
    if list(levels) != list(range(len(levels))):
        raise StudyFileError(f"stored levels {sorted(levels)} of {what} have a gap; the study was written by "
                             "something else; use a new study name")


@dataclass
class LevelStore:
    """Stores levels of chains as COMPLETE trials of ``study`` and reports each in one line."""

    study: optuna.Study
    distributions: dict[str, optuna.distributions.BaseDistribution]
    kind: str  # the trial's ``kind`` attribute (:data:`qapbo.records.KINDS`)
    costs: tuple[str, ...]  # the objectives after AUC, as the study's directions order them
    min_auc: float
    bars: LevelBars
    say: Callable[[str], None]
    constraints: Sequence[Any] = field(default_factory=tuple)  # user constraints (``violation(record)``)

    def __post_init__(self) -> None:
        name_metrics(self.study, ("auc", *self.costs))  # Optuna's tools show "auc" and the cost, not values_0, 1

    def add(self, params: dict[str, Any], rec: dict[str, Any], checkpoint: str, tag: str,
            **attrs: Any) -> optuna.trial.FrozenTrial:
        """Store one trained level (``rec`` as :func:`qapbo.train.measure.measure` records it)."""
        values = [rec["auc"], *(float(rec[c]) for c in self.costs)]
        constraints = violations(rec["auc"], self.min_auc, {str(c): c.violation(rec) for c in self.constraints})
        trial = optuna.trial.create_trial(
            params=params, distributions=self.distributions, values=values,
            user_attrs={**rec, "checkpoint": checkpoint, "kind": self.kind, **attrs},
            system_attrs=constraint_attrs(constraints), state=optuna.trial.TrialState.COMPLETE)
        trial.datetime_start = trial.datetime_complete - timedelta(seconds=rec["seconds"])  # real duration
        self.study.add_trial(trial)
        costs = "  ".join(f"{c} {v:,.0f}" for c, v in zip(self.costs, values[1:]))
        below = "  (below min_auc: infeasible, on no front)" if rec["auc"] < self.min_auc else ""
        self.bars.level_done(f"{tag} level {params['level']:2d} ({rec['sparsity']:6.2%} pruned): "
                             f"macro AUC (test) {rec['auc']:.4f}  {costs}  acc {rec['accuracy']:.4f}  {rec['epochs']} epochs  "
                             f"{rec['seconds']:.1f} s{collapsed_note(rec['sparsity_per_layer'])}{below}", self.say)
        return trial
