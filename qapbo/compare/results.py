"""Stored studies read back for comparison: every trial as an (AUC, cost) point, and what each study spent.

Compute is what a study really trained: the ``epochs`` and ``seconds`` of its COMPLETE trials and
of its PRUNED ones (search trials stopped early give no point but did spend the time). A refine
study starts from the fronts of the searches named in its ``qapbo_refine_of`` attribute, so its
compute includes theirs, read from the same storage. Comparison only reads: nothing here trains or
writes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from qapbo.compare.fronts import pareto_front
from qapbo.errors import QapboError
from qapbo.records import (
    ATTR_KIND,
    ATTR_MIN_AUC,
    ATTR_REFINE_OF,
    ATTR_REPLICATE,
    ATTR_RUN_TAIL,
    DEFAULT_MIN_AUC,
    FINISHED,
    MIN_AUC_CONSTRAINT,
    constraint_values,
    cost_of,
    is_feasible,
    min_auc_violation,
    with_late_costs,
)


@dataclass
class StudyResult:
    """One stored study: its points (COMPLETE trials), what else it trained, and what kind it is."""

    name: str
    kind: str  # one of qapbo.records.KINDS, or "other"
    trials: list[FrozenTrial]
    synthetic: bool
    data_note: str = ""  # what the data was, as its trials recorded it (e.g. "no detector simulation")
    min_auc: float = DEFAULT_MIN_AUC
    #: finished trials that cost training time but give no point: PRUNED ones (stopped early) and
    #: COMPLETE ones without the compared cost (e.g. stored before it existed)
    compute_only: list[FrozenTrial] = field(default_factory=list)
    #: a refine study's sources (``qapbo_refine_of``): their total compute comes before its own
    refine_of: list[str] = field(default_factory=list)
    source_epochs: int = 0
    source_seconds: float = 0.0
    source_flops: float | None = 0.0  # None: some source trial has no FLOPs recorded
    missing_sources: list[str] = field(default_factory=list)  # named in refine_of, not in the storage
    #: a replicated study file's replicate: the file's name and the index (0 keeps the file's own names)
    replicate_of: str = ""
    replicate: int = 0

    @property
    def method(self) -> str:
        """What this study is a replicate of: its name without the replicate's ``-rK`` (e.g. ``v-r2-search``
        -> ``v-search``); a study that is no replicate is its own method."""
        tag = f"{self.replicate_of}-r{self.replicate}"
        if self.replicate and self.name.startswith(tag):
            return self.replicate_of + self.name[len(tag):]
        return self.name

    def pairs_with(self, other: "StudyResult") -> bool:
        """Whether a table of pairs (coverage, equal compute) pairs this study with ``other``: replicates of
        one study file pair within their replicate only (across replicates a pair is one method against
        another draw of itself or of its rival; the Replicates table compares methods over all of them)."""
        return not (self.replicate_of and self.replicate_of == other.replicate_of and self.replicate != other.replicate)

    @property
    def front(self) -> list[FrozenTrial]:
        return pareto_front(self.trials)

    @property
    def infeasible(self) -> list[FrozenTrial]:
        """Trials that break a constraint (e.g. AUC below min_auc): drawn apart, never on a front."""
        return [t for t in self.trials if not is_feasible(t)]

    @property
    def pruned(self) -> list[FrozenTrial]:
        """Trials stopped early: their time counts, they have no point (an HGQ2 run's epochs after its
        last checkpoint count too, but nothing stopped early)."""
        return [t for t in self.compute_only if t.state == TrialState.PRUNED and not t.user_attrs.get(ATTR_RUN_TAIL)]

    @property
    def measured(self) -> list[FrozenTrial]:
        """Every COMPLETE trial, with or without the compared cost (each carries all the costs it has)."""
        return self.trials + [_with_min_auc(t, self.min_auc) for t in self.compute_only
                              if t.state == TrialState.COMPLETE]

    @property
    def trained(self) -> int:
        """Networks that trained: those with a point, those without the compared cost, those stopped early."""
        return len(self.trials) + self.missing_cost + len(self.pruned)

    @property
    def missing_cost(self) -> int:
        """COMPLETE trials without the compared cost: left off the fronts, never guessed."""
        return sum(t.state == TrialState.COMPLETE for t in self.compute_only)

    @property
    def epochs(self) -> int:
        """Epochs trained in total, a refine study's sources included."""
        return _spent(self)[-1].epochs

    @property
    def seconds(self) -> float:
        """Training seconds in total, a refine study's sources included (summed as its history is)."""
        return _spent(self)[-1].seconds

    @property
    def flops(self) -> float | None:
        """Training FLOPs in total (:mod:`qapbo.cost.flops`), a refine study's sources included; None when
        a trial that trained has none recorded (stored before qapbo counted them)."""
        return _spent(self)[-1].flops

    @property
    def cpu_seconds(self) -> float | None:
        """Process CPU-seconds of training in total (own trials only), None when a trial lacks them."""
        return _spent(self)[-1].cpu_seconds

    def by_replicate(self) -> dict[Any, list[FrozenTrial]]:
        """Trials grouped by (seed, cross-validation fold): the replicates behind mean and spread."""
        out: dict[Any, list[FrozenTrial]] = {}
        for t in self.trials:
            out.setdefault((t.params.get("seed"), t.params.get("fold")), []).append(t)
        return out


class Spent(NamedTuple):
    """A study's compute after one more finished trial, in trial-number order."""

    trial: FrozenTrial | None  # None for the start (a refine study's sources' total)
    epochs: int
    seconds: float
    flops: float | None  # None from the first trial without FLOPs on
    cpu_seconds: float | None
    point: bool  # False: the trial added compute but no point


def _spent(r: StudyResult) -> list[Spent]:
    """The compute after each finished trial, in trial-number order, starting from the sources' total:
    the one sum behind a study's totals and its history, so a budget equal to a total is met exactly.
    A trial that trained no epoch (a refine's re-measured member) adds no FLOPs even without a record."""
    out = [Spent(None, r.source_epochs, r.source_seconds, r.source_flops, 0.0, False)]
    tagged = [(t, True) for t in r.trials] + [(t, False) for t in r.compute_only]
    for t, point in sorted(tagged, key=lambda x: x[0].number):
        a, last = t.user_attrs, out[-1]
        epochs = int(a.get("epochs", 0))
        flops = a.get("flops", 0.0 if epochs == 0 else None)
        cpu = a.get("cpu_seconds", 0.0 if epochs == 0 else None)
        out.append(Spent(t, last.epochs + epochs, last.seconds + float(a.get("seconds", 0.0)),
                         None if last.flops is None or flops is None else last.flops + float(flops),
                         None if last.cpu_seconds is None or cpu is None else last.cpu_seconds + float(cpu), point))
    return out


def _source_compute(storage: optuna.storages.BaseStorage | str, study_attrs: dict[str, Any],
                    all_names: Sequence[str], seen: set[str]) -> tuple[int, float, float | None, list[str]]:
    """(epochs, seconds, FLOPs, names not in the storage) the sources of a refine study spent in total,
    their own sources included (a refine of a refine counts the whole chain; no study twice)."""
    epochs, seconds, flops, missing = 0, 0.0, 0.0, []
    for src in _refine_of(study_attrs):
        if src in seen:
            continue
        seen.add(src)  # shared across the whole chain: a study named twice counts once
        if src not in all_names:
            missing.append(src)
            continue
        s = optuna.load_study(study_name=src, storage=storage)
        own = StudyResult(src, s.user_attrs.get(ATTR_KIND, "other"), [], synthetic=False,
                          compute_only=s.get_trials(deepcopy=False, states=FINISHED))
        e, sec, fl, m = _source_compute(storage, s.user_attrs, all_names, seen)
        epochs, seconds, missing = epochs + own.epochs + e, seconds + own.seconds + sec, missing + m
        flops = None if flops is None or fl is None or own.flops is None else flops + own.flops + fl
    return epochs, seconds, flops, missing


def _refine_of(study_attrs: dict[str, Any]) -> list[str]:
    """The study names a refine study took its members from (a lone name is accepted too)."""
    if study_attrs.get(ATTR_KIND) != "refine":
        return []
    names = study_attrs.get(ATTR_REFINE_OF) or []
    return [names] if isinstance(names, str) else [str(n) for n in names]


def load_results(storage: optuna.storages.BaseStorage | str, names: Sequence[str] | None = None,
                 cost: str = "bops") -> list[StudyResult]:
    """Every (or the named) study in ``storage`` with AUC and costs as objectives, with its COMPLETE
    trials as (AUC, ``cost``) points: ``values`` is ``[auc, cost]`` whatever the study optimized,
    so fronts, hypervolume and coverage below work in any cost. Trials lacking the cost, and PRUNED
    trials, are kept apart in ``compute_only``: never guessed onto a front, but their training time
    counts. A refine study also gets the total compute of its sources (read from the same storage,
    whether compared or not)."""
    all_names = optuna.study.get_all_study_names(storage)
    if names:
        missing = [n for n in names if n not in all_names]
        if missing:
            raise QapboError(f"no study named {', '.join(missing)} in this storage; it has: "
                             f"{', '.join(all_names) or 'no studies'}")
    out = []
    for name in names or all_names:
        s = optuna.load_study(study_name=name, storage=storage)
        if len(s.directions) < 2:
            continue
        min_auc = float(s.user_attrs.get(ATTR_MIN_AUC, DEFAULT_MIN_AUC))
        done = [with_late_costs(t, s.user_attrs) for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values and len(t.values) == len(s.directions) and all(math.isfinite(v) for v in t.values)]
        if cost == "bops" and len(s.directions) == 2:  # trials without the attribute (not written by qapbo's
            # measure) keep their second objective, which every such study minimized as BOPs
            done = [t if cost_of(t, "bops") is not None else _with_attr(t, "bops", t.values[1]) for t in done]
        trials = [_with_min_auc(_as_point(t, cost), min_auc) for t in done if cost_of(t, cost) is not None]
        no_point = [t for t in done if cost_of(t, cost) is None]
        no_point += s.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        kind = s.user_attrs.get(ATTR_KIND, "other")
        rep_attr = s.user_attrs.get(ATTR_REPLICATE) or {}
        sources = _refine_of(s.user_attrs)
        src_epochs, src_seconds, src_flops, src_missing = _source_compute(storage, s.user_attrs, all_names, {name})
        common = dict(kind=kind, synthetic=any(t.user_attrs.get("synthetic", False) for t in trials),
                      data_note="; ".join(sorted({str(t.user_attrs["data_note"]) for t in trials
                                                  if "data_note" in t.user_attrs})),
                      min_auc=min_auc, refine_of=sources, source_epochs=src_epochs, source_seconds=src_seconds,
                      source_flops=src_flops,
                      missing_sources=src_missing, replicate_of=str(rep_attr.get("of", "")),
                      replicate=int(rep_attr.get("index", 0)))
        shares = sorted({t.params.get("randomized", 0.0) for t in trials})
        if len(shares) <= 1:
            out.append(StudyResult(name=name, trials=trials, compute_only=no_point, **common))
            continue
        for share in shares:  # a label-randomization sweep: one front per randomized share
            out.append(StudyResult(name=f"{name} [labels {share:.0%} random]",
                                   trials=[t for t in trials if t.params.get("randomized", 0.0) == share],
                                   compute_only=[t for t in no_point if t.params.get("randomized", 0.0) == share],
                                   **common))
    return out


def _with_attr(t: FrozenTrial, key: str, value: Any) -> FrozenTrial:
    t = copy.copy(t)
    t.user_attrs = {**t.user_attrs, key: value}
    return t


def _as_point(t: FrozenTrial, cost: str) -> FrozenTrial:
    """A copy of ``t`` whose values are (AUC, ``cost``)."""
    t = copy.copy(t)
    t.values = [t.values[0], cost_of(t, cost)]
    return t


def _with_min_auc(t: FrozenTrial, min_auc: float) -> FrozenTrial:
    """``t`` with a min-AUC constraint; trials stored before qapbo recorded one get the study's."""
    if MIN_AUC_CONSTRAINT in constraint_values(t):
        return t
    t = copy.copy(t)
    t.system_attrs = dict(t.system_attrs)
    t.set_constraint(MIN_AUC_CONSTRAINT, min_auc_violation(t.values[0], min_auc))
    return t
