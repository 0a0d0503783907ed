"""One HGQ2 run on qapbo's split of a data source: train with a beta ramp, cost every Pareto checkpoint
with da4ml, check that da4ml's logic gives the Keras model's logits on every test row.

Prints the training CPU and wall seconds, one line per checkpoint and the two headline numbers of
issue 21: the least LUTs at test AUC >= 0.85 and the best test AUC within 2,000 LUTs.

    python benchmarks/hgq_front.py pythia-jets --rows 20000 --epochs 800 --workdir /tmp/hgq-pythia
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from qapbo.data import DataConfig, load_data
from qapbo.train import hgq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", choices=["synthetic-jets", "pythia-jets"])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=800)
    ap.add_argument("--beta0", type=float, default=hgq.HgqSettings.beta0)
    ap.add_argument("--beta1", type=float, default=hgq.HgqSettings.beta1)
    ap.add_argument("--batch-size", type=int, default=hgq.HgqSettings.batch_size)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    data = load_data(DataConfig(source=args.source, n_rows=args.rows, seed=0))
    settings = hgq.HgqSettings(epochs=args.epochs, beta0=args.beta0, beta1=args.beta1, batch_size=args.batch_size)
    cpu, wall = time.process_time(), time.perf_counter()
    checkpoints = hgq.train_hgq(data.x_train, data.y_train, data.x_val, data.y_val, settings, args.workdir, seed=0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{data.label}: {args.rows} rows, {args.epochs} epochs, beta {args.beta0:g} -> {args.beta1:g}, batch "
          f"{args.batch_size}: training {cpu:.1f} CPU s, {wall:.1f} wall s; {len(checkpoints)} checkpoints")
    rows = []
    for c in checkpoints:
        model = hgq.load_checkpoint(c.path)
        traced = hgq.trace_hgq(model, data.x_train)
        costs = hgq.hgq_costs(model, data.x_train, traced)
        logits = hgq.keras_logits(model, data.x_test)
        rows.append({"epochs": c.epochs, "val_auc": c.val_auc,
                     "test_auc": hgq.test_metrics(logits, data.y_test, data.class_names)["auc"],
                     "exact": bool(np.array_equal(logits, hgq.logic_logits(traced, data.x_test))),
                     **{k: costs[k] for k in ("luts", "latency", "ebops", "ebops_hgq", "bops")}})
        print(json.dumps(rows[-1]))
    ok = [r["luts"] for r in rows if r["test_auc"] >= 0.85]
    cheap = [r["test_auc"] for r in rows if r["luts"] <= 2000]
    print(f"min LUTs at test AUC >= 0.85: {min(ok) if ok else None}; best test AUC at <= 2,000 LUTs: "
          f"{max(cheap) if cheap else None}; da4ml bit-exact on every checkpoint: {all(r['exact'] for r in rows)}")


if __name__ == "__main__":
    main()
