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
    """One search in a fresh temporary storage; its trials as plain tuples (state, seconds, epochs, auc, bops, ok)."""
    warnings.filterwarnings("ignore")
    import optuna

    from qapbo.pareto import is_feasible
    from qapbo.search import run_search
    from qapbo.studyfile import load_study_file

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study_file(path, synthetic=synthetic, rows=rows)
    study = replace(study, seed=study.seed + seed, storage=None, artifacts=None,
                    search=replace(study.search, n_trials=trials, early_stop=early_stop))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        (ostudy,) = run_search(study, storage=f"sqlite:///{tmp}/bench.db", progress="none")
        wall = time.perf_counter() - t0
        rows_out = []
        for t in sorted(ostudy.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state.name not in ("COMPLETE", "PRUNED"):
                continue
            done = t.state.name == "COMPLETE"
            rows_out.append((t.state.name, float(t.user_attrs.get("seconds", 0.0)), int(t.user_attrs.get("epochs", 0)),
                             t.values[0] if done else None, t.values[1] if done else None, done and is_feasible(t)))
    return {"seed": seed, "early_stop": early_stop, "trials": rows_out, "wall": wall}


def curve(run: dict, ref: tuple[float, float]) -> list[tuple[float, float]]:
    """(cumulative training seconds, hypervolume so far) after every trial, in trial order."""
    from qapbo.pareto import hypervolume

    out, pts, spent = [(0.0, 0.0)], [], 0.0
    for state, seconds, _epochs, auc, bops, ok in run["trials"]:
        spent += seconds
        if ok:
            pts.append((auc, bops))
        out.append((spent, hypervolume(pts, ref)))
    return out


def hv_at(c: list[tuple[float, float]], seconds: float) -> float:
    return max(hv for s, hv in c if s <= seconds)


def time_to(curves: list[list[tuple[float, float]]], target: float) -> float:
    """Training seconds until the median (over seeds) hypervolume first reaches ``target`` (inf if never)."""
    for s in sorted({s for c in curves for s, _ in c}):
        if statistics.median(hv_at(c, s) for c in curves) >= target - 1e-12:
            return s
    return math.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=str(ROOT / "studies" / "quickstart.toml"), help="study file (its [search])")
    ap.add_argument("--synthetic", action="store_true", help="synthetic jets instead of the file's data")
    ap.add_argument("--rows", type=int, default=None, help="rows of synthetic data (default: the file's n_rows)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=None, help="trial budget per run (default: the file's n_trials)")
    ap.add_argument("--jobs", type=int, default=1, choices=(1, 2), help="runs at a time, one process each")
    ap.add_argument("--out", default=None, help="PNG of hypervolume against training seconds")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from qapbo.studyfile import load_study_file

    study = load_study_file(args.study, synthetic=args.synthetic, rows=args.rows)
    trials = args.trials or study.search.n_trials
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; study {study.path}, data {study.data.source} "
          f"({study.data.n_rows} rows); {args.seeds} seeds x {trials} trials x 2 modes; {args.jobs} at a time")
    jobs = [(args.study, args.synthetic, args.rows, seed, trials, on) for seed in range(args.seeds) for _, on in MODES]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
        runs = list(pool.map(run_one, *zip(*jobs)))
    print(f"all runs: {time.perf_counter() - t0:.0f} s wall\n")
    report(runs, args.out)


def report(runs: list[dict], out: str | None) -> None:
    bops = [b for r in runs for *_, b, ok in r["trials"] if ok]
    if not bops:
        sys.exit("no feasible trial in any run: nothing to compare")
    ref = (0.5, 10.0 ** math.ceil(math.log10(max(bops)) + 1e-9))  # pareto.reference_point's rule, over all runs
    curves = {id(r): curve(r, ref) for r in runs}
    by_mode = {on: [r for r in runs if r["early_stop"] == on] for _, on in MODES}
    print(f"reference point: AUC {ref[0]}, BOPs {ref[1]:.0e}")
    print(f"{'seed':>4} {'mode':>8} {'final HV':>9} {'train s':>8} {'epochs':>7} {'pruned':>7} {'trials':>7}")
    for r in runs:
        c = curves[id(r)]
        pruned = sum(t[0] == "PRUNED" for t in r["trials"])
        print(f"{r['seed']:>4} {'stop' if r['early_stop'] else 'no stop':>8} {c[-1][1]:>9.4f} {c[-1][0]:>8.1f} "
              f"{sum(t[2] for t in r['trials']):>7} {pruned:>7} {len(r['trials']):>7}")
    final = {on: [curves[id(r)][-1][1] for r in rs] for on, rs in by_mode.items()}
    total = {on: [curves[id(r)][-1][0] for r in rs] for on, rs in by_mode.items()}
    base_total = statistics.median(total[False])
    print("\nhypervolume against cumulative training seconds (median over seeds)")
    print(f"{'seconds':>8} " + " ".join(f"{name:>9}" for name, _ in MODES))
    for frac in (0.1, 0.25, 0.5, 0.6, 0.75, 1.0):
        s = frac * base_total
        print(f"{s:>8.1f} " + " ".join(f"{statistics.median(hv_at(curves[id(r)], s) for r in by_mode[on]):>9.4f}"
                                       for _, on in MODES))
    target = statistics.median(final[False])
    reach = {on: time_to([curves[id(r)] for r in rs], target) for on, rs in by_mode.items()}
    lo, hi = min(final[False]), max(final[False])
    within = [v >= lo - 1e-12 for v in final[True]]  # above the spread counts as within: no loss
    print(f"\ntarget: the no-stopping median final hypervolume {target:.4f} (seed spread {lo:.4f} .. {hi:.4f})")
    for name, on in MODES:
        print(f"  {name:>8}: its median curve reaches it after {reach[on]:.1f} training s; median total "
              f"{statistics.median(total[on]):.1f} s")
    ratio = reach[True] / reach[False] if math.isfinite(reach[True]) and reach[False] > 0 else math.inf
    print(f"time ratio (stop / no stop) to reach it: {ratio:.2f}; total training time ratio "
          f"{statistics.median(total[True]) / base_total:.2f}")
    print(f"with-stopping final hypervolumes within (or above) the no-stopping spread: {sum(within)}/{len(within)}")
    ok = all(within) and ratio <= 0.6
    print(f"issue 13 target (same final HV within the spread, <= 60 % of the time): {'MET' if ok else 'NOT met'}")
    if out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            s, hv = zip(*curves[id(r)])
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
