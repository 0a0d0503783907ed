"""Comparing stored studies (reads storage only, never trains): results, fronts, replicate statistics, equal compute, report tables and figures.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "StudyResult": "qapbo.compare.results",
    "load_results": "qapbo.compare.results",
    "pareto_front": "qapbo.compare.fronts",
    "hypervolume": "qapbo.compare.fronts",
    "attainment_surfaces": "qapbo.compare.fronts",
    "coverage": "qapbo.compare.fronts",
    "min_cost_at_auc": "qapbo.compare.fronts",
    "best_auc_within": "qapbo.compare.fronts",
    "reference_point": "qapbo.compare.fronts",
    "Interval": "qapbo.compare.stats",
    "PairVerdict": "qapbo.compare.stats",
    "median_interval": "qapbo.compare.stats",
    "superiority": "qapbo.compare.stats",
    "rank_test": "qapbo.compare.stats",
    "compare_pair": "qapbo.compare.stats",
    "verdict_sentence": "qapbo.compare.stats",
    "equal_compute": "qapbo.compare.compute",
    "hypervolume_history": "qapbo.compare.compute",
    "hypervolume_at": "qapbo.compare.compute",
    "points_within": "qapbo.compare.compute",
    "Comparison": "qapbo.compare.report",
    "compare": "qapbo.compare.report",
    "compare_stored": "qapbo.compare.report",
    "cost_agreement": "qapbo.compare.report",
    "plot_all": "qapbo.compare.figures",
    "plot": "qapbo.compare.figures",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
