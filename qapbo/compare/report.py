"""One comparison computed once (:func:`compare` returns a :class:`Comparison`), rendered apart as
Markdown or JSON, as Optuna's ``_get_pareto_front_info`` is computed once and only drawn by its plot:
hypervolume, coverage, the least cost at AUC targets, the best AUC within cost budgets, compute,
equal-compute pairs and how far the costs agree."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

import optuna

from qapbo.compare.compute import equal_compute
from qapbo.compare.fronts import (
    best_auc_within,
    coverage,
    hypervolume,
    min_cost_at_auc,
    pareto_front,
    reference_point,
    values,
)
from qapbo.compare.results import StudyResult, _as_point, load_results
from qapbo.errors import NoResultsError
from qapbo.records import cost_of

#: A study whose every network reaches this AUC cannot tell methods apart (e.g. a small, easy table).
SATURATED_AUC = 0.999


@dataclass
class Comparison:
    """The numbers of one comparison, with the single reference point they share."""

    results: list[StudyResult]
    ref: tuple[float, float]
    auc_targets: list[float]
    budgets: list[float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    equal_compute: list[dict[str, Any]] = field(default_factory=list)  # see :func:`equal_compute`
    cost: str = "bops"  # the cost on the fronts' second axis (a qapbo.cost.measure name)
    agreement: dict[str, Any] | None = None  # cost_agreement() over the stored trials, when asked
    #: per method with replicates: its replicates' hypervolumes, median and bootstrap interval; per pair the
    #: rank statistics (:func:`replicate_summary`); empty when no method has more than one replicate
    replicated: list[dict[str, Any]] = field(default_factory=list)
    replicate_pairs: list[dict[str, Any]] = field(default_factory=list)
    targets_given: bool = False  # the AUC targets and budgets came from the caller, not the defaults
    budgets_given: bool = False

    @property
    def label(self) -> str:
        from qapbo.cost.definitions import LABELS

        return LABELS[self.cost].split(" (")[0]

    @property
    def synthetic(self) -> bool:
        return any(r.synthetic for r in self.results)

    @property
    def data_notes(self) -> list[str]:
        """What each study's data was (synthetic, physics-generated without detector, a release)."""
        return sorted({r.data_note for r in self.results if r.data_note})

    def to_dict(self) -> dict[str, Any]:
        from qapbo.cost.definitions import DEFINITIONS

        return {"cost": self.cost, "cost_definition": DEFINITIONS[self.cost],
                "reference_point": {"auc": self.ref[0], self.cost: self.ref[1]},
                "hypervolume_space": f"(AUC, log10 {self.label})", "synthetic_data": self.synthetic,
                "missing_cost": {r.name: r.missing_cost for r in self.results if r.missing_cost},
                "cost_agreement": self.agreement,
                "data": self.data_notes, "saturated": self.saturated,
                "auc_targets": self.auc_targets, "budgets": self.budgets,
                "studies": self.rows, "coverage": self.coverage, "equal_compute": self.equal_compute,
                "replicates": self.replicated, "replicate_pairs": self.replicate_pairs}

    @property
    def saturated(self) -> list[str]:
        """Studies whose every network scored AUC >= :data:`SATURATED_AUC`: on such data no comparison
        of methods can tell them apart."""
        return [r.name for r in self.results if r.trials and all(t.values[0] >= SATURATED_AUC for t in r.trials)]

    def shown_targets(self, wide: bool = False) -> list[float]:
        """The AUC targets the table shows: all when asked for (or ``wide``), else the middle default."""
        if wide or self.targets_given or len(self.auc_targets) < 2:
            return list(self.auc_targets)
        return [self.auc_targets[len(self.auc_targets) // 2]]

    def shown_budgets(self, wide: bool = False) -> list[float]:
        if wide or self.budgets_given or len(self.budgets) < 2:
            return list(self.budgets)
        return [self.budgets[len(self.budgets) // 2]]

    def legend(self, wide: bool = False) -> str:
        """What every column of the table means, printed under it."""
        lb = self.label
        given = "as --auc-targets gave them" if self.targets_given else (
            "just below the best AUC of all fronts together (best - 0.02, - 0.01, - 0.005"
            + ("" if wide else "; the middle one shown, all with --wide") + "; --auc-targets to choose)")
        budgets = "as --budgets gave them" if self.budgets_given else (
            "powers of ten across the fronts" + ("" if wide else " (the middle one shown, all with --wide)")
            + "; --budgets to choose")
        parts = [
            "AUC is the macro one-vs-rest AUC on the test rows (the mean of the per-class AUCs).",
            "trained: networks that trained (search trials, QAP or refine levels, HGQ2 checkpoints), stopped-early "
            "trials included.",
            f"front: networks on the study's (AUC, {lb}) Pareto front; networks below the study's min_auc are "
            "infeasible and on no front" + (" (below min AUC)" if wide else "") + ".",
            f"hypervolume: of the front in (AUC, log10 {lb}) from the reference point above.",
            f"min {lb} @ AUC>=t: the least {lb} on the front reaching AUC t; targets {given}.",
            f"best AUC @ {lb}<=b: the best AUC on the front within {lb} b; budgets {budgets}.",
            "epochs, train FLOPs, train s: all training, stopped-early trials included; a refined study's also "
            "counts the searches it started from (its own share in brackets). FLOPs count the arithmetic of "
            "training by qapbo's rule (qapbo-train-flops-v1, qapbo/cost/flops.py): the same on any machine and "
            "load, unlike wall seconds; — where trials stored before qapbo counted them have none.",
        ]
        if wide:
            parts.insert(2, "stopped early: trials early stopping ended (their time counts, they have no point).")
        return "Columns: " + " ".join(parts) + "\n"

    def to_markdown(self, wide: bool = False) -> str:
        """The comparison as Markdown; ``wide`` adds every target and budget and the counts behind the front."""
        lines = []
        if self.saturated:
            lines.append(f"**Warning: every network of {', '.join(self.saturated)} scored AUC >= {SATURATED_AUC}: "
                         "this data is too easy to separate the methods; compare them on harder data.**\n")
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
        if self.replicated:
            lines.append(replicates_markdown(self.replicated, self.replicate_pairs, self.label))
        targets, budgets = self.shown_targets(wide), self.shown_budgets(wide)
        head = ["study", "kind", "trained", "front", "hypervolume"]
        if wide:
            head[3:3] = ["stopped early"]
            head[5:5] = ["below min AUC"]
        head += [f"min {lb} @ AUC>={t:g}" for t in targets]
        head += [f"best AUC @ {lb}<={b:.0e}" for b in budgets]
        head += ["epochs", "train FLOPs", "train s"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in self.rows:
            hv = f"{r['hypervolume']:.4f}"
            if r.get("hypervolume_seeds", 1) > 1:
                hv = (f"{r['hypervolume_mean']:.4f} ± {r['hypervolume_std']:.4f} "
                      f"({r['hypervolume_seeds']} seeds/folds)")
            cells = [r["study"], r["kind"], str(r["trained"]), str(r["front_size"]), hv]
            if wide:
                cells[3:3] = [str(r["stopped_early"])]
                cells[5:5] = [str(r["infeasible"])]
            cells += [_fmt_bops(r["min_cost_at_auc"][str(t)]) for t in targets]
            cells += [_fmt_auc(r["best_auc_within_budget"][str(b)]) for b in budgets]
            cells += [f"{r['epochs']:,}", _fmt_flops(r["flops"]), f"{r['seconds']:,.0f}"]
            if r["refine_of"]:
                cells[-3] = f"{r['epochs']:,} ({r['own_epochs']:,})"
                cells[-1] = f"{r['seconds']:,.0f} ({r['own_seconds']:,.0f})"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("\n" + self.legend(wide))
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


def _fmt_flops(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def _fmt_auc(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


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
            auc_targets: Sequence[float] | None = None, budgets: Sequence[float] | None = None,
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
    targets_given, budgets_given = bool(auc_targets), bool(budgets)
    targets = list(auc_targets) if auc_targets else t_def
    budgets = list(budgets) if budgets else b_def
    cmp = Comparison(results=list(results), ref=ref, auc_targets=targets, budgets=budgets, cost=cost,
                     targets_given=targets_given, budgets_given=budgets_given)
    for r in results:
        front = values(r.front)
        row: dict[str, Any] = {
            "study": r.name, "kind": r.kind, "trials": len(r.trials), "front_size": len(front),
            "trained": r.trained,
            "infeasible": len(r.infeasible),
            "hypervolume": hypervolume(front, ref),
            "min_cost_at_auc": {str(t): min_cost_at_auc(front, t) for t in targets},
            "best_auc_within_budget": {str(b): best_auc_within(front, b) for b in budgets},
            "stopped_early": len(r.pruned),
            "epochs": r.epochs, "seconds": r.seconds,  # totals: stopped-early trials and refined sources in
            "flops": r.flops, "cpu_seconds": r.cpu_seconds,
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
        for b in (b for b in results[i + 1:] if a.pairs_with(b)):
            fa, fb = values(a.front), values(b.front)
            cmp.coverage.append({"a": a.name, "b": b.name, "c_ab": coverage(fa, fb), "c_ba": coverage(fb, fa)})
    cmp.equal_compute = equal_compute(results, ref)
    cmp.replicated, cmp.replicate_pairs = replicate_summary(results, ref)
    return cmp


def methods(results: Sequence[StudyResult]) -> dict[str, list[StudyResult]]:
    """Results grouped by method (:attr:`StudyResult.method`), replicates in order."""
    out: dict[str, list[StudyResult]] = {}
    for r in sorted(results, key=lambda r: r.replicate):
        out.setdefault(r.method, []).append(r)
    return out


def replicate_summary(results: Sequence[StudyResult], ref: tuple[float, float]
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per method with more than one replicate, the median hypervolume and its 95 % bootstrap interval;
    per pair of them, P(one's replicate beats the other's), the Mann-Whitney p-value and the verdict
    (:mod:`qapbo.compare.stats`). Empty when nothing is replicated."""
    from qapbo.compare.stats import compare_pair, median_interval, verdict_sentence

    groups = {m: rs for m, rs in methods(results).items() if len(rs) > 1}
    rows = []
    for m, rs in groups.items():
        hvs = [hypervolume(values(r.front), ref) for r in rs]
        iv = median_interval(hvs)
        rows.append({"method": m, "kind": rs[0].kind, "replicates": len(rs), "studies": [r.name for r in rs],
                     "hypervolumes": hvs, "median": iv.median, "low": iv.low, "high": iv.high,
                     "confidence": iv.confidence, "epochs_median": statistics.median(r.epochs for r in rs),
                     "seconds_median": statistics.median(r.seconds for r in rs)})
    pairs = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            v = compare_pair(a["hypervolumes"], b["hypervolumes"], names=(a["method"], b["method"]))
            pairs.append({"a": a["method"], "b": b["method"], "superiority": v.superiority, "p_value": v.p_value,
                          "distinguishable": v.distinguishable, "leader": v.leader,
                          "sentence": verdict_sentence(v)})
    return rows, pairs


def replicates_markdown(rows: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]], label: str) -> str:
    """The replicated comparison: each method's median hypervolume with its interval, then every pair's verdict."""
    ci = f"{rows[0]['confidence']:.0%}".replace("%", " %")
    lines = [f"Replicates: every method run with other training and sampler seeds on the same data split; "
             f"hypervolume in (AUC, log10 {label}) per replicate, its median with a {ci} percentile-bootstrap "
             "interval.\n",
             f"| method | kind | replicates | median hypervolume [{ci} interval] | hypervolumes | median epochs |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['kind']} | {r['replicates']} | {r['median']:.3f} [{r['low']:.3f}, "
                     f"{r['high']:.3f}] | {', '.join(f'{h:.3f}' for h in r['hypervolumes'])} | "
                     f"{r['epochs_median']:,.0f} |")
    lines.append("")
    lines += [f"- {p['sentence']}." for p in pairs]
    lines.append("\nA method leads only when the two-sided Mann-Whitney p-value is below 0.05 (P(A > B): the "
                 "probability that a replicate of A beats one of B, ties half); otherwise they are not "
                 "distinguishable. The single-study rows below are each one replicate.\n")
    return "\n".join(lines)


def cost_agreement(results: Sequence[StudyResult], costs: Sequence[str] | None = None) -> dict[str, Any]:
    """Do the costs agree? Over every stored trial: Spearman's rank correlation of each pair of costs,
    and, per study, the trials on the AUC front under one cost but not under another.

    ``results`` may be loaded in any cost: each trial's own records give every cost it has, and the
    trials without the compared cost count too (:attr:`StudyResult.measured`).
    """
    from scipy.stats import spearmanr

    from qapbo.cost.definitions import COSTS

    costs = list(costs or COSTS)
    trials = [t for r in results for t in r.measured]
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
            have = [_as_point(t, c) for t in r.measured if cost_of(t, c) is not None]
            if len(have) == len(r.measured) and have:
                on[c] = {t.number for t in pareto_front(have)}
        for i, a in enumerate(costs):
            for b in costs[i + 1:]:
                if a in on and b in on:
                    fronts.append({"study": r.name, "a": a, "b": b, "only_a": sorted(on[a] - on[b]),
                                   "only_b": sorted(on[b] - on[a]), "both": len(on[a] & on[b])})
    return {"correlations": pairs, "fronts": fronts}


def equal_compute_markdown(pairs: Sequence[dict[str, Any]]) -> str:
    """The equal-compute table and one plain sentence per pair: the comparison's headline numbers, in
    training FLOPs where both studies recorded them (wall seconds depend on the machine's load), else
    in wall seconds, and apart in epochs."""
    lines = [("\nEqual compute: each pair at the training FLOPs (wall seconds where a study has no FLOPs) and, "
              "apart, the epochs the cheaper study spent in total; hypervolume of the front of the trials each had "
              "finished by then. n/a: a refined study has no front before its searches' total; a refined study "
              "and the search it refines are not paired (it contains that search).\n"),
             "| A | B | at compute | HV A | HV B | at epochs | HV A | HV B |", "|---|---|---|---|---|---|---|---|"]

    def unit(p: dict[str, Any]) -> str:
        return "flops" if p.get("budget_flops") is not None else "seconds"

    def budget(p: dict[str, Any], u: str) -> float:
        return p[f"budget_{u}"]

    def text(p: dict[str, Any], u: str) -> str:
        return f"{p['budget_flops']:.3g} FLOPs" if u == "flops" else f"{_fmt_seconds(p['budget_seconds'])} s (wall)"

    def hv(p: dict[str, Any], side: str, u: str) -> str:
        start = (p.get(f"{side}_starts_at") or {}).get(u) or 0
        if start > budget(p, u):
            return "n/a"
        return f"{p[f'hv_{side}_at_{u}']:.4f}"

    for p in pairs:
        u = unit(p)
        lines.append(f"| {p['a']} | {p['b']} | {text(p, u)} | {hv(p, 'a', u)} | {hv(p, 'b', u)} | "
                     f"{p['budget_epochs']:,} | {hv(p, 'a', 'epochs')} | {hv(p, 'b', 'epochs')} |")
    lines.append("")
    for p in pairs:
        u = unit(p)
        cheap = p["cheaper_in_flops"] if u == "flops" else p["cheaper"]
        other, side, cside = (p["b"], "b", "a") if cheap == p["a"] else (p["a"], "a", "b")
        reached, at = hv(p, side, u), text(p, u)
        if reached == "n/a":
            start = p[f"{side}_starts_at"][u]
            since = f"{start:.3g} FLOPs" if u == "flops" else f"{_fmt_seconds(start)} s"
            lines.append(f"- At the {at} {cheap} spent (hypervolume {hv(p, cside, u)}), {other} had not "
                         f"begun: it starts after its searches' {since}.")
        else:
            lines.append(f"- At the {at} {cheap} spent, {other} had reached hypervolume {reached} against "
                         f"{cheap}'s {hv(p, cside, u)}.")
    return "\n".join(lines)


def agreement_markdown(agreement: dict[str, Any]) -> str:
    lines = ["\nCost agreement over all stored trials: Spearman rank correlation of each pair of costs.\n",
             "| cost A | cost B | trials | Spearman |", "|---|---|---|---|"]
    for p in agreement["correlations"]:
        rho = "—" if p["spearman"] is None or math.isnan(p["spearman"]) else f"{p['spearman']:.3f}"
        lines.append(f"| {p['a']} | {p['b']} | {p['trials']} | {rho} |")
    if agreement["fronts"]:
        lines.append("\nAUC fronts under two costs: how many trials are on both fronts, and the numbers of the "
                     "trials on one but not the other (the trial numbers `qapbo export --trial` takes).\n")
        lines.append("| study | A | B | on both (count) | only under A (trial numbers) | only under B (trial numbers) |")
        lines.append("|---|---|---|---|---|---|")
        for f in agreement["fronts"]:
            lines.append(f"| {f['study']} | {f['a']} | {f['b']} | {f['both']} | "
                         f"{', '.join(map(str, f['only_a'])) or '—'} | {', '.join(map(str, f['only_b'])) or '—'} |")
    return "\n".join(lines)


def compare_stored(storage: optuna.storages.BaseStorage | str, names: Sequence[str] | None = None, cost: str = "bops",
                   auc_targets: Sequence[float] | None = None, budgets: Sequence[float] | None = None) -> Comparison:
    """The comparison of the stored studies ``names`` (default: every two-objective study) in ``cost``,
    with how far the costs agree: what ``qapbo compare`` prints and ``qapbo run`` ends with."""
    results = load_results(storage, names, cost=cost)
    cmp = compare(results, auc_targets=auc_targets, budgets=budgets, cost=cost)
    cmp.agreement = cost_agreement(results)
    return cmp
