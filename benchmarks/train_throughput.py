#!/usr/bin/env python
"""Training-epoch throughput of the jet-tagger MLP, side by side in one run.

Variants (all on the same synthetic training rows, batch 1024, Adam + cross-entropy + L1 on the
masked weights, masks re-applied after every step):

  (a) float 16-64-32-32-5 + BatchNorm   qapbo.train.loop.train, ModelSpec(n_inputs=16, n_classes=5, weight_bits=32)
  (b) Brevitas 8-bit                    qapbo.train.loop.train, ModelSpec(n_inputs=16, n_classes=5, weight_bits=8)
  (c) Brevitas 4-bit                    qapbo.train.loop.train, ModelSpec(n_inputs=16, n_classes=5, weight_bits=4)
  (d) reference-style loop, float       per-sample numpy Dataset + DataLoader(batch_size=1024,
                                        shuffle=True), as in pytorch-jet-classify
  (e) 8-bit through the Brevitas        the loop of qapbo.train.loop written inline, calling
      modules                           model.reference_forward instead of model.forward
  (e0) 8-bit fused, inline loop         the very loop of (e) calling model.forward: a control
                                        showing the inline loop costs what qapbo's loop costs
  (w6) Brevitas 6-bit                   qapbo.train.loop.train, ModelSpec(..., weight_bits=6): today's fixed-bit QAT
  (l)  learned per-weight precision     qapbo.nn.learned.train_epoch on LearnedTagger(16, (64, 32, 32), 5), beta
                                        1e-6: the same batching and Adam, loss cross-entropy + beta * EBOPs
                                        (no L1, no masks, no BatchNorm: the net HGQ2 trains)

Fairness: qapbo's EpochLog.seconds also contains the validation-loss pass, which (d) and (e)
do not do. The script wraps ``qapbo.train.loop.validation_loss`` with a timer at run time (qapbo
itself is not changed), so every epoch of (a)-(c) is split into training and validation
time; the comparison uses the training part only, the same work in every variant.

Each variant trains a fresh model (seed 0) for --warmup + --epochs consecutive epochs; the
warm-up epochs are dropped and the median (min-max) of the rest is reported.

``--rounds R`` runs the whole sequence of variants R times and takes the median over every round's
timed epochs, so that a machine whose load drifts does not favour the variants that ran first.

    python benchmarks/train_throughput.py                 # 600,000 rows, 1 thread
    python benchmarks/train_throughput.py --rows 60000 --epochs 2
    python benchmarks/train_throughput.py --rows 200000 --variants a,w6,l --rounds 3   # issue 22's ratios
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from qapbo.data.config import DataConfig
from qapbo.data.split import JetData, load_data
from qapbo.nn.learned import LearnedTagger
from qapbo.nn.learned import train_epoch as learned_epoch
from qapbo.nn.models import JetTagger, build_model
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import TrainConfig
from qapbo.train.loop import train

# The module itself (qapbo/__init__ re-exports the function ``train``, which shadows the attribute).
qtrain = importlib.import_module("qapbo.train.loop")

BATCH = 1024
L1 = TrainConfig().l1
LR = TrainConfig().lr
VAL_FRACTION = TEST_FRACTION = 0.1


# ----------------------------------------------------------------------------- helpers

def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def load_rows(rows: int) -> JetData:
    """Synthetic jets with exactly ``rows`` training rows (val and test 10% each of the total)."""
    n_rows = max(100, round(rows / (1.0 - VAL_FRACTION - TEST_FRACTION)))
    while True:
        data = load_data(DataConfig(source="synthetic-jets", n_rows=n_rows, seed=0,
                                    val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION))
        if len(data.y_train) >= rows:
            break
        n_rows += 10  # rounding in the stratified splits left a few rows short
    if len(data.y_train) > rows:
        data.x_train, data.y_train = data.x_train[:rows], data.y_train[:rows]
    return data


class ValTimer:
    """Wraps qapbo.train.loop.validation_loss so each epoch's validation time is known."""

    def __init__(self) -> None:
        self.original = qtrain.validation_loss
        self.seconds: list[float] = []

    def __enter__(self) -> "ValTimer":
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - t0)

        qtrain.validation_loss = timed
        return self

    def __exit__(self, *exc) -> None:
        qtrain.validation_loss = self.original


class RowDataset(torch.utils.data.Dataset):
    """Per-sample dataset over numpy arrays, as the reference ParticleJetDataset."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        return torch.from_numpy(self.x[index]), torch.as_tensor(self.y[index])


def inline_epoch(model: JetTagger, opt: torch.optim.Optimizer,
                 batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 forward: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """One training epoch with exactly the step of qapbo.train.loop.train; returns the mean loss."""
    model.train()
    total, seen = torch.zeros(()), 0
    for xb, yb in batches:
        logits = forward(xb)
        loss = F.cross_entropy(logits, yb)
        if L1:
            loss = loss + L1 * model.l1_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.apply_masks_()
        total += loss.detach() * len(logits)
        seen += len(logits)
    return float(total) / seen


def slice_batches(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """qapbo's batching: one seeded permutation per epoch, then contiguous slices."""
    n = len(y)
    stop = n - 1 if n % BATCH == 1 else n
    perm = torch.randperm(n, generator=gen)
    xs, ys = x[perm], y[perm]
    for i in range(0, stop, BATCH):
        yield xs[i:i + BATCH], ys[i:i + BATCH]


# ----------------------------------------------------------------------------- variants

def run_qapbo(bits: int, data: JetData, n_epochs: int, threads: int) -> dict:
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=bits), seed=0)
    with ValTimer() as vt:
        res = train(model, data, TrainConfig(epochs=n_epochs, patience=n_epochs + 1, seed=0, threads=threads))
    if len(res.history) != n_epochs or len(vt.seconds) != n_epochs:
        raise RuntimeError(f"expected {n_epochs} epochs, got {len(res.history)} (val passes {len(vt.seconds)})")
    full = [log.seconds for log in res.history]
    return {"train": [f - v for f, v in zip(full, vt.seconds)], "full": full, "val": list(vt.seconds),
            "loss": res.history[-1].train_loss}


def run_inline(bits: int, data: JetData, n_epochs: int, how: str) -> dict:
    model = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=bits), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    if how == "dataloader":
        n = len(y)
        loader = torch.utils.data.DataLoader(RowDataset(data.x_train, data.y_train), batch_size=BATCH,
                                             shuffle=True, drop_last=(n % BATCH == 1))
        batches, forward = (lambda: loader), model.forward
    else:
        gen = torch.Generator().manual_seed(0)
        batches = lambda: slice_batches(x, y, gen)  # noqa: E731
        forward = model.reference_forward if how == "brevitas" else model.forward
    times, loss = [], float("nan")
    for _ in range(n_epochs):
        t0 = time.perf_counter()
        loss = inline_epoch(model, opt, batches(), forward)
        times.append(time.perf_counter() - t0)
    return {"train": times, "loss": loss}


def run_learned(data: JetData, n_epochs: int, threads: int, beta: float = 1e-6) -> dict:
    """Learned precision with qapbo's batching (one seeded permutation per epoch, contiguous slices) and Adam."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LearnedTagger(16, (64, 32, 32), 5)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(0)
    times, loss = [], float("nan")
    for _ in range(n_epochs):
        t0 = time.perf_counter()
        loss, _ = learned_epoch(model, opt, x, y, beta, BATCH, gen)
        times.append(time.perf_counter() - t0)
    return {"train": times, "loss": loss}


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=_positive_int, default=600_000, help="training rows (default 600000)")
    p.add_argument("--epochs", type=_positive_int, default=3, help="timed epochs per variant (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs per variant (default 1)")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--variants", default="a,b,c,d,e,e0,w6,l",
                   help="comma-separated variant keys to run (default all: a,b,c,d,e,e0,w6,l)")
    p.add_argument("--rounds", type=_positive_int, default=1,
                   help="run the variants this many times in turn; medians pool every round (default 1)")
    args = p.parse_args(argv)
    if args.warmup < 0:
        p.error("--warmup must be 0 or more")

    torch.set_num_threads(args.threads)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor() or "?") if os.path.exists("/proc/cpuinfo") else (platform.processor() or "?")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    print("machine")
    print(f"  platform       {platform.platform()}")
    print(f"  cpu            {cpu}; {os.cpu_count()} logical cores, {usable} usable by this process")
    print(f"  python         {platform.python_version()}")
    print(f"  torch          {torch.__version__} (cpu capability {torch.backends.cpu.get_cpu_capability()})")
    print(f"  torch threads  {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op")
    try:
        import brevitas
        print(f"  brevitas       {brevitas.__version__}")
    except Exception:  # pragma: no cover - version lookup only
        pass
    if hasattr(os, "getloadavg"):
        print(f"  load average   {' '.join(f'{v:.2f}' for v in os.getloadavg())} (at start)")

    t0 = time.perf_counter()
    data = load_rows(args.rows)
    n = len(data.y_train)
    print(f"\ndata: {n:,} synthetic training rows x {data.n_features} features, {len(data.y_val):,} validation "
          f"rows; batch {BATCH} ({-(-n // BATCH)} steps/epoch); loaded in {time.perf_counter() - t0:.1f} s")

    # Same arithmetic check: the fused path and the Brevitas modules give the same logits.
    m8 = build_model(ModelSpec(n_inputs=16, n_classes=5, weight_bits=8), seed=0).train()
    xb = torch.from_numpy(data.x_train[:BATCH])
    with torch.no_grad():
        diff = float((m8(xb) - m8.reference_forward(xb)).abs().max())
    print(f"check: 8-bit forward vs reference_forward on one batch, max |diff| = {diff:.3g}")

    n_epochs = args.warmup + args.epochs
    print(f"timing: {args.warmup} warm-up + {args.epochs} timed epochs per variant, median (min-max) of timed\n")
    variants = [
        ("a", "float 32-bit   qapbo train()", lambda: run_qapbo(32, data, n_epochs, args.threads)),
        ("b", "Brevitas 8-bit qapbo train()", lambda: run_qapbo(8, data, n_epochs, args.threads)),
        ("c", "Brevitas 4-bit qapbo train()", lambda: run_qapbo(4, data, n_epochs, args.threads)),
        ("d", "float, reference Dataset+DataLoader", lambda: run_inline(32, data, n_epochs, "dataloader")),
        ("e", "8-bit, Brevitas modules (inline)", lambda: run_inline(8, data, n_epochs, "brevitas")),
        ("e0", "8-bit, fused forward (inline)", lambda: run_inline(8, data, n_epochs, "fused")),
        ("w6", "Brevitas 6-bit qapbo train()", lambda: run_qapbo(6, data, n_epochs, args.threads)),
        ("l", "learned precision train_epoch", lambda: run_learned(data, n_epochs, args.threads)),
    ]
    chosen = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = sorted(set(chosen) - {k for k, _, _ in variants})
    if unknown or not chosen:
        p.error(f"unknown variant(s) {', '.join(unknown) or '(none given)'}: use keys of {', '.join(k for k, _, _ in variants)}")
    variants = [v for v in variants if v[0] in chosen]
    timed_all: dict[str, list[float]] = {k: [] for k, _, _ in variants}
    med: dict[str, float] = {}
    for rnd in range(args.rounds):
        if args.rounds > 1:
            print(f"round {rnd + 1} of {args.rounds}")
        for key, name, fn in variants:
            t0 = time.perf_counter()
            r = fn()
            timed = r["train"][args.warmup:]
            timed_all[key] += timed
            med[key] = statistics.median(timed_all[key])
            line = (f"({key:>2}) {name:<36} train epoch {statistics.median(timed):7.3f} s ({min(timed):.3f}-{max(timed):.3f})"
                    f"  {n / statistics.median(timed) / 1e3:6.0f} k rows/s")
            if "val" in r:
                line += (f"  [+ val pass {statistics.median(r['val'][args.warmup:]):.3f} s; "
                         f"EpochLog.seconds {statistics.median(r['full'][args.warmup:]):.3f} s]")
            print(line + f"  loss {r['loss']:.4f}  (variant wall {time.perf_counter() - t0:.0f} s)", flush=True)

    steps = -(-n // BATCH)
    print(f"\nper step (median epoch / {steps} steps{f', pooled over {args.rounds} rounds' if args.rounds > 1 else ''})")
    for key, name, _ in variants:
        ratio = f"  {med[key] / med['a']:5.2f}x float" if "a" in med else ""
        print(f"  ({key:>2}) {name:<36} {med[key] / steps * 1e3:7.3f} ms{ratio}")
    print("\nratios of training-epoch medians (validation pass excluded everywhere)")
    for label, a, b in [
        ("8-bit / float                       (b)/(a)", "b", "a"),
        ("4-bit / float                       (c)/(a)", "c", "a"),
        ("reference loop / float              (d)/(a)", "d", "a"),
        ("Brevitas modules / fused, 8-bit     (e)/(b)", "e", "b"),
        ("  same, identical inline loop       (e)/(e0)", "e", "e0"),
        ("  control: inline / qapbo, fused    (e0)/(b)", "e0", "b"),
        ("6-bit / float (target <= 1.5)       (w6)/(a)", "w6", "a"),
        ("learned / float (target <= 2)       (l)/(a)", "l", "a"),
    ]:
        if a in med and b in med:
            print(f"  {label}  {med[a] / med[b]:6.2f}x")
    print("\nnotes: (a)-(c), (w6) time = EpochLog.seconds minus the timed validation pass; (d), (e), (e0), (l) run "
          "no validation.\n       (a)-(e0), (w6) do the same step: forward, cross-entropy + 1e-4 * L1, backward, "
          "Adam, apply_masks_;\n       (l): forward, cross-entropy + 1e-6 * EBOPs, backward, Adam (ranges reset "
          "and bits clamped once per epoch).")
    if hasattr(os, "getloadavg"):
        print(f"       load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
