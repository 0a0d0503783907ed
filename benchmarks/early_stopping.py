#!/usr/bin/env python
"""Early stopping of search trials: the same final hypervolume for less training time?

For each seed, the quickstart search space runs twice with the same trial budget, once with
``[search] early_stop = true`` and once with ``false``, each in its own temporary SQLite storage
(``--jobs 2`` runs two at a time in separate processes). Printed:

* per run: final hypervolume (test AUC, log10 BOPs; one reference point for every run), total
  training seconds and epochs (the ``seconds``/``epochs`` of COMPLETE and PRUNED trials), trials pruned;
* hypervolume against cumulative training seconds (median over seeds at a few time points;
  ``--out`` also draws every run's curve to a PNG);
* the training time each mode needs to reach the no-stopping median final hypervolume, and
  their ratio; whether the with-stopping final hypervolumes lie within the no-stopping seed spread.

Target (issue 13): the same final hypervolume (within the seed spread) at <= 60 % of the training time.

    python benchmarks/early_stopping.py --synthetic                    # 5 seeds x 24 trials x 2 modes
    python benchmarks/early_stopping.py --synthetic --rows 4000 --seeds 2 --trials 8   # a quick look
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = (("stop", True), ("no stop", False))


def run_one(path: str, synthetic: bool, rows: int | None, seed: int, trials: int, early_stop: bool) -> dict:
    """One search in a fresh temporary storage: its stored result (COMPLETE and PRUNED trials) and wall time."""
    warnings.filterwarnings("ignore")
    import optuna

    from qapbo.compare.results import load_results
    from qapbo.study.file import load_study_file
    from qapbo.study.search import run_search

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study_file(path, synthetic=synthetic, rows=rows)
    study = replace(study, seed=study.seed + seed, storage=None, artifacts=None,
                    search=replace(study.search, n_trials=trials, early_stop=early_stop))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        (ostudy,) = run_search(study, storage=f"sqlite:///{tmp}/bench.db", progress="none")
        wall = time.perf_counter() - t0
        (result,) = load_results(f"sqlite:///{tmp}/bench.db", [ostudy.study_name])
    return {"seed": seed, "early_stop": early_stop, "result": result, "wall": wall}


def curve(run: dict, ref: tuple[float, float]) -> list:
    """The hypervolume after every finished trial against cumulative training: qapbo compare's history."""
    from qapbo.compare.compute import hypervolume_history

    return hypervolume_history(run["result"], ref)


def hv_at(c: list, seconds: float) -> float:
    from qapbo.compare.compute import hypervolume_at

    return hypervolume_at(c, seconds=seconds)


def time_to(curves: list[list], target: float) -> float:
    """Training seconds until the median (over seeds) hypervolume first reaches ``target`` (inf if never)."""
    for s in sorted({h.seconds for c in curves for h in c}):
        if statistics.median(hv_at(c, s) for c in curves) >= target - 1e-12:
            return s
    return math.inf


def first_reach(c: list, target: float) -> float:
    """Training seconds until one run's hypervolume first reaches ``target`` (inf if never)."""
    return next((h.seconds for h in c if h.hypervolume >= target - 1e-12), math.inf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=str(ROOT / "studies" / "quickstart.toml"), help="study file (its [search])")
    ap.add_argument("--synthetic", action="store_true", help="synthetic jets instead of the file's data")
    ap.add_argument("--rows", type=int, default=None, help="rows of synthetic data (default: the file's n_rows)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=None, help="trial budget per run (default: the file's n_trials)")
    ap.add_argument("--jobs", type=int, default=1, choices=(1, 2), help="runs at a time, one process each")
    ap.add_argument("--out", default=None, help="PNG of hypervolume against training seconds")
    ap.add_argument("--tolerance", type=float, default=0.001,
                    help="relative shortfall of the target hypervolume still counted as reached (default 0.001)")
    ap.add_argument("--save", default=None, help="pickle the runs' stored results here (to report again with --load)")
    ap.add_argument("--load", default=None, help="report on runs saved with --save instead of running")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.load:
        with open(args.load, "rb") as f:
            report(pickle.load(f), args.out, args.tolerance)
        return
    from qapbo.study.file import load_study_file

    study = load_study_file(args.study, synthetic=args.synthetic, rows=args.rows)
    trials = args.trials or study.search.n_trials
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; study {study.path}, data {study.data.source} "
          f"({study.data.n_rows} rows); {args.seeds} seeds x {trials} trials x 2 modes; {args.jobs} at a time")
    jobs = [(args.study, args.synthetic, args.rows, seed, trials, on) for seed in range(args.seeds) for _, on in MODES]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
        runs = []
        for run in pool.map(run_one, *zip(*jobs)):  # in order; one line per run, so a long benchmark shows progress
            runs.append(run)
            print(f"  run {len(runs)}/{len(jobs)}: seed {run['seed']} {'stop' if run['early_stop'] else 'no stop'} "
                  f"done ({run['wall']:.0f} s wall)", file=sys.stderr, flush=True)
    print(f"all runs: {time.perf_counter() - t0:.0f} s wall\n")
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump(runs, f)
    report(runs, args.out, args.tolerance)


def report(runs: list[dict], out: str | None, tolerance: float = 0.001) -> None:
    from qapbo.compare.fronts import reference_point

    if not any(r["result"].trials for r in runs):
        sys.exit("no finished trial in any run: nothing to compare")
    ref = reference_point([r["result"] for r in runs if r["result"].trials])  # one for every run
    curves = {id(r): curve(r, ref) for r in runs}
    by_mode = {on: [r for r in runs if r["early_stop"] == on] for _, on in MODES}
    print(f"reference point: AUC {ref[0]}, BOPs {ref[1]:.0e}")
    print(f"{'seed':>4} {'mode':>8} {'final HV':>9} {'train s':>8} {'epochs':>7} {'pruned':>7} {'trials':>7}")
    for r in runs:
        c = curves[id(r)]
        res = r["result"]
        print(f"{r['seed']:>4} {'stop' if r['early_stop'] else 'no stop':>8} {c[-1].hypervolume:>9.4f} {c[-1].seconds:>8.1f} "
              f"{res.epochs:>7} {len(res.pruned):>7} {len(res.trials) + len(res.compute_only):>7}")
    final = {on: [curves[id(r)][-1].hypervolume for r in rs] for on, rs in by_mode.items()}
    total = {on: [curves[id(r)][-1].seconds for r in rs] for on, rs in by_mode.items()}
    base_total = statistics.median(total[False])
    print("\nhypervolume against cumulative training seconds (median over seeds)")
    print(f"{'seconds':>8} " + " ".join(f"{name:>9}" for name, _ in MODES))
    for frac in (0.1, 0.25, 0.5, 0.6, 0.75, 1.0):
        s = frac * base_total
        print(f"{s:>8.1f} " + " ".join(f"{statistics.median(hv_at(curves[id(r)], s) for r in by_mode[on]):>9.4f}"
                                       for _, on in MODES))
    target = statistics.median(final[False])
    lo, hi = min(final[False]), max(final[False])
    within = [v >= lo - 1e-12 for v in final[True]]  # above the spread counts as within: no loss
    print(f"\ntarget: the no-stopping median final hypervolume {target:.4f} (seed spread {lo:.4f} .. {hi:.4f})")
    ratio = math.inf
    # exact, then within a stated tolerance: a final HV 0.0003 short of the target must not read as "never"
    for tol in (0.0, tolerance):
        goal = target * (1.0 - tol)
        reach = {on: time_to([curves[id(r)] for r in rs], goal) for on, rs in by_mode.items()}
        r_ = reach[True] / reach[False] if math.isfinite(reach[True]) and reach[False] > 0 else math.inf
        ratio = r_ if tol == tolerance else ratio
        print(f"  median curves reaching {goal:.4f} ({'exactly' if tol == 0 else f'target - {tol:.1%}'}): "
              + "; ".join(f"{name} after {reach[on]:.1f} s" for name, on in MODES) + f"; ratio {r_:.2f}")
    paired = []
    for r in by_mode[True]:  # each seed against its own no-stopping run: the same first trials, so a fair pair
        base = next(b for b in by_mode[False] if b["seed"] == r["seed"])
        goal = curves[id(base)][-1].hypervolume * (1.0 - tolerance)
        t_stop, t_base = first_reach(curves[id(r)], goal), first_reach(curves[id(base)], goal)
        paired.append(t_stop / t_base if t_base > 0 else math.inf)
    print(f"  per seed, time to reach its no-stopping run's final HV (- {tolerance:.1%}), stop / no stop: "
          + " ".join(f"{p:.2f}" for p in paired) + f" (median {statistics.median(paired):.2f})")
    print(f"total training time ratio (median stop / median no stop): {statistics.median(total[True]) / base_total:.2f}; "
          "per seed: " + " ".join(f"{curves[id(r)][-1].seconds / curves[id(b)][-1].seconds:.2f}" for r in by_mode[True]
                                  for b in by_mode[False] if b["seed"] == r["seed"]))
    pairs = [(r["result"], b["result"]) for r in by_mode[True] for b in by_mode[False] if b["seed"] == r["seed"]]
    print("total epochs ratio per seed (machine-independent; seconds vary with load): "
          + " ".join(f"{a.epochs / b.epochs:.2f}" for a, b in pairs)
          + f" (median {statistics.median(a.epochs / b.epochs for a, b in pairs):.2f})")
    print(f"with-stopping final hypervolumes within (or above) the no-stopping spread: {sum(within)}/{len(within)}")
    ok = all(within) and ratio <= 0.6
    print(f"issue 13 target (same final HV within the spread, <= 60 % of the time): {'MET' if ok else 'NOT met'}")
    if out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            s, hv = [h.seconds for h in curves[id(r)]], [h.hypervolume for h in curves[id(r)]]
            ax.step(s, hv, where="post", color="C0" if r["early_stop"] else "C1", alpha=0.7,
                    label=("early stop" if r["early_stop"] else "no early stop") if r["seed"] == 0 else None)
        ax.axhline(target, color="grey", ls=":", label="no-stop median final HV")
        ax.set_xlabel("cumulative training seconds")
        ax.set_ylabel(f"hypervolume (AUC, log10 BOPs), ref {ref[1]:.0e}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        print(f"figure: {out}")


if __name__ == "__main__":
    main()
