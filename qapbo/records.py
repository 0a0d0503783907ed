"""What a stored qapbo study and trial carry: the one vocabulary every writer and reader of storage uses.

Optuna keeps its constraint key and its reader in one small module
(``optuna/study/_constrained_optimization.py``); this is qapbo's equivalent. A study is tagged with its
kind (:data:`KINDS`), the study file it was made from and, for a refine, the searches it refines; a
trial carries its metrics and costs as user attributes and a ``min_auc`` constraint. A network whose
AUC is below the study's ``min_auc`` is infeasible: a constant-output network at AUC 0.5 with a few
thousand BOPs is a valid Pareto point and a useless tagger, so it stays off every front.

Constraints are stored in Optuna's list form, the system attribute ``constraints`` (one value per
constraint, <= 0 feasible): Optuna's samplers and ``best_trials`` read it (through
``FrozenTrial.constraints``, which reads both of Optuna's forms) and so does optuna-dashboard, which
reads this form only. Their names go beside it (:data:`ATTR_CONSTRAINT_NAMES`). Trials stored before
wrote one ``constraints:NAME`` attribute per constraint (``trial.set_constraint``), which the dashboard
does not see; both forms at once would count every constraint twice in Optuna's samplers, so a
trial has one: :func:`store_constraints` and :func:`constraint_attrs` are the writers, and
:func:`constraint_values` reads either form by name.

The study file a study was created from is stored once, as the study system attribute
:data:`ATTR_STUDY_FILE` (its text and canonical settings), out of the user attributes that
``optuna studies`` prints on every row; studies stored before keep it in :data:`ATTR_FILE` and
:data:`ATTR_CONFIG`, which are still read.

Costs measured after a trial finished (``qapbo costs``) are kept on the study, since Optuna never
changes a finished trial: :func:`with_late_costs` is the one reader of them.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Mapping

from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    import optuna

DIRECTIONS = ("maximize", "minimize")  # AUC, then a cost: the axes of every front qapbo compares

#: Default minimum useful AUC: chance (0.5) plus a margin of 0.05, beyond the test-set noise of a
#: chance-level tagger on a few thousand jets.
DEFAULT_MIN_AUC = 0.55

MIN_AUC_CONSTRAINT = "min_auc"  # constraint name: min_auc - AUC, <= 0 is feasible

#: Optuna's trial system attribute of constraint values (the list form; optuna-dashboard reads only this one)
CONSTRAINTS_KEY = "constraints"
#: trial system attribute: the names of the values under CONSTRAINTS_KEY, in the same order
ATTR_CONSTRAINT_NAMES = "qapbo_constraint_names"
_KEYED = "constraints:"  # Optuna's per-name form (``set_constraint``), written by qapbo before

ATTR_MIN_AUC = "qapbo_min_auc"  # study user attribute

#: Study user attribute written on creation: the hash of the canonical settings the study compares on resume.
ATTR_HASH = "qapbo_config_hash"
#: Study system attribute written last on creation (so its presence marks a complete creation):
#: ``{"text": the study file's text, "config": its canonical settings (the sections that define results)}``.
ATTR_STUDY_FILE = "qapbo:study_file"
#: Study user attributes that held the canonical settings and the text before ATTR_STUDY_FILE (still read).
ATTR_CONFIG = "qapbo_config"
ATTR_FILE = "qapbo_study_file"
#: What a study (and each of its trials, as the ``kind`` user attribute) is.
KINDS = ("search", "qap", "refine", "hgq", "learned")
ATTR_KIND = "qapbo_kind"  # study user attribute, one of KINDS

#: trial user attribute of an hgq or learned study's PRUNED trial holding the epochs its seed trained
#: after its last stored checkpoint: compute without a point, not a trial stopped early
ATTR_RUN_TAIL = "run_tail"
#: study user attribute of a replicated study file's studies: {"of": the file's name, "index": k}
ATTR_REPLICATE = "qapbo_replicate"
ATTR_REFINE_OF = "qapbo_refine_of"  # refine study user attribute: names of the searches it refines
#: study user attribute prefix of costs measured after a trial finished (``qapbo costs``): Optuna
#: never changes a finished trial, so they are kept on the study, keyed by trial number
ATTR_LATE_COSTS = "qapbo_costs_trial_"
#: search trial user attribute: True on a trial stopped by Ctrl-C (SIGINT), stored FAIL by Optuna; its
#: parameters are queued to run again on resume, as Optuna's heartbeat does for a killed process's trial
ATTR_INTERRUPTED = "interrupted"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # states that spent compute (FAIL is left out)


def min_auc_violation(auc: float, min_auc: float) -> float:
    """Optuna's convention: <= 0 is feasible."""
    return float(min_auc) - float(auc)


def constraint_attrs(violations: Mapping[str, float]) -> dict[str, Any]:
    """The trial system attributes storing ``violations`` (name -> value, <= 0 feasible) in Optuna's list
    form with their names, e.g. for ``optuna.trial.create_trial(system_attrs=...)``. NaN is refused, as
    Optuna's ``set_constraint`` refuses it."""
    names, values = list(violations), [float(v) for v in violations.values()]
    bad = [n for n, v in zip(names, values) if math.isnan(v)]
    if bad:
        raise ValueError(f"constraint {bad[0]!r} is NaN; a constraint value must be a number")
    return {CONSTRAINTS_KEY: values, ATTR_CONSTRAINT_NAMES: [str(n) for n in names]}


def store_constraints(trial: optuna.Trial, violations: Mapping[str, float]) -> None:
    """Store ``violations`` on a running trial (in place of ``trial.set_constraint`` per name)."""
    for key, value in constraint_attrs(violations).items():
        trial.storage.set_trial_system_attr(trial._trial_id, key, value)


def violations(auc: float, min_auc: float, others: Mapping[str, float] | None = None) -> dict[str, float]:
    """The constraints of a trained network: the user's ``others`` (name -> value), then ``min_auc``."""
    return {**(others or {}), MIN_AUC_CONSTRAINT: min_auc_violation(auc, min_auc)}


def constraint_values(t: FrozenTrial) -> dict[str, float]:
    """The trial's constraints by name, whichever form stored them (unnamed list values keep their index)."""
    attrs = t.system_attrs
    out: dict[str, float] = {}
    listed = attrs.get(CONSTRAINTS_KEY)
    if listed is not None:
        names = list(attrs.get(ATTR_CONSTRAINT_NAMES) or [])
        names += [str(i) for i in range(len(names), len(listed))]
        out |= {n: float(v) for n, v in zip(names, listed)}
    out |= {k[len(_KEYED):]: float(v) for k, v in attrs.items() if k.startswith(_KEYED)}
    return out


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
