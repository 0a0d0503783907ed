"""The data a stored trial was trained on, which its export checks against."""

from __future__ import annotations

import optuna

from qapbo.data.split import JetData, load_data
from qapbo.errors import ExportError
from qapbo.study.file import StudyFile


def trial_data(study: StudyFile, trial: optuna.trial.FrozenTrial) -> JetData:
    """The data variant the trial was trained on (its fold and label randomization), checked by fingerprint."""
    fold, randomized = trial.params.get("fold", 0), trial.params.get("randomized", 0.0)
    cfg = next(c for k, r, c in study.data_variants() if k == fold and r == randomized)
    data = load_data(cfg)
    if data.fingerprint != trial.user_attrs.get("data_fingerprint"):
        raise ExportError(f"the data of {study.path} is not the data trial {trial.number} was trained on "
                          "(fingerprints differ); export with the same data (and --synthetic/--rows) as the run")
    return data
