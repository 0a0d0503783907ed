"""qapbo's learned precision against HGQ2 at equal training CPU-seconds, on the quickstart split.

Issue 22 asks whether qapbo's own learned per-weight precision, trained as one chain (a beta ramp
keeping its Pareto checkpoints, ``[learned]``) or searched by Optuna (``precision = "learned"``),
beats one HGQ2 run (``[hgq]``) at the same compute. This runs the three on the quickstart's data
(``studies/quickstart.toml``: 20,000 pythia-jets, seed 0, the same split for all three) through
the library's own study runners, HGQ2 first: its training CPU-seconds are the budget. The search
gets that many seconds as its timeout (one torch thread: its CPU-seconds are at most its wall
seconds); the chain trains as the quickstart's ``[learned]`` says. Every method is then read back
from storage and judged on the points it had stored within the budget's CPU-seconds
(:func:`qapbo.compare.compute.points_within`), with the comparison's own hypervolume (AUC, log10
LUTs; reference AUC 0.5 and 1e6 LUTs, as ``qapbo compare --cost luts`` draws this split), targets
and budgets.

    python benchmarks/learned_vs_hgq2.py                      # about 10-15 CPU-minutes with costing
    python benchmarks/learned_vs_hgq2.py --storage sqlite:///runs/bench.db   # rerun: resumes, then prints

Needs ``qapbo[hgq]`` (HGQ2, JAX) and ``qapbo[hw]`` (da4ml's LUTs).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

QUICKSTART = Path(__file__).parents[1] / "studies" / "quickstart.toml"
REF = (0.5, 1e6)  # AUC, LUTs: qapbo compare's reference for this split's fronts
TARGETS = (0.85, 0.87)
BUDGETS = (2_000, 5_000)

#: The search over learned precision: the README's learned space, with the budget set at run time.
SEARCH = """
[train]
epochs = 200
patience = 30
batch_size = 1024

[search]
sampler = "tpe"
n_trials = 1000

[search.space]
precision = "learned"
n_layers = { low = 1, high = 3 }
width = { low = 8, high = 64, log = true }
beta = { low = 1e-6, high = 3e-4, log = true }
init_bits = { low = 2, high = 5 }
bits_lr = 2e-2
lr = 1e-3

[objectives]
auc = "maximize"
luts = "minimize"
"""


def study_text(name: str) -> str:
    """The benchmark's study file: the quickstart's seed, data, [hgq] and [learned], and the learned search."""
    q = tomllib.loads(QUICKSTART.read_text())

    def table(sec: str) -> str:
        return f"[{sec}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in q[sec].items())

    return f'name = "{name}"\nseed = {q["seed"]}\n\n' + "\n".join(table(s) for s in ("data", "hgq", "learned")) + SEARCH


def _toml(v: object) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default="sqlite:///runs/learned-vs-hgq2.db")
    p.add_argument("--name", default="learned-vs-hgq2")
    args = p.parse_args()

    from qapbo.compare.compute import points_within
    from qapbo.compare.fronts import best_auc_within, hypervolume, min_cost_at_auc
    from qapbo.compare.results import load_results
    from qapbo.study.file import parse_study
    from qapbo.study.pipeline import run_section
    from qapbo.study.storage import open_storage

    study = parse_study(study_text(args.name), f"<{args.name}>")
    log = print
    hgq = run_section("hgq", study, storage=args.storage, progress="lines", log=log)[0]
    budget = stored_cpu(args.storage, hgq.study_name)  # HGQ2's whole run: the budget of the other two
    run_section("learned", study, storage=args.storage, progress="lines", log=log)
    search_name = study.search.studies(study.name)[0][0]
    spent = stored_cpu(args.storage, search_name)
    if spent < budget:  # a rerun continues a search that stopped short of the budget
        run_section("search", study, storage=args.storage, progress="lines", log=log, timeout=budget - spent)

    names = {search_name: "qapbo search (learned)", study.learned_study_name: "qapbo chain (learned)",
             study.hgq_study_name: "HGQ2"}
    results = {r.name: r for r in load_results(open_storage(args.storage, read_only=True), list(names), cost="luts")}
    print(f"\nquickstart split ({results[hgq.study_name].data_note}); budget {budget:.0f} training CPU-seconds "
          "(HGQ2's whole run): each method judged on the points it had stored within them")
    head = ("method", "LUT hypervolume", *(f"min LUTs @ AUC >= {a}" for a in TARGETS),
            *(f"best AUC @ <= {b:,} LUTs" for b in BUDGETS), "CPU-s of training (all)", "points in budget (all)")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, method in names.items():
        r = results[name]
        pts = points_within(r, cpu_seconds=budget)
        cells = (f"{hypervolume(pts, REF):.3f}", *(_n(min_cost_at_auc(pts, a)) for a in TARGETS),
                 *(_a(best_auc_within(pts, b)) for b in BUDGETS), f"{r.cpu_seconds or 0:.0f}",
                 f"{len(pts)} ({len(r.trials)})")
        print(f"| {method} | " + " | ".join(cells) + " |")


def stored_cpu(storage: str, name: str) -> float:
    """Training CPU-seconds a stored study has spent (0 before it exists)."""
    import optuna

    from qapbo.records import FINISHED

    try:
        s = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0.0
    return sum(float(t.user_attrs.get("cpu_seconds", 0.0)) for t in s.get_trials(deepcopy=False, states=FINISHED))


def _n(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _a(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    main()
