"""The keep-or-drop rule of a Pareto front of checkpoints kept during one training run.

HGQ2's ``ParetoFront`` callback (``hgq.utils.sugar``) keeps an epoch's state when no kept one is at
least as good in every metric; the kept ones the new state beats in every metric are dropped. Both
the HGQ2 contender (:mod:`qapbo.train.hgq`) and qapbo's own learned-precision chain
(:mod:`qapbo.train.learned`) keep their fronts by this one rule, on (validation AUC, EBOPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

#: Metrics a run's front keeps non-dominated, and in which direction (1: larger is better).
FRONT_METRICS = ("val_auc", "ebops")
FRONT_SIDES = (1, -1)


def front_after(front: Sequence[dict[str, Any]], new: dict[str, Any], metrics: Sequence[str] = FRONT_METRICS,
                sides: Sequence[int] = FRONT_SIDES) -> list[dict[str, Any]] | None:
    """The kept records ``front`` would leave if ``new`` joined it, or None when ``new`` is weakly
    dominated by a kept one (and so is not kept): HGQ2's ``ParetoFront.on_epoch_end`` rule."""
    kept = []
    for old in front:
        if all(s * new[m] <= s * old[m] for m, s in zip(metrics, sides)):
            return None
        if not all(s * new[m] > s * old[m] for m, s in zip(metrics, sides)):
            kept.append(old)
    return kept


@dataclass(frozen=True)
class RunEpoch:
    """What a one-run method's ``progress`` callback receives after every epoch (HGQ2's and the learned chain's)."""

    run: str
    epoch: int  # 1-based
    epochs: int
    loss: float
    val_auc: float
    ebops: float
    beta: float
    seconds: float
    front: int  # checkpoints on the front now
