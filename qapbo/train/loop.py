"""The training loop: Adam, cross-entropy, L1 on weights, early stopping with best-state restore.

A learned-precision net (:class:`qapbo.nn.learned.LearnedTagger`) trains on cross-entropy plus
``beta * EBOPs`` instead (no L1, no masks: its bits prune it), with its bits at their own learning
rate (``spec.bits_lr``); each epoch resets the tracked ranges first, bounds the bits at its end
(:func:`qapbo.nn.learned.train_epoch`) and then calibrates the ranges on the training rows, so the
validated, snapshotted and finally measured net is the one that would be exported. Its validation
loss, which early stopping and the best state follow, is the training objective on the validation
rows: cross-entropy plus ``beta * EBOPs`` (cross-entropy alone would keep the most expensive epoch).

Batches are slices of one in-memory tensor shuffled by a seeded permutation each epoch: a
per-sample Dataset + DataLoader costs more than the whole forward/backward of these tiny nets.
A run reports its wall seconds, its process CPU seconds, and the rows it trained and evaluated per
epoch, from which :mod:`qapbo.cost.flops` counts its FLOPs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from qapbo.data.split import JetData
from qapbo.errors import TrainingError
from qapbo.nn.learned import LearnedTagger, train_epoch
from qapbo.nn.tagger import Tagger
from qapbo.train.config import TrainConfig


@dataclass
class EpochLog:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    best_val_loss: float
    improved: bool
    seconds: float


@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    seconds: float  # wall clock
    history: list[EpochLog] = field(default_factory=list)
    cpu_seconds: float = 0.0  # process CPU time (every thread of the process), beside the wall seconds
    train_rows: int = 0  # rows trained per epoch (forward and backward)
    val_rows: int = 0  # rows evaluated per epoch (the validation loss, forward only)


def rows_per_epoch(n: int, batch_size: int) -> int:
    """Rows an epoch trains on: all ``n``, less a last batch of one row, which BatchNorm cannot normalise."""
    return n - 1 if n % batch_size == 1 else n


def train(
    model: Tagger,
    data: JetData,
    config: TrainConfig,
    callback: Callable[[EpochLog], None] | None = None,
    beta: Callable[[int], float] | None = None,
) -> TrainResult:
    """Train ``model`` in place to early stop; the best validation-loss state is restored.

    ``callback`` runs after every epoch (progress bars, Optuna reporting); it may raise to stop.
    ``beta`` gives a learned-precision net its EBOPs weight per epoch (1-based; default: the
    spec's constant ``beta``). Raises :class:`TrainingError` on a non-finite loss.
    """
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xv, yv = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    n, bs = len(y), config.batch_size
    stop = rows_per_epoch(n, bs)
    learned = isinstance(model, LearnedTagger)
    if learned:
        opt = torch.optim.Adam(model.param_groups(config.lr, model.spec.bits_lr))
        beta = beta or (lambda _epoch, b=model.spec.beta: b)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        model.apply_masks_()  # pruned weights are exactly zero from the first step (l1_penalty relies on it)

    best_loss, best_epoch, best_state = math.inf, 0, _snapshot(model)
    history: list[EpochLog] = []
    t_start, c_start = time.perf_counter(), time.process_time()
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        if learned:
            b = beta(epoch)
            train_loss, _ = train_epoch(model, opt, x, y, b, bs, gen)
            model.calibrate(x)  # the ranges of exactly the training rows: the net as it would be exported
            val_loss = validation_loss(model, xv, yv) + b * float(model.ebops().detach())
        else:
            train_loss = _fixed_epoch(model, opt, x, y, config, gen)
            val_loss = validation_loss(model, xv, yv)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise TrainingError(f"loss became {train_loss if not math.isfinite(train_loss) else val_loss} "
                                f"at epoch {epoch}; lower the learning rate or check the data")
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch, best_state = val_loss, epoch, _snapshot(model)
        log = EpochLog(epoch, train_loss, val_loss, best_loss, improved, time.perf_counter() - t0)
        history.append(log)
        if callback is not None:
            callback(log)
        if epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return TrainResult(
        epochs=len(history), best_epoch=best_epoch, best_val_loss=best_loss,
        stopped_early=len(history) < config.epochs, seconds=time.perf_counter() - t_start, history=history,
        cpu_seconds=time.process_time() - c_start, train_rows=stop, val_rows=len(yv),
    )


def _fixed_epoch(model: Tagger, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                 gen: torch.Generator) -> float:
    """One epoch of a fixed-precision net over a seeded permutation: cross-entropy plus L1, masks applied
    after every step; returns the mean training loss."""
    n, bs = len(y), config.batch_size
    stop = rows_per_epoch(n, bs)
    model.train()
    perm = torch.randperm(n, generator=gen)
    xs, ys = x[perm], y[perm]
    total = torch.zeros(())
    for i in range(0, stop, bs):
        logits = model(xs[i:i + bs])
        loss = F.cross_entropy(logits, ys[i:i + bs])
        if config.l1:
            loss = loss + config.l1 * model.l1_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.apply_masks_()
        total += loss.detach() * len(logits)
    return float(total) / stop


@torch.no_grad()
def validation_loss(model: Tagger, x: torch.Tensor, y: torch.Tensor, batch_size: int = 65536) -> float:
    """Mean cross-entropy (no L1, no EBOPs) in eval mode."""
    model.eval()
    total = 0.0
    for i in range(0, len(y), batch_size):
        total += float(F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size], reduction="sum"))
    return total / len(y)


def _snapshot(model: Tagger) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
