"""Training FLOPs of a qapbo network: compute in a unit that does not depend on the machine or its load.

Wall seconds are not a unit of compute: the same quickstart spent 27 s idle and 44 s on a loaded
machine. FLOPs follow from the architecture, the rows and the epochs alone, so two methods' compute
compare on any machine. The counting rule,
:data:`qapbo.cost.definitions.FLOPS_DEFINITION` ``"qapbo-train-flops-v1"`` (results record its name
as ``flops_definition``; a change of rule is a new version):

One row's forward pass through the MLP ``widths = (inputs, hidden..., classes)`` costs

- per linear layer ``n_in -> n_out``: ``2 * n_in * n_out`` (a multiply-add is 2 FLOPs) ``+ n_out``
  (the bias);
- per hidden element (each of the ``sum(hidden)`` outputs of a hidden layer): BatchNorm in
  training mode ``3`` for the batch statistics (the mean's add; the variance's subtract and
  multiply-add counted as 2) ``+ 2`` to normalise (subtract the mean, multiply by 1/sigma) ``+ 2``
  for the affine scale and shift when ``bn = "affine"`` (so 7 for "affine", 5 for "no-affine" and
  "no-stats", 0 for "none"); the ReLU ``1``.

The backward pass costs twice the forward. An epoch trains ``train_rows`` rows (forward and
backward: 3x the forward) and evaluates ``eval_rows`` rows (forward only, counted at the same
per-row rate): the validation loss every epoch, and in a search also the validation AUC its early
stopping reads. Training FLOPs are epochs times that.

Not counted: quantization (weights, activations and inputs are fake-quantized on top of the float
arithmetic; the count is that of the float network of the same widths and BN mode, so every
precision of one architecture costs the same); pruning's zeros (the products are dense and compute
them; a pruned network costs what the unpruned one does); the loss and its gradient (a few FLOPs
per class), the L1 penalty, masking and the optimizer step (per batch, of the order of the
parameters: about 0.2 % at batch 1024); measuring the trained network afterwards (test set, costs);
data shuffling and the Python around it.
"""

from __future__ import annotations

from typing import Sequence

from qapbo.nn.spec import BN_MODES, ModelSpec

#: FLOPs per hidden element of BatchNorm in training mode, by BN mode (statistics 3, normalise 2, affine 2).
BN_FLOPS = {"affine": 7, "no-affine": 5, "no-stats": 5, "none": 0}
RELU_FLOPS = 1
BACKWARD_FACTOR = 2  # backward = 2x forward


def forward_flops(widths: Sequence[int], bn: str = "affine") -> int:
    """FLOPs of one row's forward pass through an MLP of ``widths`` with BatchNorm mode ``bn`` (module rule)."""
    if bn not in BN_MODES:
        raise ValueError(f"unknown BN mode {bn!r}: use one of {', '.join(BN_MODES)}")
    widths = [int(w) for w in widths]
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"widths {widths} need an input and an output width, all positive")
    linear = sum(2 * n_in * n_out + n_out for n_in, n_out in zip(widths[:-1], widths[1:]))
    hidden = sum(widths[1:-1])
    return linear + hidden * (BN_FLOPS[bn] + RELU_FLOPS)


def epoch_flops(spec: ModelSpec, train_rows: int, eval_rows: int) -> int:
    """FLOPs of one epoch: ``train_rows`` forward and backward, ``eval_rows`` forward only."""
    f = forward_flops(spec.widths, spec.bn)
    return (1 + BACKWARD_FACTOR) * f * int(train_rows) + f * int(eval_rows)


def training_flops(spec: ModelSpec, train_rows: int, eval_rows: int, epochs: int) -> int:
    """FLOPs of ``epochs`` epochs of training ``spec`` (a sized spec) by ``qapbo-train-flops-v1``."""
    if min(train_rows, eval_rows, epochs) < 0:
        raise ValueError("rows and epochs must not be negative")
    return int(epochs) * epoch_flops(spec, train_rows, eval_rows)
