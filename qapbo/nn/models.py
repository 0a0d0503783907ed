"""The jet-tagger MLP: one builder for float and Brevitas-quantized networks of any depth.

Quantizers are Brevitas's, configured as in PROTOCOL: weights signed, per-tensor abs-max scale,
narrow range, round to nearest (``Int8WeightPerTensorFloat`` at b bits); hidden activations an
unsigned quantized ReLU with a learned scale initialised at 6 (``Uint8ActPerTensorFloatMaxInit``,
which, unlike the default runtime-statistics quantizer, has no 300-step statistics phase).
Biases and BatchNorm stay float. 32 bits means plain torch layers.

Every linear layer carries a pruning mask as a ``torch.nn.utils.parametrize`` parametrization
(``weight = original * mask``), so checkpoints hold masks and Brevitas modules, whenever they
read ``weight`` (forward, ``quant_weight()``, export), see the masked weights.

Speed: a Brevitas module call walks a tree of small ScriptModules whose Python dispatch costs
more than the matrix products of a 16-64-32-32-5 net (3-5x a float epoch). So ``forward`` is a
functional path that applies the very same arithmetic with Brevitas's own STE functions and the
constants read from each Brevitas quantizer; ``reference_forward`` runs the Brevitas modules,
and the tests check both give bit-identical outputs and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from brevitas.function.ops_ste import round_ste
from torch import nn
from torch.nn.utils import parametrize

from qapbo.nn.quant import QuantReLUFn, QuantWeightFn
from qapbo.nn.spec import FLOAT_BITS, ModelSpec
from qapbo.nn.tagger import Tagger

ACT_MAX_INIT = 6.0  # PROTOCOL: learned activation scale initialised at 6

INPUT_MAX_INIT = 4.0  # standardized inputs: +-4 sigma covers nearly every jet


@dataclass
class _QuantConsts:
    """Constants of one Brevitas quantizer, read once from the quantizer itself."""

    threshold: torch.Tensor  # integer scaling (2^(b-1)-1 signed narrow, 2^b-1 unsigned, ...)
    min_int: torch.Tensor
    max_int: torch.Tensor
    clamp_min: float = 1e-10

    @property
    def max_int_f(self) -> float:
        return float(self.max_int)


def _tensor_quant(proxy: nn.Module) -> nn.Module:
    tq = proxy.tensor_quant
    return getattr(tq, "tensor_quant", tq)  # unwrap a fused activation proxy level


def _consts(tq: nn.Module) -> _QuantConsts:
    bw = tq.msb_clamp_bit_width_impl()
    return _QuantConsts(
        threshold=tq.int_scaling_impl(bw).detach().clone(),
        min_int=tq.int_quant.min_int(bw).detach().clone(),
        max_int=tq.int_quant.max_int(bw).detach().clone(),
    )


class JetTagger(Tagger):
    """MLP ``inputs -> hidden... -> classes`` returning logits; softmax via :meth:`predict_proba`."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import (
            Int8ActPerTensorFloatMinMaxInit,
            Int8WeightPerTensorFloat,
            Uint8ActPerTensorFloatMaxInit,
        )

        spec.check_sized()
        self.spec = spec
        widths = spec.widths
        self.input_quant: nn.Module | None = None
        if spec.input_bits != FLOAT_BITS:
            self.input_quant = qnn.QuantIdentity(
                act_quant=Int8ActPerTensorFloatMinMaxInit, bit_width=spec.input_bits,
                min_val=-INPUT_MAX_INIT, max_val=INPUT_MAX_INIT, return_quant_tensor=False,
            )
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            wb = spec.weight_bits[i]
            if wb == FLOAT_BITS:
                lin: nn.Module = nn.Linear(n_in, n_out)
            else:
                lin = qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=Int8WeightPerTensorFloat,
                                      weight_bit_width=wb, return_quant_tensor=False)
            parametrize.register_parametrization(lin, "weight", WeightMask(lin.weight.shape))
            self.linears.append(lin)
            if i == len(widths) - 2:
                break
            self.norms.append(_batch_norm(n_out, spec.bn))
            ab = spec.act_bits[i]
            if ab == FLOAT_BITS:
                self.acts.append(nn.ReLU())
            else:
                self.acts.append(qnn.QuantReLU(act_quant=Uint8ActPerTensorFloatMaxInit, bit_width=ab,
                                               max_val=ACT_MAX_INIT, return_quant_tensor=False))
        self._read_quant_consts()

    def _read_quant_consts(self) -> None:
        self._wq: list[_QuantConsts | None] = []
        for lin in self.linears:
            if hasattr(lin, "weight_quant"):
                tq = _tensor_quant(lin.weight_quant)
                c = _consts(tq)
                c.clamp_min = float(tq.scaling_impl.stats_scaling_impl.clamp_scaling.clamp_min_ste.min_val)
                self._wq.append(c)
            else:
                self._wq.append(None)
        self._aq: list[_QuantConsts | None] = [self._act_consts(a) for a in self.acts]
        self._iq = self._act_consts(self.input_quant) if self.input_quant is not None else None

    @staticmethod
    def _act_consts(module: nn.Module) -> _QuantConsts | None:
        if not hasattr(module, "act_quant"):
            return None
        tq = _tensor_quant(module.act_quant.fused_activation_quant_proxy)
        return _consts(tq)

    # ------------------------------------------------------------------ forward paths

    def forward(self, x: torch.Tensor, taps: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits, computed functionally with Brevitas's arithmetic (see module docstring).

        ``taps``, if given, receives each hidden layer's post-BN, pre-ReLU output and the logits.
        """
        if self._iq is not None:
            x = _fake_quant_input(x, act_scale_param(self.input_quant), self._iq)
        last = len(self.linears) - 1
        for i, lin in enumerate(self.linears):
            wq = self._wq[i]
            if wq is None:
                w = weight_param(lin) * weight_mask(lin)
            else:
                w = QuantWeightFn.apply(weight_param(lin), weight_mask(lin), wq.threshold, wq.clamp_min)
            x = F.linear(x, w, lin.bias)
            if i < last:
                x = self.norms[i](x)
                if taps is not None:
                    taps.append(x.detach())
                aq = self._aq[i]
                if aq is None:
                    x = F.relu(x)
                else:
                    scale = torch.abs(act_scale_param(self.acts[i])) / aq.threshold
                    x = QuantReLUFn.apply(x, scale, aq.max_int_f)
        if taps is not None:
            taps.append(x.detach())
        return x

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits through the Brevitas modules themselves (slow; for checks and export)."""
        if self.input_quant is not None:
            x = self.input_quant(x)
        last = len(self.linears) - 1
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < last:
                x = self.acts[i](self.norms[i](x))
        return x

    # ------------------------------------------------------------------ masks and bits

    @torch.no_grad()
    def apply_masks_(self) -> None:
        """Zero pruned weights in the parameters themselves (Adam's moments would revive them)."""
        for lin in self.linears:
            weight_param(lin).mul_(weight_mask(lin))

    def effective_weights(self) -> list[torch.Tensor]:
        """Masked float weights of every linear layer, detached."""
        return [(weight_param(lin) * weight_mask(lin)).detach() for lin in self.linears]

    def weight_params(self) -> list[nn.Parameter]:
        """The trainable (unmasked) weight tensor of every linear layer."""
        return [weight_param(lin) for lin in self.linears]

    def masks(self) -> list[torch.Tensor]:
        """The pruning mask (1 = kept, 0 = pruned) of every linear layer."""
        return [weight_mask(lin) for lin in self.linears]

    def layer_bits(self) -> list[tuple[int, int]]:
        """(weight bits, input activation bits) per linear layer, read from the quantizers."""
        out = []
        in_bits = _bit_width(self.input_quant, "act_quant")
        for i, lin in enumerate(self.linears):
            out.append((_bit_width(lin, "weight_quant"), in_bits))
            if i < len(self.acts):
                in_bits = _bit_width(self.acts[i], "act_quant")
        return out

    def l1_penalty(self) -> torch.Tensor:
        """Sum of |w| over all linear weights; biases excluded.

        Pruned weights are held at exactly zero (:meth:`apply_masks_` runs after every optimizer
        step), and |0| has zero gradient, so this equals the L1 of the masked weights, value and
        gradient, without a second mask multiplication on the training step.
        """
        return sum(weight_param(lin).abs().sum() for lin in self.linears)


class WeightMask(nn.Module):
    """Parametrization ``weight = original * mask``; the mask is a buffer saved with the model."""

    def __init__(self, shape: torch.Size):
        super().__init__()
        self.register_buffer("mask", torch.ones(shape))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def weight_param(lin: nn.Module) -> nn.Parameter:
    return lin.parametrizations.weight.original


def weight_mask(lin: nn.Module) -> torch.Tensor:
    return lin.parametrizations.weight[0].mask


def _bit_width(module: nn.Module | None, attr: str) -> int:
    if module is None or not hasattr(module, attr):
        return FLOAT_BITS
    return int(getattr(module, attr).bit_width().item())


def _batch_norm(n: int, mode: str) -> nn.Module:
    if mode == "none":
        return nn.Identity()
    if mode == "affine":
        return nn.BatchNorm1d(n)
    if mode == "no-affine":
        return nn.BatchNorm1d(n, affine=False)
    return nn.BatchNorm1d(n, track_running_stats=False)


def act_scale_param(module: nn.Module) -> nn.Parameter:
    """The learned scale of a Brevitas activation quantizer.

    Looked up on every call, never cached: Brevitas rebuilds its quantizer modules on
    ``load_state_dict``, so a stored reference would go stale after a checkpoint restore.
    """
    return module.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value


def _fake_quant_input(x: torch.Tensor, scale_param: torch.Tensor, c: _QuantConsts) -> torch.Tensor:
    # Signed input quantizer: both clamps can act; plain op chain (it runs once a step).
    scale = torch.abs(scale_param) / c.threshold
    return torch.clamp(round_ste(x / scale), c.min_int, c.max_int) * scale


def build_model(spec: ModelSpec, seed: int | None = None) -> Tagger:
    """Build a network from ``spec`` (a :class:`JetTagger`, or for ``precision = "learned"`` a
    :class:`qapbo.nn.learned.LearnedTagger`); with ``seed`` its initial weights are reproducible."""
    if spec.learned:
        from qapbo.nn.learned import LearnedTagger

        make = LearnedTagger.from_spec
    else:
        make = JetTagger
    if seed is None:
        return make(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make(spec)
