"""Physics-jet generation speed and memory: jets per second per class and per worker count, peak RSS.

    python benchmarks/generate_jets.py [--jets-per-class 200] [--rows 2000] [--workers 1,2]

Part 1 times each class alone in this process (Pythia init included, as in a chunk). Part 2 makes
whole sets with 1 and 2 workers side by side in one run (same seed, so the same jets) and samples
the resident memory of the generator and its workers together every 0.1 s. Memory does not grow
with the set's size: each chunk is written and freed, and each worker process makes one chunk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from qapbo import jetgen


def _rss_tree_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, from /proc (Linux)."""
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
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets-per-class", type=int, default=200)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    print(f"pythia-jets benchmark on {os.cpu_count()} cores; versions {jetgen.versions()}")
    print(f"\n1) one class at a time, {args.jets_per_class} jets each, this process:")
    print(f"{'class':>6} {'jets/s':>8} {'ms/jet':>8} {'events':>7} {'jets/event':>10}")
    for cls in jetgen.CLASSES:
        t0 = time.perf_counter()
        _, info, _, _ = jetgen.generate_jets(jetgen.GenSettings(seed=1), cls, 0, args.jets_per_class)
        dt = time.perf_counter() - t0
        print(f"{cls:>6} {args.jets_per_class / dt:8.1f} {1000 * dt / args.jets_per_class:8.2f} "
              f"{info['events']:7d} {args.jets_per_class / info['events']:10.2f}")
    chunk = jetgen.default_chunk_size(args.rows) // 2 or 1
    print(f"\n2) whole sets of {args.rows} jets ({chunk} per chunk), side by side in this run:")
    print(f"{'workers':>7} {'seconds':>8} {'jets/s':>8} {'speed-up':>8} {'peak RSS MB':>11}")
    base = None
    for w in [int(v) for v in args.workers.split(",")]:
        out = Path(tempfile.mkdtemp(prefix="qapbo-bench-"))
        peak, stop = [0.0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_tree_mb(os.getpid()))
                time.sleep(0.1)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        jetgen.generate_set(out / "set", args.rows, jetgen.GenSettings(seed=1, chunk_size=chunk), workers=w)
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
        base = base or dt
        print(f"{w:>7} {dt:8.1f} {args.rows / dt:8.1f} {base / dt:7.2f}x {peak[0]:11.0f}")
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
