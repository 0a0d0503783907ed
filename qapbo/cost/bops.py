"""Bit operations (BOPs) of a network, as defined in Hawks et al. 2021 (PROTOCOL).

For a linear layer with n inputs, m outputs, weight bits b_w, input activation bits b_a and a
fraction p of its parameters (weights and biases) non-zero:

    BOPs = m * n * (p * b_a * b_w + b_a + b_w + log2(n))

Written by hand because no maintained library computes this definition; results record
:data:`BOPS_DEFINITION` so that a later change of definition is never mixed up with this one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from qapbo.cost.definitions import BOPS_DEFINITION
from qapbo.nn.models import JetTagger


def linear_bops(n_in: int, n_out: int, w_bits: int, a_bits: int, density: float = 1.0) -> float:
    """BOPs of one linear layer; ``density`` is p, the non-zero share of weights and biases."""
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be within [0, 1], got {density}")
    return n_out * n_in * (density * a_bits * w_bits + a_bits + w_bits + math.log2(n_in))


@dataclass(frozen=True)
class LayerBops:
    layer: int
    n_in: int
    n_out: int
    w_bits: int
    a_bits: int
    nonzero: int
    params: int
    bops: float

    @property
    def density(self) -> float:
        return self.nonzero / self.params


@dataclass(frozen=True)
class BopsReport:
    total: float
    layers: tuple[LayerBops, ...]
    definition: str = BOPS_DEFINITION

    def to_dict(self) -> dict:
        return {"total": self.total, "definition": self.definition,
                "layers": [asdict(layer) | {"density": layer.density} for layer in self.layers]}


@torch.no_grad()
def model_bops(model: JetTagger) -> BopsReport:
    """BOPs read from the model itself: its quantizers' bit widths and its pruning masks."""
    layers = []
    for i, (lin, w, (wb, ab)) in enumerate(zip(model.linears, model.effective_weights(), model.layer_bits())):
        nonzero = int(torch.count_nonzero(w)) + int(torch.count_nonzero(lin.bias))
        params = w.numel() + lin.bias.numel()
        n_out, n_in = w.shape
        layers.append(LayerBops(i + 1, n_in, n_out, wb, ab, nonzero, params,
                                linear_bops(n_in, n_out, wb, ab, nonzero / params)))
    return BopsReport(total=sum(layer.bops for layer in layers), layers=tuple(layers))
