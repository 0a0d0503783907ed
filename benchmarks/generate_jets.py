"""Physics-jet generation speed and memory, with and without the release's detector: jets per
second per class, per configuration and per worker count, and peak memory.

    python benchmarks/generate_jets.py [--jets-per-class 200] [--rows 2000] [--workers 1,2]
                                       [--configs legacy,release]

Configurations (each with every option given): ``legacy`` is particle level with matched jets, pT
zlogz and the fill rule (the default before issue 24); ``release`` the release's detector with its
leading-jet selection, energy-fraction zlogz and dropped undefined jets; ``release-r04`` the same
with R = 0.4 (the public code's radius); ``none-matched``, ``none-leading`` and ``release-matched``
the other combinations measured in the README. Part 1 times each class alone
in this process (Pythia init included, as in a chunk), as wall-clock and as CPU time (the better
guide on a shared machine). Part 2 runs `qapbo data generate` as a user would, with 1 and 2
workers side by side in one run (same seed, so the same jets), and samples the memory of the
command and its workers together every 0.1 s as PSS (shared pages split between the processes
that share them; RSS would count the forked workers' inherited pages twice). Memory does not grow
with the set's size: each chunk is written and freed, each worker process makes one chunk, and the
detector's cell grids hold only the occupied cells of each batch of events.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qapbo.data import pythia as jetgen


def _tree_pss_mb(root: int) -> float:
    """Proportional memory of ``root`` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


@contextlib.contextmanager
def _quiet_stdout():
    """Pythia and FastJet print banners to C stdout."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


#: The options of each configuration, given in full so that a change of default changes no row.
_RELEASE_DEFS = {"zlogz": "energy", "undefined": "drop"}
_OPTIONS: dict[str, dict] = {
    "legacy": {"detector": "none", "selection": "matched", "jet_r": 0.8, "zlogz": "pt", "undefined": "fill"},
    "none-matched": {"detector": "none", "selection": "matched", "jet_r": 0.8, **_RELEASE_DEFS},
    "none-leading": {"detector": "none", "selection": "leading", "jet_r": 0.8, **_RELEASE_DEFS},
    "release-matched": {"detector": "release", "selection": "matched", "jet_r": 0.8, **_RELEASE_DEFS},
    "release": {"detector": "release", "selection": "leading", "jet_r": 0.8, **_RELEASE_DEFS},
    "release-r04": {"detector": "release", "selection": "leading", "jet_r": 0.4, **_RELEASE_DEFS},
}
_FLAG = {"jet_r": "radius"}


def _flags(opts: dict) -> list[str]:
    return [a for k, v in opts.items() for a in (f"--{_FLAG.get(k, k)}", f"{v:g}" if k == "jet_r" else v)]


#: name -> (GenSettings fields, the same as `qapbo data generate` flags)
CONFIGS: dict[str, tuple[dict, list[str]]] = {name: (opts, _flags(opts)) for name, opts in _OPTIONS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets-per-class", type=int, default=200)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--configs", default="legacy,release", help=f"comma-separated, of {', '.join(CONFIGS)}")
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    print(f"pythia-jets benchmark on {os.cpu_count()} cores; versions {jetgen.generator_versions()}")
    print(f"\n1) one class at a time, {args.jets_per_class} jets each, this process:")
    print(f"{'config':>11} {'class':>5} {'jets/s':>8} {'jets/CPU-s':>10} {'CPU ms/jet':>10} {'events':>7} "
          f"{'jets/event':>10} {'dropped':>7}")
    for name in configs:
        total_cpu = 0.0
        for cls in jetgen.CLASSES:
            t0, c0 = time.perf_counter(), time.process_time()
            with _quiet_stdout():
                _, info, _, _ = jetgen.generate_jets(jetgen.GenSettings(seed=1, **CONFIGS[name][0]), cls, 0,
                                                     args.jets_per_class)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            total_cpu += cpu
            print(f"{name:>11} {cls:>5} {args.jets_per_class / dt:8.1f} {args.jets_per_class / cpu:10.1f} "
                  f"{1000 * cpu / args.jets_per_class:10.2f} {info['events']:7d} "
                  f"{args.jets_per_class / info['events']:10.2f} {info.get('dropped', 0):7d}", flush=True)
        n = args.jets_per_class * len(jetgen.CLASSES)
        print(f"{name:>11} {'all':>5} {'':>8} {n / total_cpu:10.1f} {1000 * total_cpu / n:10.2f}   "
              f"= {total_cpu / n * 1e5 / 60:.1f} CPU-minutes per 100,000 jets", flush=True)
    print(f"\n2) `qapbo data generate --rows {args.rows}` in 20 chunks, side by side in this run:")
    print(f"{'config':>11} {'workers':>7} {'seconds':>8} {'jets/s':>8} {'speed-up':>8} {'peak PSS MB':>11}")
    for name in configs:
        base = None
        for w in [int(v) for v in args.workers.split(",")]:
            out = Path(tempfile.mkdtemp(prefix="qapbo-bench-"))
            cmd = [sys.executable, "-m", "qapbo.cli", "data", "generate", "--rows", str(args.rows), "--seed", "1",
                   "--workers", str(w), "--out", str(out / "set"), "--progress", "none",
                   "--chunk-size", str(max(1, args.rows // 20)), *CONFIGS[name][1]]  # 4 chunks per class
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            peak = 0.0
            while proc.poll() is None:
                peak = max(peak, _tree_pss_mb(proc.pid))
                time.sleep(0.1)
            dt = time.perf_counter() - t0
            base = base or dt
            print(f"{name:>11} {w:>7} {dt:8.1f} {args.rows / dt:8.1f} {base / dt:7.2f}x {peak:11.0f}", flush=True)
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
