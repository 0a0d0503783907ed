"""Pareto fronts of stored studies and the numbers that compare them.

Fronts come from Optuna's own Pareto code (``Study.best_trials``, which also honours stored
constraints); the front of a union of studies is taken the same way, on an in-memory study
holding their trials. The 2-D hypervolume is written here: Optuna 5.0 has no public one (its
private one raises on points beyond the reference), and in 2-D it is a short sorted sweep.
Hypervolume lives in (AUC, log10 BOPs): BOPs span orders of magnitude.

A network whose AUC is below the study's ``min_auc`` is infeasible (an Optuna constraint named
``min_auc``): a constant-output network at AUC 0.5 with a few thousand BOPs is a valid Pareto
point and a useless tagger, so it stays off every front, hypervolume and "on the front" message.

Compute is what a study really trained: the ``epochs`` and ``seconds`` of its COMPLETE trials and
of its PRUNED ones (search trials stopped early give no point but did spend the time). A refine
study starts from the fronts of the searches named in its ``qapbo_refine_of`` attribute, so its
compute includes theirs. Studies are compared at equal compute: the hypervolume each had reached
when it had spent what the cheaper one spent in total.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from qapbo.errors import QapboError

DIRECTIONS = ("maximize", "minimize")
#: Default minimum useful AUC: chance (0.5) plus a margin of 0.05, beyond the test-set noise of a
#: chance-level tagger on a few thousand jets.
DEFAULT_MIN_AUC = 0.55
MIN_AUC_CONSTRAINT = "min_auc"  # Optuna constraint key: min_auc - AUC, <= 0 is feasible
ATTR_MIN_AUC = "qapbo_min_auc"  # study user attribute
ATTR_KIND = "qapbo_kind"  # study user attribute: "search", "qap" or "refine"
ATTR_REFINE_OF = "qapbo_refine_of"  # refine study user attribute: names of the searches it refines


def min_auc_violation(auc: float, min_auc: float) -> float:
    """Optuna's convention: <= 0 is feasible."""
    return float(min_auc) - float(auc)


def is_feasible(t: FrozenTrial) -> bool:
    """Every stored constraint (min AUC and the user's own) satisfied, as Optuna judges it."""
    return all(v <= 0.0 for v in t.constraints.values())


#: study user attribute prefix of costs measured after a trial finished (``qapbo costs``): Optuna
#: never changes a finished trial, so they are kept on the study, keyed by trial number
ATTR_LATE_COSTS = "qapbo_costs_trial_"


def cost_of(t: FrozenTrial, cost: str) -> float | None:
    """The trial's ``cost`` (a :mod:`qapbo.cost.measure` name) as recorded, or None."""
    v = t.user_attrs.get(cost)
    return None if v is None else float(v)


class NoResultsError(QapboError):
    """The storage holds no finished trials to compare."""


@dataclass
class StudyResult:
    """One stored study: its points (COMPLETE trials), what else it trained, and what kind it is."""

    name: str
    kind: str  # "search", "qap", "refine" or "other"
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
    missing_sources: list[str] = field(default_factory=list)  # named in refine_of, not in the storage

    @property
    def front(self) -> list[FrozenTrial]:
        return pareto_front(self.trials)

    @property
    def infeasible(self) -> list[FrozenTrial]:
        """Trials that break a constraint (e.g. AUC below min_auc): drawn apart, never on a front."""
        return [t for t in self.trials if not is_feasible(t)]

    @property
    def pruned(self) -> list[FrozenTrial]:
        """Trials stopped early: their time counts, they have no point."""
        return [t for t in self.compute_only if t.state == TrialState.PRUNED]

    @property
    def missing_cost(self) -> int:
        """COMPLETE trials without the compared cost: left off the fronts, never guessed."""
        return sum(t.state == TrialState.COMPLETE for t in self.compute_only)

    @property
    def epochs(self) -> int:
        """Epochs trained in total, a refine study's sources included."""
        return _spent(self)[-1][1]

    @property
    def seconds(self) -> float:
        """Training seconds in total, a refine study's sources included (summed as its history is)."""
        return _spent(self)[-1][2]

    def by_replicate(self) -> dict[Any, list[FrozenTrial]]:
        """Trials grouped by (seed, cross-validation fold): the replicates behind mean and spread."""
        out: dict[Any, list[FrozenTrial]] = {}
        for t in self.trials:
            out.setdefault((t.params.get("seed"), t.params.get("fold")), []).append(t)
        return out


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # states that spent compute (FAIL is left out)


def _spent(r: StudyResult) -> list[tuple[FrozenTrial | None, int, float, bool]]:
    """(trial, cumulative epochs, cumulative seconds, gives a point) after each finished trial, in
    trial-number order, starting from ``(None, source epochs, source seconds, False)``: the one sum
    behind a study's totals and its history, so a budget equal to a total is met exactly."""
    out: list[tuple[FrozenTrial | None, int, float, bool]] = [(None, r.source_epochs, r.source_seconds, False)]
    tagged = [(t, True) for t in r.trials] + [(t, False) for t in r.compute_only]
    for t, point in sorted(tagged, key=lambda x: x[0].number):
        out.append((t, out[-1][1] + int(t.user_attrs.get("epochs", 0)),
                    out[-1][2] + float(t.user_attrs.get("seconds", 0.0)), point))
    return out


def _source_compute(storage: optuna.storages.BaseStorage | str, study_attrs: dict[str, Any],
                    all_names: Sequence[str], seen: set[str]) -> tuple[int, float, list[str]]:
    """(epochs, seconds, names not in the storage) the sources of a refine study spent in total,
    their own sources included (a refine of a refine counts the whole chain; no study twice)."""
    epochs, seconds, missing = 0, 0.0, []
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
        e, sec, m = _source_compute(storage, s.user_attrs, all_names, seen)
        epochs, seconds, missing = epochs + own.epochs + e, seconds + own.seconds + sec, missing + m
    return epochs, seconds, missing


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
        done = [_with_late_costs(t, s.user_attrs) for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values and len(t.values) == len(s.directions) and all(math.isfinite(v) for v in t.values)]
        if cost == "bops" and len(s.directions) == 2:  # trials without the attribute (not written by qapbo's
            # measure) keep their second objective, which every such study minimized as BOPs
            done = [t if cost_of(t, "bops") is not None else _with_attr(t, "bops", t.values[1]) for t in done]
        trials = [_with_min_auc(_as_point(t, cost), min_auc) for t in done if cost_of(t, cost) is not None]
        no_point = [t for t in done if cost_of(t, cost) is None]
        no_point += s.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        kind = s.user_attrs.get(ATTR_KIND, "other")
        sources = _refine_of(s.user_attrs)
        src_epochs, src_seconds, src_missing = _source_compute(storage, s.user_attrs, all_names, {name})
        common = dict(kind=kind, synthetic=any(t.user_attrs.get("synthetic", False) for t in trials),
                      data_note="; ".join(sorted({str(t.user_attrs["data_note"]) for t in trials
                                                  if "data_note" in t.user_attrs})),
                      min_auc=min_auc, refine_of=sources, source_epochs=src_epochs, source_seconds=src_seconds,
                      missing_sources=src_missing)
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


def _with_late_costs(t: FrozenTrial, study_attrs: dict[str, Any]) -> FrozenTrial:
    """``t`` with the costs ``qapbo costs`` measured after it finished (its own records win)."""
    late = study_attrs.get(f"{ATTR_LATE_COSTS}{t.number}")
    if not late:
        return t
    t = copy.copy(t)
    t.user_attrs = {**late, **t.user_attrs}
    return t


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
    if MIN_AUC_CONSTRAINT in t.constraints:
        return t
    t = copy.copy(t)
    t.system_attrs = dict(t.system_attrs)
    t.set_constraint(MIN_AUC_CONSTRAINT, min_auc_violation(t.values[0], min_auc))
    return t


def pareto_front(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Non-dominated feasible trials (AUC up, BOPs down), sorted by BOPs, via Optuna's Pareto code."""
    trials = list(trials)
    if not trials:
        return []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" lines
    try:
        s = optuna.create_study(directions=list(DIRECTIONS))
        s.add_trials(trials)
        return sorted(s.best_trials, key=lambda t: (t.values[1], -t.values[0]))
    finally:
        optuna.logging.set_verbosity(verbosity)


def hypervolume(points: Iterable[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``(auc, bops)`` points, in (AUC, log10 BOPs), up to ``ref = (auc, bops)``.

    A point with AUC <= ref AUC or BOPs >= ref BOPs adds nothing (it is clipped, not an error).
    """
    auc_ref, lb_ref = ref[0], math.log10(ref[1])
    pts = sorted((math.log10(b), a) for a, b in points if a > auc_ref and b > 0 and math.log10(b) < lb_ref)
    area, best = 0.0, auc_ref
    for i, (lb, a) in enumerate(pts):
        best = max(best, a)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else lb_ref
        area += (nxt - lb) * (best - auc_ref)
    return area


def covers(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Weak Pareto dominance: ``a`` is at least as good as ``b`` in both AUC and BOPs."""
    return a[0] >= b[0] and a[1] <= b[1]


def coverage(front_a: Sequence[tuple[float, float]], front_b: Sequence[tuple[float, float]]) -> float:
    """C(A, B): the share of B's points covered by some point of A (Zitzler's set coverage)."""
    if not front_b:
        return float("nan")
    return sum(any(covers(a, b) for a in front_a) for b in front_b) / len(front_b)


def min_bops_at_auc(points: Iterable[tuple[float, float]], target: float) -> float | None:
    """The smallest BOPs among points with AUC >= ``target`` (None if none reaches it)."""
    ok = [b for a, b in points if a >= target]
    return min(ok) if ok else None


def best_auc_within(points: Iterable[tuple[float, float]], budget: float) -> float | None:
    """The best AUC among points with BOPs <= ``budget`` (None if none fits)."""
    ok = [a for a, b in points if b <= budget]
    return max(ok) if ok else None


def values(trials: Iterable[FrozenTrial]) -> list[tuple[float, float]]:
    return [(t.values[0], t.values[1]) for t in trials]


class HistoryStep(NamedTuple):
    """A study after one more finished trial (in trial-number order: QAP level by level)."""

    number: int  # trial number; -1 for the start (a refine study starts where its searches ended)
    epochs: int  # cumulative, a refine study's sources included
    seconds: float  # cumulative training seconds, likewise
    hypervolume: float  # of the front of the trials finished so far
    point: bool  # False: the trial added time but no point (stopped early, or without the compared cost)


def hypervolume_history(r: StudyResult, ref: tuple[float, float]) -> list[HistoryStep]:
    """The hypervolume ``r`` had reached against the compute it had spent, one step per finished
    trial, after a first step at its starting compute (0, or a refine study's sources' total)."""
    out, pts, hv = [], [], 0.0
    for t, epochs, seconds, point in _spent(r):
        if point and is_feasible(t):
            pts.append((t.values[0], t.values[1]))
            hv = hypervolume(pts, ref)
        out.append(HistoryStep(-1 if t is None else t.number, epochs, seconds, hv, point))
    return out


def hypervolume_at(history: Sequence[HistoryStep], seconds: float | None = None,
                   epochs: int | None = None) -> float:
    """The hypervolume of the trials finished within ``seconds`` (and/or ``epochs``) of compute."""
    hv = 0.0
    for h in history:  # cumulative compute only grows
        if (seconds is not None and h.seconds > seconds) or (epochs is not None and h.epochs > epochs):
            break
        hv = h.hypervolume
    return hv


def equal_compute(results: Sequence[StudyResult], ref: tuple[float, float]) -> list[dict[str, Any]]:
    """For every pair of studies, the hypervolume of each at the training seconds (and, apart, the
    epochs) the cheaper one spent in total: headline numbers that do not favour the study that
    simply trained longer."""
    hist = {id(r): hypervolume_history(r, ref) for r in results}
    out = []
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            ha, hb = hist[id(a)], hist[id(b)]
            sec = min(ha[-1].seconds, hb[-1].seconds)
            ep = min(ha[-1].epochs, hb[-1].epochs)
            out.append({"a": a.name, "b": b.name,
                        "cheaper": a.name if ha[-1].seconds <= hb[-1].seconds else b.name,
                        "budget_seconds": sec, "hv_a_at_seconds": hypervolume_at(ha, seconds=sec),
                        "hv_b_at_seconds": hypervolume_at(hb, seconds=sec),
                        "cheaper_in_epochs": a.name if ha[-1].epochs <= hb[-1].epochs else b.name,
                        "budget_epochs": ep, "hv_a_at_epochs": hypervolume_at(ha, epochs=ep),
                        "hv_b_at_epochs": hypervolume_at(hb, epochs=ep)})
    return out


@dataclass
class Comparison:
    """The numbers of one comparison, with the single reference point they share."""

    results: list[StudyResult]
    ref: tuple[float, float]
    auc_targets: list[float]
    bops_budgets: list[float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    equal_compute: list[dict[str, Any]] = field(default_factory=list)  # see :func:`equal_compute`
    cost: str = "bops"  # the cost on the fronts' second axis (a qapbo.cost.measure name)
    agreement: dict[str, Any] | None = None  # cost_agreement() over the stored trials, when asked

    @property
    def label(self) -> str:
        from qapbo.cost.measure import LABELS

        return LABELS[self.cost].split(" (")[0]

    @property
    def synthetic(self) -> bool:
        return any(r.synthetic for r in self.results)

    @property
    def data_notes(self) -> list[str]:
        """What each study's data was (synthetic, physics-generated without detector, a release)."""
        return sorted({r.data_note for r in self.results if r.data_note})

    def to_dict(self) -> dict[str, Any]:
        from qapbo.cost.measure import DEFINITIONS

        return {"cost": self.cost, "cost_definition": DEFINITIONS[self.cost],
                "reference_point": {"auc": self.ref[0], self.cost: self.ref[1]},
                "hypervolume_space": f"(AUC, log10 {self.label})", "synthetic_data": self.synthetic,
                "missing_cost": {r.name: r.missing_cost for r in self.results if r.missing_cost},
                "cost_agreement": self.agreement,
                "data": self.data_notes,
                "auc_targets": self.auc_targets, "bops_budgets": self.bops_budgets,
                "studies": self.rows, "coverage": self.coverage, "equal_compute": self.equal_compute}

    def to_markdown(self) -> str:
        lines = []
        if self.synthetic:
            lines.append("**Data: SYNTHETIC jets (synthetic-jets), not real LHC data.**\n")
        elif self.data_notes:
            lines.append(f"**Data: {' | '.join(self.data_notes)}.**\n")
        lb = self.label
        lines.append(f"Hypervolume in (AUC, log10 {lb}) with reference point AUC = {self.ref[0]:g}, "
                     f"{lb} = {self.ref[1]:.4g} (the same for every study below). Networks below a study's "
                     "min_auc are infeasible: counted apart, on no front, in no hypervolume.\n")
        for r in self.results:
            if r.missing_cost:
                lines.append(f"{r.name}: {r.missing_cost} trial(s) have no {self.cost} and are left out; "
                             "`qapbo costs STUDY_FILE --storage URL` measures it from their checkpoints.\n")
            if r.missing_sources:
                lines.append(f"{r.name}: refines {', '.join(r.missing_sources)}, which this storage does not "
                             "hold; its compute counts only the searches that are here.\n")
        lines.append("Compute (epochs, train s) counts every trial that trained, those stopped early included "
                     "(they are on no front); a refined study's also counts the searches it started from "
                     "(own share in brackets): the pipeline search -> refine spent both.\n")
        head = ["study", "kind", "trials", "stopped early", "front", "below min AUC", "hypervolume"]
        head += [f"min {lb} @ AUC>={t:g}" for t in self.auc_targets]
        head += [f"best AUC @ {lb}<={b:.0e}" for b in self.bops_budgets]
        head += ["epochs", "train s"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in self.rows:
            hv = f"{r['hypervolume']:.4f}"
            if r.get("hypervolume_seeds", 1) > 1:
                hv = (f"{r['hypervolume_mean']:.4f} ± {r['hypervolume_std']:.4f} "
                      f"({r['hypervolume_seeds']} seeds/folds)")
            cells = [r["study"], r["kind"], str(r["trials"]), str(r["stopped_early"]), str(r["front_size"]),
                     str(r["infeasible"]), hv]
            cells += [_fmt_bops(r["min_bops_at_auc"][str(t)]) for t in self.auc_targets]
            cells += [_fmt_auc(r["best_auc_within_bops"][str(b)]) for b in self.bops_budgets]
            cells += [f"{r['epochs']:,}", f"{r['seconds']:,.0f}"]
            if r["refine_of"]:
                cells[-2:] = [f"{r['epochs']:,} ({r['own_epochs']:,})",
                              f"{r['seconds']:,.0f} ({r['own_seconds']:,.0f})"]
            lines.append("| " + " | ".join(cells) + " |")
        if self.coverage:
            lines.append("\nCoverage C(A, B): share of B's front covered (weakly dominated) by A's front.\n")
            lines.append("| A | B | C(A, B) | C(B, A) |")
            lines.append("|---|---|---|---|")
            for c in self.coverage:
                lines.append(f"| {c['a']} | {c['b']} | {c['c_ab']:.2f} | {c['c_ba']:.2f} |")
        if self.equal_compute:
            lines.append(equal_compute_markdown(self.equal_compute))
        if self.agreement:
            lines.append(agreement_markdown(self.agreement))
        return "\n".join(lines)


def _fmt_bops(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _fmt_seconds(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:.3g}"  # short test runs take well under 10 s


def _fmt_auc(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def reference_point(results: Sequence[StudyResult]) -> tuple[float, float]:
    """AUC 0.5 (a random tagger) and the power of ten above the largest BOPs of the comparison."""
    top = max(t.values[1] for r in results for t in r.trials)
    return 0.5, 10.0 ** math.ceil(math.log10(top) + 1e-9)


def default_targets(results: Sequence[StudyResult]) -> tuple[list[float], list[float]]:
    """AUC targets just below the best AUC of the union front; BOPs budgets at powers of ten."""
    union = pareto_front(t for r in results for t in r.trials)
    if not union:  # every network below min_auc: nothing to target
        return [], []
    best = max(t.values[0] for t in union)
    targets = sorted({round(best - d, 3) for d in (0.02, 0.01, 0.005)})
    lo = min(t.values[1] for t in union)
    hi = max(t.values[1] for t in union)
    budgets = [10.0 ** k for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)] or [hi]
    return targets, budgets


def compare(results: Sequence[StudyResult], ref: tuple[float, float] | None = None,
            auc_targets: Sequence[float] | None = None, bops_budgets: Sequence[float] | None = None,
            cost: str = "bops") -> Comparison:
    """All comparison numbers for ``results`` (studies without finished trials are refused)."""
    results = [r for r in results if r.trials]
    if not results:
        if cost != "bops":
            raise NoResultsError(f"no finished trial in this storage has {cost}: `qapbo costs STUDY_FILE --storage "
                                 "URL` measures it from the stored checkpoints (needs pip install 'qapbo[hw]')")
        raise NoResultsError("no finished trials to compare in this storage: run `qapbo search`, `qapbo qap` "
                             "or `qapbo run` first, or check --storage and --studies")
    ref = ref or reference_point(results)
    t_def, b_def = default_targets(results)
    targets = list(auc_targets) if auc_targets else t_def
    budgets = list(bops_budgets) if bops_budgets else b_def
    cmp = Comparison(results=list(results), ref=ref, auc_targets=targets, bops_budgets=budgets, cost=cost)
    for r in results:
        front = values(r.front)
        row: dict[str, Any] = {
            "study": r.name, "kind": r.kind, "trials": len(r.trials), "front_size": len(front),
            "infeasible": len(r.infeasible),
            "hypervolume": hypervolume(front, ref),
            "min_bops_at_auc": {str(t): min_bops_at_auc(front, t) for t in targets},
            "best_auc_within_bops": {str(b): best_auc_within(front, b) for b in budgets},
            "stopped_early": len(r.pruned),
            "epochs": r.epochs, "seconds": r.seconds,  # totals: stopped-early trials and refined sources in
            "own_epochs": r.epochs - r.source_epochs, "own_seconds": r.seconds - r.source_seconds,
            "refine_of": r.refine_of, "missing_sources": r.missing_sources,
            "front": [{"number": t.number, "auc": t.values[0], cost: t.values[1], "params": t.params}
                      for t in r.front],
        }
        reps = r.by_replicate()
        if len(reps) > 1:
            hvs = [hypervolume(values(pareto_front(ts)), ref) for ts in reps.values()]
            row.update(hypervolume_seeds=len(hvs), hypervolume_mean=statistics.fmean(hvs),
                       hypervolume_std=statistics.stdev(hvs))
        cmp.rows.append(row)
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            fa, fb = values(a.front), values(b.front)
            cmp.coverage.append({"a": a.name, "b": b.name, "c_ab": coverage(fa, fb), "c_ba": coverage(fb, fa)})
    cmp.equal_compute = equal_compute(results, ref)
    return cmp


def cost_agreement(results: Sequence[StudyResult], costs: Sequence[str] | None = None) -> dict[str, Any]:
    """Do the costs agree? Over every stored trial: Spearman's rank correlation of each pair of costs,
    and, per study, the trials on the AUC front under one cost but not under another.

    ``results`` may be loaded in any cost: each trial's own records give every cost it has.
    """
    from scipy.stats import spearmanr

    from qapbo.cost.measure import COSTS

    costs = list(costs or COSTS)
    trials = [t for r in results for t in r.trials]
    pairs = []
    for i, a in enumerate(costs):
        for b in costs[i + 1:]:
            both = [(cost_of(t, a), cost_of(t, b)) for t in trials if cost_of(t, a) is not None
                    and cost_of(t, b) is not None]
            rho = float(spearmanr([x for x, _ in both], [y for _, y in both]).statistic) if len(both) > 2 else None
            pairs.append({"a": a, "b": b, "trials": len(both), "spearman": rho})
    fronts = []
    for r in results:
        on = {}
        for c in costs:
            have = [_as_point(t, c) for t in r.trials if cost_of(t, c) is not None]
            if len(have) == len(r.trials) and have:
                on[c] = {t.number for t in pareto_front(have)}
        for i, a in enumerate(costs):
            for b in costs[i + 1:]:
                if a in on and b in on:
                    fronts.append({"study": r.name, "a": a, "b": b, "only_a": sorted(on[a] - on[b]),
                                   "only_b": sorted(on[b] - on[a]), "both": len(on[a] & on[b])})
    return {"correlations": pairs, "fronts": fronts}


def equal_compute_markdown(pairs: Sequence[dict[str, Any]]) -> str:
    """The equal-compute table and one plain sentence per pair: the comparison's headline numbers."""
    lines = [("\nEqual compute: each pair at the training time (and, apart, the epochs) the cheaper study spent "
              "in total; hypervolume of the front of the trials each had finished by then (a refined study has "
              "nothing before its searches' total).\n"),
             "| A | B | at train s | HV A | HV B | at epochs | HV A | HV B |", "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['a']} | {p['b']} | {_fmt_seconds(p['budget_seconds'])} | {p['hv_a_at_seconds']:.4f} | "
                     f"{p['hv_b_at_seconds']:.4f} | {p['budget_epochs']:,} | {p['hv_a_at_epochs']:.4f} | "
                     f"{p['hv_b_at_epochs']:.4f} |")
    lines.append("")
    for p in pairs:
        cheap = p["cheaper"]
        other, hv_other, hv_cheap = ((p["b"], p["hv_b_at_seconds"], p["hv_a_at_seconds"]) if cheap == p["a"]
                                     else (p["a"], p["hv_a_at_seconds"], p["hv_b_at_seconds"]))
        lines.append(f"- At the {_fmt_seconds(p['budget_seconds'])} s {cheap} spent, {other} had reached hypervolume "
                     f"{hv_other:.4f} against {cheap}'s {hv_cheap:.4f}.")
    return "\n".join(lines)


def agreement_markdown(agreement: dict[str, Any]) -> str:
    lines = ["\nCost agreement over all stored trials: Spearman rank correlation of each pair of costs.\n",
             "| cost A | cost B | trials | Spearman |", "|---|---|---|---|"]
    for p in agreement["correlations"]:
        rho = "—" if p["spearman"] is None or math.isnan(p["spearman"]) else f"{p['spearman']:.3f}"
        lines.append(f"| {p['a']} | {p['b']} | {p['trials']} | {rho} |")
    if agreement["fronts"]:
        lines.append("\nAUC fronts under two costs: trials (numbers) on one front but not the other.\n")
        lines.append("| study | A | B | on both | only under A | only under B |")
        lines.append("|---|---|---|---|---|---|")
        for f in agreement["fronts"]:
            lines.append(f"| {f['study']} | {f['a']} | {f['b']} | {f['both']} | "
                         f"{', '.join(map(str, f['only_a'])) or '—'} | {', '.join(map(str, f['only_b'])) or '—'} |")
    return "\n".join(lines)
