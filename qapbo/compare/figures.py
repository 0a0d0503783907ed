"""Figures from stored results (matplotlib's object API: no display, no training here).

Every figure states its data source on the canvas, "SYNTHETIC" when it is, and is written as
PNG and PDF.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from qapbo.compare.compute import hypervolume_history
from qapbo.compare.fronts import pareto_front, values
from qapbo.compare.report import Comparison, methods
from qapbo.compare.results import StudyResult
from qapbo.errors import QapboError
from qapbo.records import is_feasible

if TYPE_CHECKING:
    from qapbo.data.split import JetData

KINDS = ("fronts", "hypervolume", "bkg-eff", "efficiency", "costs", "attainment")
BOPS_LABEL = "BOPs (bit operations per inference, log scale)"
AUC_LABEL = "AUC (macro one-vs-rest, test set)"
_PRECISION_COLORS = {32: "black", 16: "tab:gray", 12: "tab:blue", 8: "tab:green", 6: "tab:orange",
                     4: "tab:red", 3: "tab:purple", 2: "tab:brown"}
_SEARCH_COLORS = ("tab:cyan", "tab:olive", "tab:pink", "tab:purple", "tab:brown", "tab:blue")
_REFINE_COLORS = ("tab:red", "darkred", "salmon")
_HGQ_COLORS = ("darkgreen", "limegreen", "teal")
_LEARNED_COLORS = ("darkorange", "goldenrod", "chocolate")
_CHAINS = ("refine", "hgq", "learned")  # kinds whose points are one chain's checkpoints
_KIND_LINES = {"qap": "--", "refine": "-.", "hgq": ":", "learned": (0, (5, 1, 1, 1))}  # search and other: solid
_KIND_MARKERS = {"qap": "s", "refine": "D", "hgq": "*", "learned": "P"}  # search and other: dots
_PRECISION_MARKERS = {32: "o", 16: "P", 12: "D", 8: "^", 6: "s", 4: "v", 3: "<", 2: ">"}
_INFEASIBLE = dict(marker="x", s=18, color="tab:gray", linewidths=1.0)
MAX_PANELS_PER_ROW = 5
#: Fronts figure: how far below the best AUC the axis reaches; networks below are marked at its edge.
AUC_SPAN = 0.10


def panel_grid(n: int, per_row: int = MAX_PANELS_PER_ROW) -> tuple[int, int]:
    """(rows, columns) for ``n`` panels, at most ``per_row`` to a row, the rows as even as they can be
    (5 classes: one row of 5, not 4 + 1 with three empty slots)."""
    rows = math.ceil(max(n, 1) / per_row)
    return rows, max(1, math.ceil(max(n, 1) / rows))


def _result_color(i: int, n: int) -> tuple:
    from matplotlib import colormaps

    return colormaps["viridis"](0.85 * i / max(1, n - 1))


def _colors(cmp: Comparison) -> dict[str, tuple | str]:
    """One colour per study, the same in every figure: searches from one palette, refined studies
    from a red one, HGQ2 from a green one, learned-precision chains from an orange one, QAP black (viridis when there are several, e.g. one per
    label-randomization share)."""
    qap = [r.name for r in cmp.results if r.kind == "qap"]
    refine = [r.name for r in cmp.results if r.kind == "refine"]
    hgq = [r.name for r in cmp.results if r.kind == "hgq"]
    learned = [r.name for r in cmp.results if r.kind == "learned"]
    search = [r.name for r in cmp.results if r.kind not in ("qap", *_CHAINS)]
    out: dict[str, tuple | str] = {n: _SEARCH_COLORS[i % len(_SEARCH_COLORS)] for i, n in enumerate(search)}
    out.update({n: _REFINE_COLORS[i % len(_REFINE_COLORS)] for i, n in enumerate(refine)})
    out.update({n: _HGQ_COLORS[i % len(_HGQ_COLORS)] for i, n in enumerate(hgq)})
    out.update({n: _LEARNED_COLORS[i % len(_LEARNED_COLORS)] for i, n in enumerate(learned)})
    out.update({n: "black" if len(qap) == 1 else _result_color(i, len(qap)) for i, n in enumerate(qap)})
    return out


def _variant(name: str) -> str:
    """'x-qap [labels 50% random]' -> 'labels 50% random': what tells the results of one study apart."""
    return name[name.index("[") + 1:name.rindex("]")] if "[" in name and name.endswith("]") else name


def _data_note(cmp: Comparison) -> str:
    """A title line naming the data, so no figure made from synthetic jets can pass as real."""
    if cmp.synthetic:
        return "data: SYNTHETIC jets (synthetic-jets), not real LHC data"
    sources = sorted({str(t.user_attrs.get("data", {}).get("source", "unknown")) for r in cmp.results
                      for t in r.trials if isinstance(t.user_attrs.get("data"), dict)})
    if sources and set(sources) <= {"openml", "hdf5"}:
        return "data: hls4ml LHC jet dataset"
    if cmp.data_notes:  # e.g. pythia-jets: "... NO detector simulation"
        return "data: " + " | ".join(cmp.data_notes)
    return f"data: {', '.join(sources) or 'source not recorded'}"


def _save(fig: Figure, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def _qap_curves(r: StudyResult) -> dict[tuple, list]:
    curves: dict[tuple, list] = {}
    for t in r.trials:
        key = (t.params.get("precision"), t.params.get("mode"), (t.params.get("seed"), t.params.get("fold")))
        curves.setdefault(key, []).append(t)
    return {k: sorted(v, key=lambda t: t.params.get("level", 0)) for k, v in sorted(curves.items(), key=str)}


def plot_fronts(cmp: Comparison, out: Path) -> list[Path]:
    """AUC versus BOPs: search trials faint, fronts as steps, QAP precisions as curves with levels."""
    return _save(fronts_figure(cmp), out, "fronts")


def fronts_figure(cmp: Comparison) -> Figure:
    """The figure of :func:`plot_fronts`, unsaved."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(cmp)
    for r in (r for r in cmp.results if r.kind != "qap"):  # searches faint dots; refined diamonds; HGQ2 stars
        chain = r.kind in _CHAINS
        marker = _KIND_MARKERS.get(r.kind, "o")
        pts = values(t for t in r.trials if is_feasible(t))
        ax.scatter([b for _, b in pts], [a for a, _ in pts], s=16 if chain else 10, alpha=0.45 if chain else 0.25,
                   color=colors[r.name], marker=marker, linewidths=0)
        front = values(r.front)
        what, unit = {"refine": ("refined front", "levels"), "hgq": ("HGQ2 front", "checkpoints"),
                      "learned": ("learned-precision chain front", "checkpoints")}.get(
            r.kind, ("front", "trials"))
        ax.step([b for _, b in front], [a for a, _ in front], where="post", color=colors[r.name], lw=2,
                ls=_KIND_LINES.get(r.kind, "-"), marker=marker if chain else None, ms=4,
                label=f"{r.name} {what} ({len(front)} on it of {r.trained} {unit}"
                      + (f"; {len(r.pruned)} stopped early)" if r.pruned else ")"))
    qap = [r for r in cmp.results if r.kind == "qap"]
    labels: list[tuple[float, float, str, Any]] = []
    several = len(qap) > 1  # e.g. one result per label-randomization share: a colour each, precision as marker
    for j, r in enumerate(qap):
        replicates = len(r.by_replicate())
        labelled: set[tuple] = set()
        for (bits, mode, _), trials in _qap_curves(r).items():
            color = _result_color(j, len(qap)) if several else _PRECISION_COLORS.get(bits, "tab:gray")
            marker = _PRECISION_MARKERS.get(bits, "o") if several else ("o" if mode == "ft" else "s")
            first = (bits, mode) not in labelled  # seeds and folds share one legend entry and one set of labels
            labelled.add((bits, mode))
            label = f"QAP {'float' if bits == 32 else f'{bits}-bit'} {str(mode).upper()}"
            if several:
                label = f"{_variant(r.name)}: {label}"
            if replicates > 1:
                label += f" ({replicates} seeds/folds)"
            trials = [t for t in trials if is_feasible(t)]  # infeasible levels are drawn apart below
            xs = [t.values[1] for t in trials]
            ys = [t.values[0] for t in trials]
            ax.plot(xs, ys, ls="-" if mode == "ft" else "--", marker=marker, ms=3.5, color=color, lw=1.2,
                    alpha=0.9 if replicates == 1 else 0.6, label=label if first else "_nolegend_")
            if first:  # pruning levels, marked by their sparsity where the label has room (placed below)
                labels += [(t.values[1], t.values[0], f"{t.user_attrs.get('sparsity', 0):.0%}", color)
                           for t in trials[1:]]
    ax.set_xscale("log")
    ax.set_xlabel(_cost_label(cmp))
    ax.set_ylabel(AUC_LABEL)
    good = [t.values[0] for r in cmp.results for t in r.trials if is_feasible(t)]
    best = max(good or [t.values[0] for r in cmp.results for t in r.trials])
    fronts = [t.values[0] for r in cmp.results for t in r.front]
    # the band the fronts occupy, at most AUC_SPAN below the best: one stray point must not squash it
    low = max(cmp.ref[0], best - AUC_SPAN, min(fronts or [best]) - 0.01)
    below = [t for r in cmp.results for t in r.trials if t.values[0] < low]
    if below:  # what falls below the axis is marked at its edge and counted, never silently dropped
        ax.scatter([t.values[1] for t in below], [low] * len(below), marker="v", s=14, color="tab:gray", zorder=3,
                   clip_on=False, label=f"below AUC {low:.3f}, off the axis ({len(below)}; the table has them)")
    bad = [t for r in cmp.results for t in r.infeasible if t.values[0] >= low]  # the rest are marked at the edge
    if bad:
        ax.scatter([t.values[1] for t in bad], [t.values[0] for t in bad], zorder=3,
                   label=f"below min AUC: infeasible, on no front ({len(bad)})", **_INFEASIBLE)
    for m in sorted({r.min_auc for r in cmp.results if r.infeasible}):  # the line explains the crosses
        if m >= low:
            ax.axhline(m, color="tab:gray", ls=":", lw=1.0)
            ax.annotate(f"min AUC {m:g}", (0.005, m), xycoords=("axes fraction", "data"), fontsize=6,
                        color="tab:gray", va="bottom")
    ax.set_ylim(low, best + 0.01)  # the region that matters; the table has the rest
    _place_labels(ax, labels)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"AUC versus {cmp.label}: search fronts, quantization-aware pruning (labels: pruned share)"
                 + (" and refined fronts" if any(r.kind == "refine" for r in cmp.results) else "")
                 + (" and HGQ2" if any(r.kind == "hgq" for r in cmp.results) else "") + "\n"
                 + _data_note(cmp), fontsize=10)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    return fig


def _place_labels(ax: Any, labels: Sequence[tuple[float, float, str, Any]], fontsize: float = 5.5) -> None:
    """Annotate points in order, skipping a label that would overlap one already placed (in display
    space, after the axis limits are set): "80%80%50%" helps nobody."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    placed: list[Any] = []
    fig = ax.get_figure()
    renderer = FigureCanvasAgg(fig).get_renderer()
    if fig.get_layout_engine() is not None:  # lay the axes out as saving will, so distances are final
        fig.get_layout_engine().execute(fig)
    lo, hi = ax.get_ylim()
    for x, y, text, color in labels:
        if not lo <= y <= hi:
            continue
        a = ax.annotate(text, (x, y), fontsize=fontsize, color=color, xytext=(2, 2), textcoords="offset points")
        box = a.get_window_extent(renderer).expanded(1.1, 1.2)
        if any(box.overlaps(b) for b in placed):
            a.remove()
        else:
            placed.append(box)


def plot_hypervolume(cmp: Comparison, out: Path) -> list[Path]:
    """Hypervolume of every study against the training it had spent (:func:`hypervolume_figure`)."""
    return _save(hypervolume_figure(cmp), out, "hypervolume")


def hypervolume_figure(cmp: Comparison) -> Figure:
    """Hypervolume of every study against the training it had spent: FLOPs (left; wall seconds when a
    study has none recorded) and epochs (right).

    Every kind is a step curve in trial order (QAP level by level); a refined study starts where
    its searches ended; trials stopped early add time but no point and are marked with a cross.
    Epochs rather than trial number on the right: a QAP level or a refined member is not a search
    trial, and epochs compare studies independently of the machine (the table's equal-epochs numbers).
    """
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax_t, ax_e = fig.subplots(1, 2, sharey=True)
    colors = _colors(cmp)
    marked = False
    hists = {r.name: hypervolume_history(r, cmp.ref) for r in cmp.results}
    # FLOPs when every study counted them (the same on any machine), else wall seconds
    in_flops = all(h[-1].flops is not None for h in hists.values())
    compute = (lambda h: h.flops) if in_flops else (lambda h: h.seconds)
    for r in cmp.results:
        hist = hists[r.name]
        label = {"qap": f"{r.name} (QAP, level by level)", "refine": f"{r.name} (refined, after its search)",
                 "hgq": f"{r.name} (HGQ2, checkpoint by checkpoint)",
                 "learned": f"{r.name} (learned precision, checkpoint by checkpoint)"}.get(r.kind, r.name)
        early = {t.number for t in r.pruned}
        stopped = [h for h in hist if h.number in early]
        if stopped:
            label += f"; {len(stopped)} stopped early"
        for ax, x in ((ax_t, [compute(h) for h in hist]), (ax_e, [h.epochs for h in hist])):
            ax.step(x, [h.hypervolume for h in hist], where="post", color=colors[r.name],
                    ls=_KIND_LINES.get(r.kind, "-"), lw=1.6, label=label)
            if r.refine_of:  # where the refined study's own training began
                ax.plot(x[:1], [0.0], marker="|", ms=10, color=colors[r.name])
        for ax, x in ((ax_t, [compute(h) for h in stopped]), (ax_e, [h.epochs for h in stopped])) if stopped else ():
            ax.scatter(x, [h.hypervolume for h in stopped], marker="x", s=14, color=colors[r.name], linewidths=0.9,
                       label="_nolegend_" if marked else "stopped early: time, no point")
        marked = marked or bool(stopped)
    ax_t.set_xlabel("cumulative training FLOPs (qapbo-train-flops-v1)" if in_flops
                    else "cumulative training time (wall s; no FLOPs recorded)")
    ax_e.set_xlabel("cumulative training epochs")
    ax_t.set_ylabel(f"hypervolume in (AUC, log10 {cmp.label})")
    for ax in (ax_t, ax_e):
        ax.grid(True, alpha=0.3)
    ax_t.legend(fontsize=7)
    fig.suptitle(f"Hypervolume against compute (reference point AUC {cmp.ref[0]:g}, {cmp.label} {cmp.ref[1]:.3g}; "
                 f"a refined study counts its search's compute too)\n{_data_note(cmp)}", fontsize=10)
    return fig


def plot_bkg_eff(cmp: Comparison, out: Path, class_names: Sequence[str] | None = None) -> list[Path]:
    """:func:`bkg_eff_figure`, saved as ``bkg_eff``."""
    return _save(bkg_eff_figure(cmp, class_names), out, "bkg_eff")


def bkg_eff_figure(cmp: Comparison, class_names: Sequence[str] | None = None) -> Figure:
    """Per-class background rejection (1 / background efficiency) at 50 % signal efficiency versus
    the cost, along each front: the quantity jet-tagging papers plot, on a log axis per panel.

    Panels wrap into even rows for any number of classes. A class no background jet is mistaken
    for (efficiency 0: unbounded rejection, common on easy data) is marked at the top of its panel.
    """
    stored = [t.user_attrs["bkg_eff_at_sig50"] for r in cmp.results for t in r.trials
              if isinstance(t.user_attrs.get("bkg_eff_at_sig50"), dict)]
    classes = list(class_names or (stored[0] if stored else []))
    rows, cols = panel_grid(len(classes))
    fig = Figure(figsize=(2.8 * cols + 0.5, 2.7 * rows + 0.9), layout="constrained")
    title = f"Background rejection at 50% signal efficiency along each front; {_data_note(cmp)}"
    if not classes:
        fig.text(0.5, 0.5, "no stored trial has per-class background efficiencies", ha="center", va="center")
        fig.suptitle(title, fontsize=10)
        return fig
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    colors = _colors(cmp)
    unbounded = False
    for k, (ax, c) in enumerate(zip(axes, classes)):
        finite: list[float] = []
        tops: list[tuple[float, Any, str]] = []
        for r in cmp.results:
            pts = [(t.values[1], t.user_attrs.get("bkg_eff_at_sig50", {}).get(c)) for t in pareto_front(r.trials)]
            pts = [(b, float(e)) for b, e in pts if isinstance(e, (int, float)) and math.isfinite(e) and b > 0]
            rej = [(b, 1.0 / e) for b, e in pts if e > 0]
            finite += [v for _, v in rej]
            tops += [(b, colors[r.name], r.kind) for b, e in pts if e == 0]
            ax.plot([b for b, _ in rej], [v for _, v in rej], marker=_KIND_MARKERS.get(r.kind, "o"), ms=3,
                    color=colors[r.name], ls=_KIND_LINES.get(r.kind, "-"), label=f"{r.name} front")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide in narrow panels
        if finite:
            ax.set_ylim(min(finite) / 1.5, max(finite) * 1.5)
        else:
            ax.set_ylim(1.0, 10.0)
        if tops:  # rejection without bound: at the top edge, above every finite value
            unbounded = True
            ax.scatter([b for b, _, _ in tops], [ax.get_ylim()[1]] * len(tops), marker="^", s=16, clip_on=False,
                       color=[col for _, col, _ in tops], zorder=3)
        ax.set_title(f"class {c}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        if k + cols >= len(classes):
            ax.set_xlabel(f"{cmp.label} (log scale)")
        if k % cols == 0:
            ax.set_ylabel("bkg. rejection 1/eps_b @ 50% sig.")
    for ax in axes[len(classes):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    note = "\n(log scale per panel; triangles at the top: no background jet passed, rejection unbounded)" \
        if unbounded else ""
    fig.suptitle(title + note, fontsize=10)
    return fig


def plot_efficiency(cmp: Comparison, out: Path) -> list[Path]:
    """:func:`efficiency_figure`, saved as ``efficiency``."""
    return _save(efficiency_figure(cmp), out, "efficiency")


def efficiency_figure(cmp: Comparison) -> Figure:
    """Neural efficiency and aIQ of every stored network versus its cost; infeasible ones apart."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_e, ax_q = fig.subplots(1, 2)
    colors = _colors(cmp)
    bad: list[tuple] = []
    for r in cmp.results:
        color = colors[r.name]
        pts = [(t.values[1], t.user_attrs.get("network_efficiency"), t.user_attrs.get("aiq"), is_feasible(t))
               for t in r.trials]
        pts = [p for p in pts if p[1] is not None]
        bad += [p for p in pts if not p[3]]
        pts = [p for p in pts if p[3]]
        if not pts:  # e.g. trials stored by other tools: an empty scatter breaks the log axis
            continue
        marker = _KIND_MARKERS.get(r.kind, "o")
        ax_e.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=color, marker=marker, alpha=0.7,
                     label=r.name)
        ax_q.scatter([p[0] for p in pts], [p[2] for p in pts], s=12, color=color, marker=marker, alpha=0.7,
                     label=r.name)
    if bad:  # nets below min_auc (often constant outputs, efficiency 0): apart, not mistaken for results
        for ax, k in ((ax_e, 1), (ax_q, 2)):
            ax.scatter([p[0] for p in bad], [p[k] for p in bad], label=f"below min AUC: infeasible ({len(bad)})",
                       **_INFEASIBLE)
    for ax, label in ((ax_e, "network efficiency (geo. mean of layers)"),
                      (ax_q, "aIQ = (AUC^2 x efficiency)^(1/3)")):
        ax.set_xscale("log")
        ax.set_xlabel(_cost_label(cmp))
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"Neural efficiency versus {cmp.label}; {_data_note(cmp)}", fontsize=10)
    return fig


def plot(kind: str, cmp: Comparison, out: Path) -> list[Path]:
    if kind == "fronts":
        return plot_fronts(cmp, out)
    if kind == "hypervolume":
        return plot_hypervolume(cmp, out)
    if kind == "bkg-eff":
        return plot_bkg_eff(cmp, out)
    if kind == "efficiency":
        return plot_efficiency(cmp, out)
    if kind == "costs":
        return plot_costs(cmp, out)
    if kind == "attainment":
        return plot_attainment(cmp, out)
    raise ValueError(f"unknown figure kind {kind!r}: use one of {', '.join(KINDS)}")


def plot_all(cmp: Comparison, out: Path) -> list[Path]:
    """Every figure; the cost figure only when some trial has LUTs, attainment only with replicates."""
    kinds = [k for k in KINDS if (k != "costs" or _cost_pairs(cmp)) and (k != "attainment" or cmp.replicated)]
    return [p for kind in kinds for p in plot(kind, cmp, out)]


def plot_attainment(cmp: Comparison, out: Path) -> list[Path]:
    """:func:`attainment_figure`, saved as ``attainment``."""
    return _save(attainment_figure(cmp), out, "attainment")


def attainment_figure(cmp: Comparison) -> Figure:
    """Each replicated method's median (50 %) attainment surface, with its 25 % and 75 % surfaces, in
    (AUC, cost): where the median replicate's front lies, and how far the best and worst quarters spread."""
    from qapbo.compare.fronts import attainment_surfaces

    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(cmp)
    replicated = {m: rs for m, rs in methods(cmp.results).items() if len(rs) > 1}
    for m, rs in replicated.items():
        surfaces = attainment_surfaces([values(r.front) for r in rs])
        color = colors[rs[0].name]
        for p, style in ((50, dict(lw=2.2, ls="-")), (25, dict(lw=0.9, ls="--")), (75, dict(lw=0.9, ls=":"))):
            pts = surfaces[p]
            if not len(pts):
                continue
            label = f"{m}: median of {len(rs)} replicates" if p == 50 else f"{m}: {p} %"
            ax.step([10.0 ** c for c in pts[:, 1]], pts[:, 0], where="post", color=color, label=label, **style)
    if not replicated:
        ax.text(0.5, 0.5, "no method has more than one replicate (replicates = N in the study file)",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_xscale("log")
    ax.set_xlabel(_cost_label(cmp))
    ax.set_ylabel(AUC_LABEL)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Attainment surfaces in AUC versus {cmp.label}\n50 % (solid): the front the median replicate "
                 "attains; 25 % (dashed): the best quarter's; 75 % (dotted): the worst quarter's\n"
                 + _data_note(cmp), fontsize=9)
    return fig


def _cost_label(cmp: Comparison) -> str:
    return BOPS_LABEL if cmp.cost == "bops" else f"{cmp.label} (log scale)"


def _cost_pairs(cmp: Comparison) -> list[tuple[float, float, int, float]]:
    """(BOPs, LUTs, weight bits, sparsity) of every stored trial that has both costs."""
    out = []
    for r in cmp.results:
        for t in r.trials:
            a = t.user_attrs
            if a.get("bops") is not None and a.get("luts") is not None:
                model = a.get("model", {})
                bits = model.get("weight_bits", 32)
                bits = max(bits) if isinstance(bits, (list, tuple)) else bits
                if model.get("precision") == "learned" or a.get("kind") == "hgq":
                    bits = 0  # learned per-weight widths: no one precision (drawn as "learned")
                out.append((float(a["bops"]), float(a["luts"]), int(bits), float(a.get("sparsity", 0.0))))
    return out


def plot_costs(cmp: Comparison, out: Path) -> list[Path]:
    """BOPs against da4ml LUTs for every stored trial, coloured by precision (left) and by sparsity (right)."""
    pts = _cost_pairs(cmp)
    if not pts:
        raise QapboError("no stored trial has LUTs: `qapbo costs STUDY_FILE --storage URL` measures them from "
                         "the checkpoints (needs pip install 'qapbo[hw]')")
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_p, ax_s = fig.subplots(1, 2)
    bops, luts = [p[0] for p in pts], [max(p[1], 1.0) for p in pts]  # 0 LUTs (all pruned) drawn at 1
    for bits in sorted({p[2] for p in pts}):
        sel = [p for p in pts if p[2] == bits]
        ax_p.scatter([p[0] for p in sel], [max(p[1], 1.0) for p in sel], s=12, alpha=0.7,
                     color=_PRECISION_COLORS.get(bits, "tab:gray"),
                     label="float" if bits == 32 else "learned per weight" if bits == 0 else f"{bits}-bit")
    sc = ax_s.scatter(bops, luts, c=[p[3] for p in pts], cmap="viridis", s=12, alpha=0.8, vmin=0.0, vmax=1.0)
    fig.colorbar(sc, ax=ax_s, label="sparsity (pruned share of weights)")
    for ax in (ax_p, ax_s):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(BOPS_LABEL)
        ax.set_ylabel("LUTs (da4ml adder estimate, log scale)")
        ax.grid(True, which="both", alpha=0.3)
    ax_p.legend(fontsize=7, title="weight precision", title_fontsize=7)
    rho = next((p["spearman"] for p in (cmp.agreement or {}).get("correlations", [])
                if {p["a"], p["b"]} == {"bops", "luts"}), None)
    note = f"Spearman rank correlation {rho:.3f}; " if rho is not None else ""
    fig.suptitle(f"BOPs against LUTs, {len(pts)} stored networks ({note}float layers costed as ap_fixed<16,6>)\n"
                 f"{_data_note(cmp)}", fontsize=10)
    return _save(fig, out, "costs")


def plot_features(data: "JetData", out: Path) -> list[Path]:
    """Every input feature's distribution per class, in physical units (the scaler undone)."""
    return _save(features_figure(data), out, "features")


def features_figure(data: "JetData") -> Figure:
    """The figure of :func:`plot_features`, unsaved: one panel per feature, wrapped four to a row."""
    import numpy as np

    x = data.scaler.inverse_transform(np.concatenate([data.x_train, data.x_val, data.x_test]))
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    n = x.shape[1]
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows + 0.6), layout="constrained")
    for i, name in enumerate(data.feature_names):
        ax = fig.add_subplot(rows, cols, i + 1)
        lo, hi = np.percentile(x[:, i], [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
        for c, cname in enumerate(data.class_names):
            ax.hist(x[y == c, i], bins=bins, density=True, histtype="step", lw=1.2, label=cname)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.axes[0].legend(fontsize=7, title="class", title_fontsize=7)
    fig.suptitle(f"Input features per class ({len(y):,} jets, 0.5-99.5 % range, unit area); data: {data.label}",
                 fontsize=10)
    return fig
