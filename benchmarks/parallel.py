#!/usr/bin/env python
"""Search throughput with 1 and 2 workers on one machine, and the per-trial overhead of Optuna.

Runs the same search study (fresh SQLite storage each time) with 1 worker, then with 2 worker
processes (one torch thread each), and prints trials per hour and their ratio (target >= 1.8x on
two cores). Then, from the 1-worker run, the per-trial overhead of sampler plus storage: wall time
of the run minus the time spent training and measuring networks, as a share of the trial time
(target < 2 %).

    python benchmarks/parallel.py                 # 12 trials per configuration
    python benchmarks/parallel.py --trials 6 --rows 10000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch

from qapbo.study import search as qsearch
from qapbo.study.file import load_study_file
from qapbo.study.workers import run_workers

STUDY = """
name = "bench-parallel"
seed = 0
[data]
n_rows = {rows}
[train]
epochs = {epochs}
patience = {epochs}
lr = 0.003
batch_size = 256
[search]
sampler = "tpe"
n_trials = {trials}
[search.space]
n_layers = 3
width = {{ choices = [24, 32] }}
bits = {{ choices = [4, 6, 8] }}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"study: {args.trials} trials, {args.rows} synthetic jets, {args.epochs} epochs per trial, "
          "widths 24/32 x 3 layers, 4/6/8 bits; 1 torch thread per worker")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-parallel.toml"
        path.write_text(STUDY.format(rows=args.rows, epochs=args.epochs, trials=args.trials))
        study = load_study_file(path)

        # 1 worker, in this process, with the compute part of every trial timed.
        compute = [0.0]
        original = qsearch.Objective._train

        def timed(self, trial, cand):
            t0 = time.perf_counter()
            try:
                return original(self, trial, cand)
            finally:
                compute[0] += time.perf_counter() - t0

        loading = [0.0]
        original_load = qsearch.load_data

        def timed_load(cfg):
            t0 = time.perf_counter()
            try:
                return original_load(cfg)
            finally:
                loading[0] += time.perf_counter() - t0

        qsearch.Objective._train = timed
        qsearch.load_data = timed_load
        t0 = time.perf_counter()
        qsearch.run_search(study, storage=f"sqlite:///{tmp}/one.db", progress=False, log=lambda m: None)
        one = time.perf_counter() - t0
        qsearch.Objective._train = original
        qsearch.load_data = original_load

        t0 = time.perf_counter()
        run_workers(study, 2, storage=f"sqlite:///{tmp}/two.db", progress=False, log=lambda m: None)
        two = time.perf_counter() - t0

        s1 = optuna.load_study(study_name="bench-parallel-search", storage=f"sqlite:///{tmp}/one.db")
        s2 = optuna.load_study(study_name="bench-parallel-search", storage=f"sqlite:///{tmp}/two.db")
        n1 = sum(t.state.name == "COMPLETE" for t in s1.trials)
        n2 = sum(t.state.name == "COMPLETE" for t in s2.trials)
        # steady state: from the first trial's start to the last trial's end (no process start-up)
        span1 = (max(t.datetime_complete for t in s1.trials) - min(t.datetime_start for t in s1.trials)).total_seconds()
        span2 = (max(t.datetime_complete for t in s2.trials) - min(t.datetime_start for t in s2.trials)).total_seconds()
        per_trial = (one - loading[0]) / n1  # loading the data once is not a per-trial cost
        overhead = (one - loading[0] - compute[0]) / n1
    print(f"1 worker : {n1} trials in {one:6.1f} s = {3600 * n1 / one:7.1f} trials/hour")
    print(f"2 workers: {n2} trials in {two:6.1f} s = {3600 * n2 / two:7.1f} trials/hour "
          "(includes starting 2 fresh processes)")
    print(f"ratio 2 workers / 1 worker: {(n2 / two) / (n1 / one):.2f}x wall clock with start-up; "
          f"{(n2 / span2) / (n1 / span1):.2f}x from first trial start to last trial end  (target >= 1.8x)")
    print(f"data loaded once in {loading[0]:.2f} s; per-trial time {per_trial:.2f} s, "
          f"of which training + measuring {compute[0] / n1:.2f} s; "
          f"sampler + storage + loop overhead {overhead * 1000:.0f} ms = {100 * overhead / per_trial:.1f} % "
          "(target < 2 %)")


if __name__ == "__main__":
    sys.exit(main())
