"""The fixed-point view of a trained network: what a bit-exact FPGA implementation computes.

A Brevitas network is integers between float scales: each linear layer multiplies integer codes
(the input's or the previous activation's) by integer weights, and everything float (the weight
and activation scales, the bias, eval-mode BatchNorm) folds into one affine map per output,
``y = scale * acc + bias``, followed by ReLU and the next activation quantizer,
``code = clamp(round(relu(y) / s_act), 0, 2^b - 1)``. Integers are exact in any fixed-point
format wide enough; only the folded float constants, the float input and the results of the
affine maps need a choice of fraction bits. This module makes that choice, once, for every user
of the fixed-point form (the hls4ml configuration of :mod:`qapbo.export.hls4ml_config`, a hardware cost).

The rule, for a relative precision of ``p`` bits:

* a folded scale vector keeps ``p`` significant bits in its smallest non-zero element:
  fraction bits ``p - floor(log2 min|s|)``; integer bits cover its largest element;
* a folded bias uses the fraction bits of the scale beside it (the product ``scale * acc``
  of an integer accumulator has exactly those), and integer bits covering its largest element;
* the result of an affine map keeps those fraction bits too (truncated: the error is below
  ``2^-p`` of one accumulator step) and integer bits for ``max|scale| * max|acc| + max|bias|``;
  ReLU passes it on unsigned, so the activation quantizer rounds the exact value, not a
  truncated one;
* a requantizer's ``1 / s_act`` keeps ``p`` significant bits;
* a float input keeps ``p`` bits below the largest magnitude seen in the data, and saturates
  beyond it; a quantized input keeps ``p`` bits below its quantizer's step and covers the
  quantizer's clipping range (so saturation never changes a code).

Too few bits flip a rounding now and then (one code step in a hidden layer moves the logits by
~0.1); enough bits make the fixed-point network reproduce the float one up to ~2^-p.
:func:`least_exact_precision` finds the smallest ``p`` for which :meth:`FixedPointView.emulate`,
a numpy model of that fixed-point arithmetic, agrees with the stored model on given rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from qapbo.errors import FixedPointError
from qapbo.nn.models import JetTagger, act_scale_param, weight_mask, weight_param
from qapbo.nn.spec import FLOAT_BITS

DEFINITION = "qapbo-fixedpoint-v1"
LOGIT_TOLERANCE = 1e-3  # the largest |logit difference| called exact; a flipped hidden code moves logits by ~0.1
PRECISION_RANGE = range(8, 33)  # relative precisions tried by least_exact_precision


@dataclass(frozen=True)
class Fixed:
    """A fixed-point format as ap_fixed spells it: ``integer`` bits include the sign bit."""

    integer: int
    fraction: int
    signed: bool = True

    @property
    def width(self) -> int:
        return self.integer + self.fraction

    def hls(self, mode: str = "") -> str:
        """``fixed<W,I>`` / ``ufixed<W,I>``, with ``mode`` (e.g. ``"RND_CONV,SAT"``) appended."""
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.width},{self.integer}{',' + mode if mode else ''}>"

    @property
    def bounds(self) -> tuple[float, float]:
        top = 2.0 ** (self.integer - (1 if self.signed else 0))
        q = 2.0 ** -self.fraction
        return (-top if self.signed else 0.0), top - q

    def floor(self, x: np.ndarray) -> np.ndarray:
        """Truncate to this format (ap_fixed TRN; values are in range by construction)."""
        return np.floor(np.asarray(x, np.float64) * 2.0 ** self.fraction) / 2.0 ** self.fraction

    def round(self, x: np.ndarray) -> np.ndarray:
        """Round half up (ap_fixed RND), as the constants are written."""
        return np.floor(np.asarray(x, np.float64) * 2.0 ** self.fraction + 0.5) / 2.0 ** self.fraction

    def round_even_saturate(self, x: np.ndarray) -> np.ndarray:
        """Round half to even and saturate (ap_fixed RND_CONV, SAT), as the input is converted."""
        lo, hi = self.bounds
        return np.clip(np.round(np.asarray(x, np.float64) * 2.0 ** self.fraction) / 2.0 ** self.fraction, lo, hi)


def _msb(x: float) -> int:
    """floor(log2 x) for x > 0."""
    return math.floor(math.log2(x))


def constant_format(values: np.ndarray, precision: int, fraction: int | None = None) -> Fixed:
    """The format that keeps ``precision`` significant bits of the smallest non-zero ``values``
    (or exactly ``fraction`` fraction bits) and holds the largest."""
    a = np.abs(np.asarray(values, np.float64))
    nz = a[a > 0]
    if fraction is None:
        fraction = precision - _msb(float(nz.min())) if nz.size else 0
    integer = max(_msb(float(nz.max())) + 2, 1) if nz.size else 1
    return Fixed(integer, max(fraction, 1 - integer))


@dataclass(frozen=True)
class Requantizer:
    """``code = clamp(round(x * inv_scale), lo, hi)``: an activation (or input) quantizer."""

    inv_scale: float  # 1 / s, the quantizer's step
    inv_scale_format: Fixed
    code_format: Fixed  # the integer codes, e.g. ufixed<6,6>; RND_CONV, SAT
    step: float  # s: a code's value
    min_code: int
    max_code: int


@dataclass(frozen=True)
class LayerView:
    """One linear layer: integer weights, then ``y = scale * acc + bias`` (then ReLU + requantizer)."""

    weights: np.ndarray  # integer codes, (outputs, inputs)
    weight_bits: int
    scale: np.ndarray  # folded per output: input step * weight step (* BatchNorm gamma / sigma)
    bias: np.ndarray  # folded per output: bias (BatchNorm: gamma / sigma * (bias - mean) + beta)
    scale_format: Fixed
    bias_format: Fixed
    accumulator_format: Fixed  # exact: integer codes times integer weights (plus input fraction bits)
    result_format: Fixed
    relu_format: Fixed | None  # hidden layers: ReLU output (the result, unsigned)
    requantizer: Requantizer | None  # hidden layers: the activation quantizer after ReLU


@dataclass(frozen=True)
class FixedPointView:
    """The whole network in fixed point at relative precision ``precision`` bits."""

    precision: int
    input_range: tuple[float, float]
    input_format: Fixed  # the float input converted with RND_CONV, SAT
    input_quantizer: Requantizer | None
    layers: tuple[LayerView, ...]
    definition: str = DEFINITION

    def emulate(self, x: np.ndarray) -> np.ndarray:
        """Logits the fixed-point arithmetic gives for float inputs ``x`` (rows), in float64."""
        h = self.input_format.round_even_saturate(x)
        if self.input_quantizer is not None:
            h = _requantize(h, self.input_quantizer)
        for layer in self.layers:
            acc = h @ layer.weights.T.astype(np.float64)  # exact: integers (and input fraction bits) below 2^53
            y = layer.result_format.floor(layer.scale_format.round(layer.scale) * acc
                                          + layer.bias_format.round(layer.bias))
            if layer.requantizer is not None:
                h = _requantize(np.maximum(y, 0.0), layer.requantizer)
            else:
                h = y
        return h

    def constants(self) -> list[tuple[str, Fixed]]:
        """(name, format) of every folded float constant, for cost and reporting."""
        out = []
        if self.input_quantizer is not None:
            out.append(("input requantizer 1/s", self.input_quantizer.inv_scale_format))
        for i, layer in enumerate(self.layers):
            out += [(f"layer {i + 1} scale", layer.scale_format), (f"layer {i + 1} bias", layer.bias_format)]
            if layer.requantizer is not None:
                out.append((f"layer {i + 1} requantizer 1/s", layer.requantizer.inv_scale_format))
        return out


def _requantize(x: np.ndarray, q: Requantizer) -> np.ndarray:
    return np.clip(np.round(x * q.inv_scale_format.round(q.inv_scale)), q.min_code, q.max_code)


def fixed_point_view(model: JetTagger, input_range: tuple[float, float], precision: int,
                     input_format: Fixed | None = None, float_format: Fixed | None = None) -> FixedPointView:
    """The fixed-point form of a trained, fully quantized ``model`` at ``precision`` relative bits.

    ``input_range`` is the (min, max) of the (standardized) input the network will see.
    ``input_format`` replaces the format derived from it for a float input (e.g. hls4ml's
    ap_fixed<16,6>, as a hardware cost assumes). ``float_format`` lets float (32-bit) layers in,
    written in that format as hls4ml's default configuration writes them: weights as its codes
    (step ``2^-fraction``), a float ReLU's output saturated to its unsigned part. Such a view is
    an approximation of the float network, not an exact form of it; without ``float_format``
    a float layer is refused.
    """
    spec = model.spec
    floats = [i + 1 for i, b in enumerate(spec.weight_bits) if b == FLOAT_BITS]
    floats += [i + 1 for i, b in enumerate(spec.act_bits) if b == FLOAT_BITS]
    if floats and float_format is None:
        raise FixedPointError(f"layer {sorted(set(floats))[0]} is float (32 bits): only a network whose weights and "
                              "activations are all quantized has an exact fixed-point form")
    if spec.bn == "no-stats":
        raise FixedPointError("BatchNorm with batch statistics at inference (bn = 'no-stats') has no fixed-point "
                              "form: it needs a batch of events, not one")
    if precision < 1:
        raise FixedPointError(f"precision {precision} must be at least 1 bit")
    model = model.eval()
    lo, hi = float(input_range[0]), float(input_range[1])
    with torch.no_grad():
        if model.input_quant is not None:
            iq = _requantizer(model.input_quant, model._iq, signed=True, precision=precision)
            # resolve the quantizer's step, and cover its clipping range so saturation keeps every code
            reach = iq.step * (2 ** (spec.input_bits - 1) + 1)
            in_fmt = Fixed(_msb(reach) + 2, precision - _msb(iq.step))
            h_max, h_frac, step = float(2 ** (spec.input_bits - 1)), 0, iq.step
        else:
            iq = None
            top = max(abs(lo), abs(hi), 2.0 ** -precision)
            in_fmt = input_format or Fixed(_msb(top) + 2, precision - _msb(top))
            h_max, h_frac, step = in_fmt.bounds[1] + 2.0 ** -in_fmt.fraction, in_fmt.fraction, 1.0
        layers = []
        last = len(model.linears) - 1
        for i, lin in enumerate(model.linears):
            c = model._wq[i]
            w = weight_param(lin) * weight_mask(lin)
            w_bits = spec.weight_bits[i]
            if c is None:  # a float layer in float_format's codes, saturated
                assert float_format is not None
                w_step = torch.tensor(2.0 ** -float_format.fraction, dtype=torch.float64)
                top = 2 ** (float_format.width - 1)
                w_int = np.clip(torch.round(w.double() / w_step).numpy(), -top, top - 1).astype(np.int64)
                w_bits = float_format.width
            else:
                # the integer codes and step exactly as Brevitas computes them (float32)
                w_step = torch.clamp_min(w.abs().max(), c.clamp_min) / c.threshold
                w_int = torch.round(w / w_step).numpy().astype(np.int64)
            scale = np.full(w_int.shape[0], step * float(w_step))
            bias = lin.bias.detach().double().numpy().copy()
            if i < last and spec.bn != "none":
                bn = model.norms[i]
                g = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
                beta = torch.zeros_like(g)
                if bn.affine:
                    g = g * bn.weight.double()
                    beta = bn.bias.double()
                g_np = g.numpy()
                bias = g_np * (bias - bn.running_mean.double().numpy()) + beta.numpy()
                scale = scale * g_np
            s_fmt = constant_format(scale, precision)
            b_fmt = constant_format(bias, precision, fraction=s_fmt.fraction)
            acc_max = float(np.abs(w_int).sum(axis=1).max()) * h_max
            acc_fmt = Fixed(_msb(max(acc_max, 1.0)) + 2, h_frac)
            reach = float(np.abs(scale).max()) * acc_max + float(np.abs(bias).max())
            r_fmt = Fixed(_msb(max(reach, 1.0)) + 2, s_fmt.fraction)
            relu_fmt = rq = None
            if i < last:
                relu_fmt = Fixed(r_fmt.integer - 1, r_fmt.fraction, signed=False)
                if model._aq[i] is None:  # a float ReLU: float_format's non-negative codes
                    assert float_format is not None
                    f = float_format.fraction
                    inv = 2.0 ** f
                    rq = Requantizer(inv, Fixed(max(f + 2, 1), max(-f, 0)), Fixed(float_format.width - 1, 0, False),
                                     2.0 ** -f, 0, 2 ** (float_format.width - 1) - 1)
                else:
                    rq = _requantizer(model.acts[i], model._aq[i], signed=False, precision=precision)
                h_max, h_frac, step = float(rq.max_code), 0, rq.step
            layers.append(LayerView(w_int, w_bits, scale, bias, s_fmt, b_fmt, acc_fmt, r_fmt,
                                    relu_fmt, rq))
    return FixedPointView(precision, (lo, hi), in_fmt, iq, tuple(layers))


def _requantizer(module: torch.nn.Module, consts, signed: bool, precision: int) -> Requantizer:
    step = float(torch.abs(act_scale_param(module)).double() / consts.threshold.double())
    inv = 1.0 / step
    lo, hi = int(consts.min_int), int(consts.max_int)
    bits = math.ceil(math.log2(max(hi, -lo) + 1)) + (1 if signed else 0)
    return Requantizer(inv, Fixed(_msb(inv) + 2, precision - _msb(inv)), Fixed(bits, 0, signed=signed), step, lo, hi)


def agreement(view: FixedPointView, model: JetTagger, x: np.ndarray) -> tuple[int, float]:
    """(rows with the same class, max |logit difference|) of ``view.emulate`` against ``model``."""
    got = view.emulate(x)
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(np.asarray(x, np.float32))).double().numpy()
    return int((got.argmax(1) == want.argmax(1)).sum()), float(np.abs(got - want).max())


def least_exact_precision(model: JetTagger, x: np.ndarray, input_range: tuple[float, float],
                          tolerance: float = LOGIT_TOLERANCE,
                          precisions: Sequence[int] = PRECISION_RANGE) -> FixedPointView:
    """The view at the smallest relative precision whose emulation gives ``model``'s class on
    every row of ``x`` and logits within ``tolerance``."""
    for p in precisions:
        view = fixed_point_view(model, input_range, p)
        same, diff = agreement(view, model, x)
        if same == len(x) and diff <= tolerance:
            return view
    raise FixedPointError(f"no precision up to {max(precisions)} bits reproduces the model on {len(x)} rows "
                          f"(best: {same}/{len(x)} classes, max logit difference {diff:.3g}); please report this")
