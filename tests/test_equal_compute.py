"""Equal-compute comparison against hand-computed values, on a storage written by hand with Optuna.

Reference point: AUC 0.5 and BOPs 1e6 (the power of ten above the largest BOPs, 1e5), so a point
(auc, 10**k) alone dominates (6 - k) x (auc - 0.5).

- s-search: #0 (0.80, 1e3) 10 epochs 5 s; #1 PRUNED 3 epochs 2 s; #2 (0.90, 1e4) 10 epochs 6 s;
  #3 FAIL (its 100 s never count); #4 (0.52, 1e2) below min AUC 0.55, 10 epochs 4 s.
  Totals 33 epochs, 17 s. Hypervolume: 0.9 after #0 ([3,6] x 0.3), 1.1 after #2 ([3,4] x 0.3 + [4,6] x 0.4).
- s-qap: levels (0.85, 1e5) 6 ep 5 s, (0.83, 1e4) 4 ep 3 s, (0.80, 1e3) 4 ep 3 s. Totals 14 epochs, 11 s.
  Hypervolume 0.35, then 0.33 + 0.35 = 0.68, then + 0.30 = 0.98.
- s-refine of [s-search, gone-search] (gone-search is not stored): level 0 (0.90, 1e4) 0 ep 0 s, level 1
  (0.89, 1e3) 5 ep 4 s. Totals 33 + 5 = 38 epochs, 17 + 4 = 21 s; its history starts at 17 s.
  Hypervolume 0.8 (2 x 0.4) at 17 s, then 0.39 + 0.8 = 1.19 at 21 s.
"""

import json

import optuna
import pytest
from matplotlib.lines import Line2D
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from qapbo.cli import main
from qapbo.compare.compute import hypervolume_at, hypervolume_history
from qapbo.compare.figures import fronts_figure, hypervolume_figure, plot_hypervolume
from qapbo.compare.report import compare
from qapbo.compare.results import load_results

DIRS = ["maximize", "minimize"]
X = {"x": FloatDistribution(0, 1)}


def _done(auc, bops, epochs, seconds, **params):
    return optuna.trial.create_trial(values=[auc, bops], params={"x": 0.5, **params},
                                     distributions={**X, **{k: FloatDistribution(0, 100) for k in params}},
                                     user_attrs={"epochs": epochs, "seconds": seconds, "bops": bops})


def _study(url, name, kind, **attrs):
    s = optuna.create_study(study_name=name, storage=url, directions=DIRS)
    s.set_user_attr("qapbo_kind", kind)
    s.set_user_attr("qapbo_min_auc", 0.55)
    for k, v in attrs.items():
        s.set_user_attr(k, v)
    return s


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('ec')}/results.db"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    s = _study(url, "s-search", "search")
    s.add_trial(_done(0.80, 1e3, 10, 5.0))
    s.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, params={"x": 0.1}, distributions=X,
        user_attrs={"epochs": 3, "seconds": 2.0, "kind": "search", "intermediate_val_auc": [0.5, 0.52, 0.51],
                    "stop_reason": "epoch 3: best validation AUC 0.52 + margin 0.04 cannot reach trial 0's validation AUC 0.80"}))
    s.add_trial(_done(0.90, 1e4, 10, 6.0))
    s.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"epochs": 50, "seconds": 100.0}))
    s.add_trial(_done(0.52, 1e2, 10, 4.0))
    q = _study(url, "s-qap", "qap")
    for level, (auc, bops, ep, sec) in enumerate([(0.85, 1e5, 6, 5.0), (0.83, 1e4, 4, 3.0), (0.80, 1e3, 4, 3.0)]):
        q.add_trial(_done(auc, bops, ep, sec, level=level, precision=6))
    r = _study(url, "s-refine", "refine", qapbo_refine_of=["s-search", "gone-search"])
    r.add_trial(_done(0.90, 1e4, 0, 0.0, level=0))
    r.add_trial(_done(0.89, 1e3, 5, 4.0, level=1))
    return url


@pytest.fixture(scope="module")
def results(url):
    return {r.name: r for r in load_results(url)}


def test_pruned_trials_add_time_but_no_point(results):
    s = results["s-search"]
    assert [t.number for t in s.trials] == [0, 2, 4] and [t.number for t in s.pruned] == [1]
    assert (s.epochs, s.seconds) == (33, 17.0)  # the FAIL trial's 100 s never count
    hist = hypervolume_history(s, (0.5, 1e6))
    assert [h.number for h in hist] == [-1, 0, 1, 2, 4]
    assert [h.seconds for h in hist] == [0.0, 5.0, 7.0, 13.0, 17.0]
    assert [h.epochs for h in hist] == [0, 10, 13, 23, 33]
    assert [h.point for h in hist] == [False, True, False, True, True]
    assert [h.hypervolume for h in hist] == pytest.approx([0.0, 0.9, 0.9, 1.1, 1.1])
    # without the stopped trial's 2 s, #2 would have finished by 11 s
    assert hypervolume_at(hist, seconds=11.0) == pytest.approx(0.9)
    assert hypervolume_at(hist, seconds=13.0) == pytest.approx(1.1)
    assert hypervolume_at(hist, epochs=22) == pytest.approx(0.9)


def test_refine_compute_includes_its_source(results):
    r = results["s-refine"]
    assert r.refine_of == ["s-search", "gone-search"] and r.missing_sources == ["gone-search"]
    assert (r.source_epochs, r.source_seconds) == (33, 17.0)
    assert (r.epochs, r.seconds) == (38, 21.0)
    hist = hypervolume_history(r, (0.5, 1e6))
    assert [(h.seconds, h.epochs) for h in hist] == [(17.0, 33), (17.0, 33), (21.0, 38)]
    assert [h.hypervolume for h in hist] == pytest.approx([0.0, 0.8, 1.19])
    assert hypervolume_at(hist, seconds=16.9) == 0.0  # nothing refined before its search ended


def test_qap_history_is_level_by_level(results):
    hist = hypervolume_history(results["s-qap"], (0.5, 1e6))
    assert [h.seconds for h in hist] == [0.0, 5.0, 8.0, 11.0]
    assert [h.hypervolume for h in hist] == pytest.approx([0.0, 0.35, 0.68, 0.98])


def test_equal_compute_pairs_by_hand(results):
    cmp = compare([results["s-search"], results["s-qap"], results["s-refine"]])
    assert cmp.ref == (0.5, 1e6)
    pairs = {(p["a"], p["b"]): p for p in cmp.equal_compute}
    p = pairs["s-search", "s-qap"]
    assert (p["cheaper"], p["budget_seconds"]) == ("s-qap", 11.0)
    assert (p["cheaper_in_epochs"], p["budget_epochs"]) == ("s-qap", 14)
    assert (p["hv_a_at_seconds"], p["hv_b_at_seconds"]) == pytest.approx((0.9, 0.98))
    assert (p["hv_a_at_epochs"], p["hv_b_at_epochs"]) == pytest.approx((0.9, 0.98))
    # the refined study contains its search: that pair would compare the pipeline with its own first half
    assert ("s-search", "s-refine") not in pairs and len(pairs) == 2
    p = pairs["s-qap", "s-refine"]
    assert (p["cheaper"], p["budget_seconds"], p["hv_a_at_seconds"], p["hv_b_at_seconds"]) == ("s-qap", 11.0, 0.98, 0.0)
    assert p["b_starts_at"] == {"seconds": 17.0, "epochs": 33, "flops": None}  # stored without FLOPs
    assert p["budget_flops"] is None
    rows = {r["study"]: r for r in cmp.rows}
    assert (rows["s-search"]["trials"], rows["s-search"]["stopped_early"], rows["s-search"]["infeasible"]) == (3, 1, 1)
    assert rows["s-search"]["trained"] == 4  # 3 with a point and 1 stopped early
    assert (rows["s-refine"]["epochs"], rows["s-refine"]["own_epochs"]) == (38, 5)
    assert rows["s-refine"]["own_seconds"] == pytest.approx(4.0)
    md = cmp.to_markdown()
    assert "| s-search | search | 4 | 2 |" in md  # trained, front
    assert "| s-search | search | 4 | 1 | 2 | 1 |" in cmp.to_markdown(wide=True)  # ... stopped early, below min AUC
    assert "| 38 (5) | — | 21 (4) |" in md and "refines gone-search, which this storage does not hold" in md
    assert "| s-search | s-qap | 11 s (wall) | 0.9000 | 0.9800 | 14 | 0.9000 | 0.9800 |" in md
    assert "At the 11 s (wall) s-qap spent, s-search had reached hypervolume 0.9000 against s-qap's 0.9800." in md
    # not "hypervolume 0.0000": the refined study had not begun at the 11 s QAP spent
    assert "| s-qap | s-refine | 11 s (wall) | 0.9800 | n/a | 14 | 0.9800 | n/a |" in md
    assert ("At the 11 s (wall) s-qap spent (hypervolume 0.9800), s-refine had not begun: it starts after its "
            "searches' 17 s.") in md
    assert "0.0000" not in md


def test_compare_json_through_the_cli(url, tmp_path, capsys):
    assert main(["compare", "--storage", url, "--json", "--out", str(tmp_path / "figs")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["study"] for r in out["studies"]] == ["s-search", "s-qap", "s-refine"]
    assert [(p["a"], p["b"], p["cheaper"]) for p in out["equal_compute"]] == [
        ("s-search", "s-qap", "s-qap"), ("s-qap", "s-refine", "s-qap")]
    p = out["equal_compute"][1]
    assert p["budget_seconds"] == 11.0 and p["hv_a_at_seconds"] == pytest.approx(0.98)
    assert p["hv_b_at_seconds"] == 0.0 and p["b_starts_at"]["seconds"] == 17.0
    assert out["studies"][2]["missing_sources"] == ["gone-search"]
    assert (tmp_path / "figs" / "hypervolume.png").stat().st_size > 10_000


def _lines(ax, name):
    return [ln for ln in ax.get_lines() if ln.get_label().startswith(name)]


def test_hypervolume_figure_draws_every_study_as_a_curve(results, tmp_path):
    cmp = compare(list(results.values()))
    fig = hypervolume_figure(cmp)
    ax_t, ax_e = fig.axes[:2]
    (qap,) = _lines(ax_t, "s-qap")
    assert isinstance(qap, Line2D) and list(qap.get_xdata()) == [0.0, 5.0, 8.0, 11.0]  # a curve, not a level line
    assert list(qap.get_ydata()) == pytest.approx([0.0, 0.35, 0.68, 0.98])
    assert qap.get_linestyle() == "--"
    (refine,) = _lines(ax_t, "s-refine")
    assert refine.get_xdata()[0] == 17.0 and "refined" in refine.get_label()
    assert refine.get_color() != _lines(ax_t, "s-search")[0].get_color()
    (search_e,) = _lines(ax_e, "s-search")
    assert list(search_e.get_xdata()) == [0, 10, 13, 23, 33]
    stopped = [c for c in ax_t.collections if c.get_label().startswith("stopped early")]
    assert stopped[0].get_offsets().tolist() == [[7.0, pytest.approx(0.9)]]
    paths = plot_hypervolume(cmp, tmp_path)
    assert [p.name for p in paths] == ["hypervolume.png", "hypervolume.pdf"]
    assert paths[1].read_bytes().startswith(b"%PDF")


def test_fronts_figure_draws_a_refined_study_apart(results):
    fig = fronts_figure(compare(list(results.values())))
    (refined,) = [ln for ln in fig.axes[0].get_lines() if "refined front" in ln.get_label()]
    assert refined.get_label().startswith("s-refine") and refined.get_marker() == "D"
    (search,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("s-search front")]
    assert search.get_marker() != "D" and search.get_color() != refined.get_color()


def test_a_chain_of_refines_counts_every_source_once(tmp_path):
    url = f"sqlite:///{tmp_path}/chain.db"
    s = _study(url, "a-search", "search")
    s.add_trial(_done(0.80, 1e3, 10, 5.0))
    r1 = _study(url, "a-refine", "refine", qapbo_refine_of=["a-search"])
    r1.add_trial(_done(0.82, 1e3, 4, 2.0))
    r2 = _study(url, "a-refine2", "refine", qapbo_refine_of=["a-refine", "a-search", "a-refine2"])
    r2.add_trial(_done(0.83, 1e3, 1, 0.5))
    r = {x.name: x for x in load_results(url)}
    # a-refine2: its own 1 epoch + a-refine's 4 + a-search's 10 (named twice, counted once; itself never)
    assert (r["a-refine2"].source_epochs, r["a-refine2"].source_seconds) == (14, 7.0)
    assert (r["a-refine2"].epochs, r["a-refine2"].seconds, r["a-refine2"].missing_sources) == (15, 7.5, [])
    assert (r["a-refine"].epochs, r["a-search"].epochs) == (14, 10)


def test_equal_compute_is_in_flops_when_every_trial_recorded_them():
    from qapbo.compare.report import compare, equal_compute_markdown
    from qapbo.compare.results import StudyResult

    def t(auc, cost, number, flops, seconds):
        tr = optuna.trial.create_trial(values=[auc, cost], user_attrs={"epochs": 1, "seconds": seconds, "flops": flops,
                                                                      "cpu_seconds": seconds / 2})
        tr.number = number
        return tr

    # wall seconds say the search is the cheaper one (a loaded machine); FLOPs say QAP is
    search = StudyResult("s", "search", [t(0.80, 1e3, 0, 4e9, 1.0), t(0.90, 1e4, 1, 4e9, 1.0)], synthetic=False)
    qap = StudyResult("q", "qap", [t(0.85, 1e4, 0, 1e9, 5.0), t(0.88, 1e5, 1, 2e9, 5.0)], synthetic=False)
    assert (search.flops, qap.flops, qap.cpu_seconds) == (8e9, 3e9, 5.0)
    (p,) = compare([search, qap], ref=(0.5, 1e6)).equal_compute
    assert (p["cheaper"], p["budget_seconds"]) == ("s", 2.0)
    assert (p["cheaper_in_flops"], p["budget_flops"]) == ("q", 3e9)
    # by 3e9 FLOPs the search had finished nothing (its first trial took 4e9): hypervolume 0
    assert p["hv_a_at_flops"] == 0.0 and p["hv_b_at_flops"] == pytest.approx(0.35 * 2 + 0.03 * 1)
    md = equal_compute_markdown([p])
    assert "| s | q | 3e+09 FLOPs | 0.0000 | 0.7300 |" in md
    assert "At the 3e+09 FLOPs q spent, s had reached hypervolume 0.0000 against q's 0.7300." in md
