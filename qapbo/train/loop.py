"""The training loop: Adam, cross-entropy, L1 on weights, early stopping with best-state restore.

Batches are slices of one in-memory tensor shuffled by a seeded permutation each epoch: a
per-sample Dataset + DataLoader costs more than the whole forward/backward of these tiny nets.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from qapbo.data.split import JetData
from qapbo.errors import SpecError, TrainingError
from qapbo.nn.models import JetTagger


@dataclass(frozen=True)
class TrainConfig:
    """Training budget and hyper-parameters; defaults are PROTOCOL's."""

    epochs: int = 250
    lr: float = 1e-4
    batch_size: int = 1024
    l1: float = 1e-4
    patience: int = 10
    seed: int = 0
    threads: int = 1  # one thread is as fast as two for these nets, and leaves a core to a 2nd worker

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "a positive number"),
            ("batch_size", self.batch_size >= 2, "at least 2 (BatchNorm needs two rows)"),
            ("l1", self.l1 >= 0, "zero or positive"),
            ("patience", self.patience >= 1, "at least 1"),
            ("threads", self.threads >= 1, "at least 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise SpecError(f"{name} is {getattr(self, name)!r}: use {want}")

    def to_dict(self) -> dict:
        return asdict(self)


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
    seconds: float
    history: list[EpochLog] = field(default_factory=list)


def train(
    model: JetTagger,
    data: JetData,
    config: TrainConfig,
    callback: Callable[[EpochLog], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place to early stop; the best validation-loss state is restored.

    ``callback`` runs after every epoch (progress bars, Optuna reporting); it may raise to stop.
    Raises :class:`TrainingError` on a non-finite loss.
    """
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xv, yv = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    n, bs = len(y), config.batch_size
    # BatchNorm cannot normalise a batch of one row: drop such a last batch.
    stop = n - 1 if n % bs == 1 else n
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.apply_masks_()  # pruned weights are exactly zero from the first step (l1_penalty relies on it)

    best_loss, best_epoch, best_state = math.inf, 0, _snapshot(model)
    history: list[EpochLog] = []
    t_start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
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
        train_loss = float(total) / stop
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
    )


@torch.no_grad()
def validation_loss(model: JetTagger, x: torch.Tensor, y: torch.Tensor, batch_size: int = 65536) -> float:
    """Mean cross-entropy (no L1) in eval mode."""
    model.eval()
    total = 0.0
    for i in range(0, len(y), batch_size):
        total += float(F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size], reduction="sum"))
    return total / len(y)


def _snapshot(model: JetTagger) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def seed_everything(seed: int) -> None:
    """Seed torch and numpy global generators (model init uses its own seeded fork)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
