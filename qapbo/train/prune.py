"""Quantization-aware pruning (QAP): iterative global L1-magnitude pruning during QAT.

At each level the network is trained to early stop, measured, then the smallest-magnitude
surviving weights, ranked globally across all linear layers (output layer included, biases
never), are pruned until the next cumulative fraction of the schedule is reached. FT keeps
training the survivors; LT (lottery ticket) rewinds them to their initial values first.

Written by hand rather than with ``torch.nn.utils.prune.global_unstructured`` because the masks
here are parametrizations (so Brevitas always sees masked weights), which that API does not know.

A learned-precision net prunes itself (a weight whose bits reach 0 is zero); :func:`rising_beta` is
its counterpart of the schedule: each level fine-tunes it under a larger EBOPs weight.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import torch

from qapbo.data.split import JetData
from qapbo.nn.learned import LearnedTagger
from qapbo.nn.models import JetTagger
from qapbo.train.config import TrainConfig
from qapbo.train.loop import EpochLog, train
from qapbo.train.measure import Measurement, measure, versions


@torch.no_grad()
def prune_to_fraction_(model: JetTagger, fraction: float) -> int:
    """Prune the smallest surviving weights globally until ``fraction`` of all weights are pruned.

    The target count is ``round(fraction * total)`` so repeated levels never drift by rounding.
    Ties are broken by position (stable sort), so the result is deterministic. Returns the
    number of weights newly pruned.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    masks = model.masks()
    weights = model.effective_weights()
    total = sum(m.numel() for m in masks)
    pruned_now = sum(int((m == 0).sum()) for m in masks)
    target = round(fraction * total)
    k = target - pruned_now
    if k <= 0:
        return 0
    flat_w = torch.cat([w.abs().reshape(-1) for w in weights])
    flat_m = torch.cat([m.reshape(-1) for m in masks])
    score = torch.where(flat_m > 0, flat_w, torch.full_like(flat_w, float("inf")))
    order = torch.sort(score, stable=True).indices[:k]
    new_mask = flat_m.clone()
    new_mask[order] = 0.0
    start = 0
    for m in masks:
        n = m.numel()
        m.copy_(new_mask[start:start + n].view_as(m))
        start += n
    model.apply_masks_()
    return k


@dataclass
class LevelResult:
    level: int  # 0-based index into the schedule
    target: float  # cumulative pruned fraction asked for
    measurement: Measurement


def iterative_pruning(
    model: JetTagger,
    data: JetData,
    config: TrainConfig,
    schedule: tuple[float, ...],
    mode: str,
    initial_state: dict[str, torch.Tensor],
    start_level: int = 0,
    on_epoch: Callable[[int, EpochLog], None] | None = None,
    on_level_start: Callable[[int, JetTagger], None] | None = None,
    hw: bool | None = None,
) -> Iterator[LevelResult]:
    """Train, measure and prune level by level; yields after each trained level.

    ``model`` enters trained at level ``start_level - 1`` (or untrained when ``start_level`` is
    0), so a resumed run continues exactly where a stopped one left off. Each level trains with
    the seed ``config.seed + level``, so levels do not depend on what ran before in the process.
    ``hw=False`` leaves the da4ml costs out of the level records (a caller that keeps only the
    last level measures them once itself).
    """
    if mode not in ("ft", "lt"):
        raise ValueError(f"mode must be 'ft' or 'lt', got {mode!r}")
    for level in range(start_level, len(schedule)):
        if level > 0:
            prune_to_fraction_(model, schedule[level])  # prune trained weights only
            if mode == "lt":
                _rewind_(model, initial_state)
        if on_level_start is not None:
            on_level_start(level, model)
        cfg = replace(config, seed=config.seed + level)
        cb = (lambda log, _lvl=level: on_epoch(_lvl, log)) if on_epoch is not None else None
        result = train(model, data, cfg, callback=cb)
        record = measure(model, data, result, hw=hw)
        record["train_config"] = cfg.to_dict()
        record["versions"] = versions()
        yield LevelResult(level, schedule[level], Measurement(model=model, training=result, record=record))


@torch.no_grad()
def _rewind_(model: JetTagger, initial_state: dict[str, torch.Tensor]) -> None:
    """Lottery ticket: every tensor back to its initial value, except the masks."""
    masks = [m.clone() for m in model.masks()]
    model.load_state_dict(initial_state)
    for m, saved in zip(model.masks(), masks):
        m.copy_(saved)
    model.apply_masks_()


def initial_state_of(model: JetTagger) -> dict[str, torch.Tensor]:
    """A deep copy of the model's state, for lottery-ticket rewinding."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def collapsed_note(per_layer: list[float]) -> str:
    """Global magnitude pruning can remove a whole layer (BN makes its scale free, L1 shrinks it): say so."""
    gone = [str(i + 1) for i, s in enumerate(per_layer) if s >= 1.0]
    if not gone:
        return ""
    return f"  (layer{'s' if len(gone) > 1 else ''} {', '.join(gone)} fully pruned: the output no longer depends on the input)"


def rising_beta(model: LearnedTagger, data: JetData, config: TrainConfig, betas: Sequence[float], start_level: int,
                on_epoch: Callable[[int, EpochLog], None] | None = None) -> Iterator[LevelResult]:
    """Fine-tune a learned-precision net level by level, each under the next, larger ``beta``.

    The counterpart of :func:`qapbo.train.prune.iterative_pruning` for a net that prunes itself: a
    larger EBOPs weight drives more bits (and so more weights) to 0, from the state the last level
    left. ``model`` enters trained at level ``start_level - 1``; each level trains with the seed
    ``config.seed + level`` and its beta goes into the model's spec (stored with its checkpoint).
    """
    for level in range(start_level, len(betas)):
        model.spec = replace(model.spec, beta=float(betas[level]))
        cfg = replace(config, seed=config.seed + level)
        cb = (lambda log, _lvl=level: on_epoch(_lvl, log)) if on_epoch is not None else None
        result = train(model, data, cfg, callback=cb)
        record = measure(model, data, result)
        record["train_config"] = cfg.to_dict()
        record["versions"] = versions()
        yield LevelResult(level, float(betas[level]), Measurement(model=model, training=result, record=record))
