"""What a stored qapbo study and trial carry: the one vocabulary every writer and reader of storage uses.

Optuna keeps its constraint key and its reader in one small module
(``optuna/study/_constrained_optimization.py``); this is qapbo's equivalent. A study is tagged with its
kind (:data:`KINDS`), the study file it was made from and, for a refine, the searches it refines; a
trial carries its metrics and costs as user attributes and a ``min_auc`` constraint. A network whose
AUC is below the study's ``min_auc`` is infeasible: a constant-output network at AUC 0.5 with a few
thousand BOPs is a valid Pareto point and a useless tagger, so it stays off every front.

Costs measured after a trial finished (``qapbo costs``) are kept on the study, since Optuna never
changes a finished trial: :func:`with_late_costs` is the one reader of them.
"""

from __future__ import annotations

import copy
from typing import Any

from optuna.trial import FrozenTrial, TrialState

DIRECTIONS = ("maximize", "minimize")  # AUC, then a cost: the axes of every front qapbo compares

#: Default minimum useful AUC: chance (0.5) plus a margin of 0.05, beyond the test-set noise of a
#: chance-level tagger on a few thousand jets.
DEFAULT_MIN_AUC = 0.55

MIN_AUC_CONSTRAINT = "min_auc"  # Optuna constraint key: min_auc - AUC, <= 0 is feasible

ATTR_MIN_AUC = "qapbo_min_auc"  # study user attribute

#: Study user attributes written on creation: the canonical study file (as parsed), its text, and its hash.
ATTR_CONFIG = "qapbo_config"
ATTR_FILE = "qapbo_study_file"
ATTR_HASH = "qapbo_config_hash"
#: What a study (and each of its trials, as the ``kind`` user attribute) is.
KINDS = ("search", "qap", "refine", "hgq")
ATTR_KIND = "qapbo_kind"  # study user attribute, one of KINDS

#: trial user attribute of an hgq study's PRUNED trial holding the epochs its seed trained after its
#: last stored checkpoint: compute without a point, not a trial stopped early
ATTR_RUN_TAIL = "run_tail"
ATTR_REFINE_OF = "qapbo_refine_of"  # refine study user attribute: names of the searches it refines
#: study user attribute prefix of costs measured after a trial finished (``qapbo costs``): Optuna
#: never changes a finished trial, so they are kept on the study, keyed by trial number
ATTR_LATE_COSTS = "qapbo_costs_trial_"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # states that spent compute (FAIL is left out)


def min_auc_violation(auc: float, min_auc: float) -> float:
    """Optuna's convention: <= 0 is feasible."""
    return float(min_auc) - float(auc)


def is_feasible(t: FrozenTrial) -> bool:
    """Every stored constraint (min AUC and the user's own) satisfied, as Optuna judges it."""
    return all(v <= 0.0 for v in t.constraints.values())


def cost_of(t: FrozenTrial, cost: str) -> float | None:
    """The trial's ``cost`` (a :mod:`qapbo.cost.measure` name) as recorded, or None."""
    v = t.user_attrs.get(cost)
    return None if v is None else float(v)


def with_late_costs(t: FrozenTrial, study_attrs: dict[str, Any]) -> FrozenTrial:
    """``t`` with the costs ``qapbo costs`` measured after it finished (its own records win)."""
    late = study_attrs.get(f"{ATTR_LATE_COSTS}{t.number}")
    if not late:
        return t
    t = copy.copy(t)
    t.user_attrs = {**late, **t.user_attrs}
    return t
