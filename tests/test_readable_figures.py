"""The figures a user reads: counts that match the table, labels that do not overlap, an AUC axis on
the band that matters, background rejection as the field plots it, and infeasible nets drawn apart."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from qapbo.compare.figures import AUC_SPAN, bkg_eff_figure, efficiency_figure, fronts_figure
from qapbo.compare.report import compare
from qapbo.compare.results import StudyResult

CLASSES = ("g", "q", "w", "z", "t")


def _t(auc, cost, number, state=TrialState.COMPLETE, eff=0.05, **params):
    dists = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
    t = optuna.trial.create_trial(
        state=state, values=[auc, cost] if state == TrialState.COMPLETE else None, params=params, distributions=dists,
        user_attrs={"seconds": 1.0, "epochs": 2, "sparsity": params.get("level", 0) / 10,
                    "bkg_eff_at_sig50": {c: eff for c in CLASSES}, "network_efficiency": 0.3, "aiq": 0.5},
        constraints={"min_auc": 0.55 - auc} if auc is not None else None)
    t.number = number
    return t


def _cmp(extra=()):
    search = StudyResult("s-search", "search", [_t(0.88, 1e4, 0), _t(0.86, 3e3, 1), _t(0.64, 1e3, 2)],
                         synthetic=False, compute_only=[_t(None, None, 3, TrialState.PRUNED)])
    # two QAP chains whose levels land on the same points: one label per spot, not "80%80%"
    qap = StudyResult("s-qap", "qap", [_t(0.87 - 0.002 * lvl, 1e5 / (1 + lvl), 4 + lvl + 10 * b, precision=bits,
                                          mode="ft", seed=0, level=lvl)
                                       for b, bits in enumerate((6, 8)) for lvl in range(4)], synthetic=False)
    return compare([search, qap, *extra])


def test_fronts_legend_counts_what_the_table_counts_and_labels_never_overlap():
    cmp = _cmp()
    fig = fronts_figure(cmp)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "s-search front (3 on it of 4 trials; 1 stopped early)" in legend, legend
    assert {r["study"]: r["trained"] for r in cmp.rows}["s-search"] == 4  # the table's count
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [a.get_window_extent(renderer) for a in ax.texts if a.get_text().endswith("%")]
    assert 3 <= len(boxes) < 6  # 6 levels with labels, 3 spots shared by both chains
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_the_auc_axis_covers_the_fronts_band_and_marks_what_falls_below():
    ax = fronts_figure(_cmp()).axes[0]
    lo, hi = ax.get_ylim()
    assert lo >= 0.88 - AUC_SPAN and hi <= 0.89 + 1e-9  # not down to 0.5 for one 0.64 point
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(x.startswith(f"below AUC {lo:.3f}, off the axis (1;") for x in legend), legend


def test_background_rejection_one_row_of_five_log_panels():
    fig = bkg_eff_figure(_cmp())
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 5 and len(fig.axes) == 5  # no empty slots
    assert all(ax.get_yscale() == "log" for ax in shown)
    assert "rejection" in shown[0].get_ylabel() and "no background jet passed" not in fig._suptitle.get_text()
    ys = [y for ln in shown[0].get_lines() for y in ln.get_ydata()]
    assert min(ys) == 20.0 and max(ys) == 20.0  # 1 / 0.05, on a per-panel axis
    perfect = StudyResult("p-search", "search", [_t(0.999, 1e4, 0, eff=0.0)], synthetic=False)
    assert "no background jet passed" in bkg_eff_figure(compare([perfect]))._suptitle.get_text()


def test_efficiency_draws_infeasible_nets_apart():
    fig = efficiency_figure(_cmp())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "below min AUC: infeasible (0)" not in labels and "s-search" in labels
    low = StudyResult("l-search", "search", [_t(0.88, 1e4, 0), _t(0.52, 1e3, 1)], synthetic=False)
    labels = [t.get_text() for t in efficiency_figure(compare([low])).axes[0].get_legend().get_texts()]
    assert "below min AUC: infeasible (1)" in labels


def test_hypervolume_history_is_drawn_against_flops_when_every_study_counted_them():
    from qapbo.compare.figures import hypervolume_figure

    def t(auc, cost, number, flops):
        tr = optuna.trial.create_trial(values=[auc, cost], user_attrs={"epochs": 1, "seconds": 9.0, "flops": flops})
        tr.number = number
        return tr

    a = StudyResult("a", "search", [t(0.8, 1e3, 0, 1e9), t(0.9, 1e4, 1, 2e9)], synthetic=False)
    ax = hypervolume_figure(compare([a])).axes[0]
    assert ax.get_xlabel() == "cumulative training FLOPs (qapbo-train-flops-v1)"
    assert list(ax.get_lines()[0].get_xdata()) == [0.0, 1e9, 3e9]
    ax = hypervolume_figure(_cmp()).axes[0]  # trials without FLOPs: wall seconds, said so
    assert ax.get_xlabel() == "cumulative training time (wall s; no FLOPs recorded)"
