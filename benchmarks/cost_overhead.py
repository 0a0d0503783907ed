"""What measuring the hardware costs adds to a trial, and whether the costs agree.

    python benchmarks/cost_overhead.py [--study studies/quickstart.toml] [--synthetic] [--storage URL]

Runs (or, with --storage, only reads) the study's search and QAP baseline, then prints: the
median da4ml trace time per stored network (``cost_seconds``) against the median trial's
training time, and their ratio (the target is < 10 %); Spearman's rank correlation of BOPs and
LUTs over all stored trials of each study; hypervolume and coverage with fronts drawn in BOPs
and in LUTs, so one sees whether the verdict (QAP or search?) changes with the cost.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from qapbo.compare.report import compare, cost_agreement
from qapbo.compare.results import load_results
from qapbo.study.storage import open_storage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--study", default="studies/quickstart.toml")
    ap.add_argument("--synthetic", action="store_true", help="run on the synthetic jets")
    ap.add_argument("--storage", help="read this storage instead of running the study")
    args = ap.parse_args()
    url = args.storage
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="qapbo-cost-"))
        url = f"sqlite:///{tmp}/bench.db"
        cmd = [sys.executable, "-m", "qapbo.cli", "run", str(Path(args.study).resolve()), "--storage", url,
               "--out", str(tmp / "compare"), "--quiet"] + (["--synthetic"] if args.synthetic else [])
        subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    storage = open_storage(url, read_only=True)
    results = load_results(storage)
    for r in results:
        train_s = [t.user_attrs["seconds"] for t in r.trials if "seconds" in t.user_attrs]
        cost_s = [t.user_attrs["cost_seconds"] for t in r.trials if "cost_seconds" in t.user_attrs]
        if train_s and cost_s:
            a, b = statistics.median(train_s), statistics.median(cost_s)
            print(f"{r.name}: median training {a:.2f} s, median da4ml trace {b:.2f} s per network: "
                  f"overhead {b / a:.1%} ({len(cost_s)} networks)")
        rho = cost_agreement([r], ["bops", "luts"])["correlations"][0]
        print(f"{r.name}: Spearman(BOPs, LUTs) = {rho['spearman']:.3f} over {rho['trials']} trials")
    for cost in ("bops", "luts"):
        cmp = compare(load_results(storage, cost=cost), cost=cost)
        hv = ", ".join(f"{row['study']} {row['hypervolume']:.4f}" for row in cmp.rows)
        cov = ", ".join(f"C({c['a']}, {c['b']}) {c['c_ab']:.2f} / C({c['b']}, {c['a']}) {c['c_ba']:.2f}"
                        for c in cmp.coverage)
        print(f"fronts in {cost}: hypervolume {hv}; coverage {cov}")
    print(f"storage: {url}")


if __name__ == "__main__":
    main()
