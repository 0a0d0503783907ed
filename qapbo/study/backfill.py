"""Costs for trials stored before qapbo measured them, from their checkpoints (``qapbo costs``).

Optuna never changes a finished trial (its storage refuses), so the costs measured later go on
the study, one user attribute per trial (:data:`qapbo.compare.fronts.ATTR_LATE_COSTS` + number), and
:func:`qapbo.compare.fronts.load_results` merges them in; a trial's own records always win. Rerunning
measures only what is still missing.
"""

from __future__ import annotations

from typing import Callable

import optuna
from optuna.trial import TrialState

from qapbo.cost.definitions import COSTS, HW_COSTS
from qapbo.cost.measure import measure_costs, require_hw
from qapbo.records import ATTR_LATE_COSTS, with_late_costs
from qapbo.study.file import StudyFile
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint, open_storage, storage_url


def backfill_costs(study: StudyFile, storage: str | None = None,
                   say: Callable[[str], None] = lambda m: None) -> dict[str, int]:
    """Measure the missing costs of every COMPLETE trial of ``study``'s stored studies; returns
    {study name: trials measured}."""
    require_hw(HW_COSTS, "qapbo costs: ")
    url = storage_url(study, storage)
    rdb = open_storage(url)
    store = artifact_store(artifact_dir(study, url), create=False)
    wanted = COSTS  # require_hw has made sure every cost can be measured
    done: dict[str, int] = {}
    for name in optuna.study.get_all_study_names(rdb):
        if name != study.name and not name.startswith(f"{study.name}-"):
            continue
        s = optuna.load_study(study_name=name, storage=rdb)
        n = 0
        for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            have = with_late_costs(t, s.user_attrs).user_attrs
            if all(have.get(c) is not None for c in wanted) or "checkpoint" not in have:
                continue
            model, _ = load_checkpoint(store, have["checkpoint"])
            rec = measure_costs(model)
            s.set_user_attr(f"{ATTR_LATE_COSTS}{t.number}", {k: v for k, v in rec.items() if k not in t.user_attrs})
            n += 1
            say(f"{name} trial {t.number}: " + ", ".join(f"{c} {rec[c]:,.0f}" for c in wanted if rec.get(c) is not None))
        done[name] = n
    return done
