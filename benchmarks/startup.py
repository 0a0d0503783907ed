"""Start-up time of the command line, measured side by side in one run.

Prints the median wall time of ``qapbo --help``, ``qapbo compare --help`` and an argument error
(``qapbo train --epochs 0``) beside ``python -c pass`` and ``python -c "import torch"``, and the
difference of ``qapbo --help`` to ``python -c pass`` (the target: within 0.3 s).

    python benchmarks/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

QAPBO = [shutil.which("qapbo")] if shutil.which("qapbo") else [sys.executable, "-m", "qapbo.cli"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "qapbo --help": [*QAPBO, "--help"],
    "qapbo compare --help": [*QAPBO, "compare", "--help"],
    "qapbo train --epochs 0 (argument error)": [*QAPBO, "train", "--epochs", "0"],
}


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    for cmd in COMMANDS.values():  # warm the page cache once
        wall(cmd)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):  # interleaved, so a load change hits every command alike
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, m in med.items():
        print(f"{name:<42} median {m:6.3f} s  (min {min(times[name]):.3f}, {args.repeat} runs)")
    gap = med["qapbo --help"] - med["python -c pass"]
    print(f"qapbo --help - python -c pass: {gap:+.3f} s (target <= 0.3 s: {'met' if gap <= 0.3 else 'NOT met'})")


if __name__ == "__main__":
    main()
