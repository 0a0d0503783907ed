"""Learned per-weight precision: fixed-point quantizers whose fractional bits are trained, and a net built of them.

The method is HGQ's (Sun et al., "Gradient-based automatic mixed precision quantization for neural
networks on-chip", arXiv:2405.00645), written here from its description for qapbo's own PyTorch
training; no HGQ or HGQ2 code is used (their sources were read only to check behaviour). Every
weight, every bias, every input feature and every hidden neuron has its own fixed-point format;
the loss adds ``beta * EBOPs`` so that gradient descent trades accuracy against cost, and a
weight whose bits reach 0 is pruned.

The arithmetic, per element, with ``f`` its fractional bits:

* ``f = round(phi)``: ``phi`` is a trained float (a ``Parameter`` shaped like the tensor it
  quantizes), rounded (half to even) in the forward pass, straight-through in the backward;
* ``n = floor(x * 2**f + 1/2)``, ``q = n * 2**-f``: round half up, the rounding of fixed-point
  hardware (``AP_RND``, HGQ's ``RND``);
* weights and biases: the integer bits come from the element's own value, so nothing overflows;
  the element's width is the bits of its integer ``n`` (magnitude bits plus a sign bit, 0 for
  ``n == 0``: qapbo's ``weight_bits``). "Bits reach 0" and "the weight is exactly zero" are then
  one condition, in every forward pass, training or not;
* inputs and activations (one format per input feature, per hidden neuron): the integer bits
  come from the tracked range ``[lo, hi]`` of the element (a running min/max, reset by
  :meth:`LearnedTagger.reset_ranges`, e.g. at each epoch start, as HGQ's ``ResetMinMax``): the
  width is the smallest two's-complement format holding the codes of ``lo`` and ``hi`` (a sign
  bit only if some code is negative; 0 bits if every code is 0). In training the batch is added
  to the range before quantizing, so nothing overflows; in eval mode a value outside the range
  saturates at the format's bounds (``AP_SAT``).

The gradients:

* w.r.t. the quantized value: straight-through (1), 0 where a value saturated or where the
  ReLU fused into an activation quantizer is off;
* w.r.t. ``f``, the paper's surrogate, from the quantization error ``delta = x - q``: the error
  of a uniform quantizer scales as ``2**-f``, so ``d delta / d f = -ln2 * delta`` and
  ``d q / d f = ln2 * (x - q)`` (what the authors' HGQ computes, and what a straight-through
  round of ``round(x 2**f) 2**-f`` gives), summed over the rows for a data quantizer (0 where a
  value saturated).
* EBOPs (:meth:`LearnedTagger.ebops`; qapbo's ``hgq2-ebops-v1``, :func:`qapbo.cost.perweight.linear_ebops`):
  per layer ``sum_ij width(in_j) * bits(w_ij) + sum_i bits(b_i)``. Its value is exact (the same
  integer the cost module counts from the exported integers); its gradient treats a width as
  ``integer bits + f`` with the integer bits fixed: ``d/d f_w,ij = width(in_j)`` and
  ``d/d f_in,j = sum_i bits(w_ij)`` where that width is non-zero, 0 where it is 0 (as a width
  ``max(i + f, 0)`` would have).

Where this follows the paper and where it differs:

* follows: per-element trained ``f`` rounded in the forward pass; round half up; the ``ln2 *
  delta`` surrogate; weights' integer bits from their values, data's from recorded min/max
  reset per epoch (HGQ's ``ResetMinMax``); EBOPs as the sum over multiplications of operand
  bits; the loss ``CE + beta * EBOPs``; a log ramp of beta (:func:`log_ramp`); pruning at 0 bits.
* differs:

  - EBOPs count each weight's *integer value* bits with its sign (qapbo's definition; HGQ and
    HGQ2 count the quantizer's width without the sign), and a bias by the bits of its value
    (HGQ2: the mean bias width times the outputs);
  - a datalane's width is the exact two's-complement width of its recorded codes (HGQ:
    ``floor(log2 max|x|) + 1`` integer bits plus a sign bit if the minimum is negative), so
    ``[-2**i, 0]`` needs no extra bit;
  - values outside the recorded range saturate and pass no gradient (HGQ2 ``WRAP``s datalanes,
    after its ``trace_minmax``);
  - the activation is quantized after the ReLU, one format per neuron, as HGQ2 quantizes each
    layer's input (HGQ quantizes the pre-activation, and biases at its precision); biases have
    their own trained ``f``;
  - every weight starts at the same ``f`` (``F0``, as HGQ2's example; HGQ sets each weight's
    initial ``f`` so that every weight starts with the same bits);
  - no BatchNorm and no output quantizer (the logits are the exact fixed-point sums);
  - ``phi`` is brought within ``[-(e + 1), F_MAX]`` after every epoch (:meth:`LearnedTagger.clamp_`),
    ``e`` the binary exponent of the element's magnitude (its own value, or its range), so that a
    pruned element stays one bit from revival (HGQ2 bounds a weight's bits to ``[0, 12]``).

Speed: a 16-64-32-32-5 net is so small that the number of tensor operations, not their size,
sets the step time. So :class:`LearnedTagger` packs its parameters: every weight and bias of every
layer in one vector (``values``, with ``value_phi``), every datalane's ``f`` in another
(``data_phi``, with the ranges ``lo``/``hi``): the weights are quantized by one autograd node,
each datalane by one, the EBOPs of the whole net by one, and Adam updates three tensors. Forward
and backward of each node are written out, as in :mod:`qapbo.nn.quant`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qapbo.errors import SpecError
from qapbo.nn.spec import ModelSpec
from qapbo.nn.tagger import Tagger

LN2 = math.log(2.0)

#: Highest fractional bits a quantizer may learn (float32 keeps 24 significant bits).
F_MAX = 16.0

#: Initial fractional bits of weights, biases, inputs and activations: HGQ2's jet-tagger example
#: (``example/small_jet_tagger.ipynb``: weights with 3 bits and no integer bits, datalanes f0 = 3).
F0 = 3.0


# ------------------------------------------------------------------------------ bits of codes

def _exponent(n: torch.Tensor) -> torch.Tensor:
    """Binary exponent ``e`` with ``|n| = m 2**e``, ``m`` in [0.5, 1): for an integer, its magnitude bits; 0 for 0."""
    return torch.frexp(n).exponent.to(n.dtype)


def value_bits(n: torch.Tensor) -> torch.Tensor:
    """Bits of integer-valued ``n``: magnitude bits plus a sign bit, 0 for 0 (qapbo's ``weight_bits``).

    That is the binary exponent of ``2 n`` (exact, unlike a float ``log2``).
    """
    return _exponent(n * 2.0)


def code_format(n_lo: torch.Tensor, n_hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(width, lowest code, highest code) of the smallest two's-complement format holding codes ``n_lo..n_hi``.

    A sign bit only if ``n_lo < 0``; ``m`` magnitude bits hold ``[-2**m, 2**m - 1]`` with a sign,
    ``[0, 2**m - 1]`` without; the width is 0 if every code is 0.
    """
    neg = (n_lo < 0).to(n_lo.dtype)
    m = torch.maximum(_exponent(torch.relu(n_hi)), _exponent(torch.relu(-n_lo - 1.0)))
    top = torch.exp2(m)
    return m + neg, -neg * top, top - 1.0


# ------------------------------------------------------------------------------ the quantizers

class _ValueQuant(torch.autograd.Function):
    """Weights and biases: ``n = floor(w 2**f + 1/2)``, ``q = n 2**-f``; returns ``(q, n)``."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, phi: torch.Tensor):
        f = torch.round(phi)
        n = torch.floor(w * torch.exp2(f) + 0.5)
        q = n * torch.exp2(-f)
        ctx.save_for_backward((w - q) * LN2)
        ctx.mark_non_differentiable(n)
        return q, n

    @staticmethod
    def backward(ctx, g: torch.Tensor, _gn: torch.Tensor):
        (delta,) = ctx.saved_tensors
        return g, g * delta


class _DataQuant(torch.autograd.Function):
    """Datalanes: ``q = clamp(floor(h 2**f + 1/2), lo, hi) 2**-f`` with ``h = relu(x)`` or ``x``, rows (batch, n).

    ``lo``/``hi`` are code bounds per element, or ``None`` when no value can overflow (training:
    the tracked range holds the batch).
    """

    @staticmethod
    def forward(ctx, x, phi, relu: bool, c_lo, c_hi):
        f = torch.round(phi)
        h = torch.relu(x) if relu else x
        n = torch.floor(h * torch.exp2(f) + 0.5)
        mask = torch.sign(h) if relu else None  # relu's gradient: 1 where h > 0
        inside = None
        if c_lo is not None:
            inside = (n - c_lo + 1.0).clamp_(0.0, 1.0) * (c_hi + 1.0 - n).clamp_(0.0, 1.0)  # codes are integers
            mask = inside if mask is None else mask * inside
            n = torch.minimum(torch.maximum(n, c_lo), c_hi)
        q = n * torch.exp2(-f)
        delta = h - q if inside is None else (h - q) * inside  # no surrogate where a value saturated
        ctx.save_for_backward(delta, mask)
        return q

    @staticmethod
    def backward(ctx, g):
        delta, mask = ctx.saved_tensors
        gx = g if mask is None else g * mask
        gphi = (g * delta).sum(0) * LN2
        return gx, gphi, None, None, None


def quantize_values(w: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights or biases at their own fractional bits ``round(phi)`` (same shape): (quantized values, integer codes).

    Gradients: straight-through to ``w``, ``ln2 * (w - q)`` to ``phi`` (module docstring).
    """
    return _ValueQuant.apply(w, phi)


def quantize_data(x: torch.Tensor, phi: torch.Tensor, relu: bool = False, code_lo: torch.Tensor | None = None,
                  code_hi: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``x`` (batch, n) at per-column fractional bits ``round(phi)`` (n,), after a ReLU if ``relu``.

    With ``code_lo``/``code_hi`` (per column) the codes saturate there (no gradient where they do).
    """
    return _DataQuant.apply(x, phi, relu, code_lo, code_hi)


class _NetEbops(torch.autograd.Function):
    """``sum_j acc_j * a_j + acc_bias``: ``acc`` the column sums of the weights' bits per datalane.

    ``col`` maps every packed value to the datalane its weight multiplies (biases to the extra last
    slot, whose "width" is 1), so one ``index_add`` gives every layer's column sums at once.
    """

    @staticmethod
    def forward(ctx, value_phi, data_phi, v_bits, a_bits, col):
        a_ext = torch.cat([a_bits, a_bits.new_ones(1)])
        acc = a_bits.new_zeros(len(a_ext)).index_add_(0, col, v_bits)
        ctx.save_for_backward(v_bits, a_bits, a_ext, acc, col)
        return acc @ a_ext

    @staticmethod
    def backward(ctx, g):
        v_bits, a_bits, a_ext, acc, col = ctx.saved_tensors
        g_values = torch.sign(v_bits) * a_ext[col] * g
        g_data = torch.sign(a_bits) * acc[:-1] * g
        return g_values, g_data, None, None, None


def _column_max(x: torch.Tensor) -> torch.Tensor:
    """``x.amax(0)`` of a (rows, n) tensor; narrow rows are folded first (PyTorch's column max of fewer
    than ~32 columns is ~10x slower than of 64)."""
    rows, n = x.shape
    k = 64 // n
    if k > 1 and rows % k == 0 and x.is_contiguous():
        return x.reshape(rows // k, k * n).amax(0).reshape(k, n).amax(0)
    return x.amax(0)


# ------------------------------------------------------------------------------ the network

class LearnedTagger(Tagger):
    """MLP ``inputs -> hidden (ReLU)... -> classes`` with learned per-element precision, returning logits.

    The input is quantized per feature (signed), every hidden activation per neuron (unsigned,
    after the ReLU), every weight and bias on its own; the logits are exact fixed-point sums.
    Train with ``loss = cross_entropy + beta * model.ebops()`` (:func:`train_step`), calling
    :meth:`reset_ranges` at each epoch start and :meth:`clamp_` at each epoch end (as
    :func:`train_epoch` does); before costing or exporting, :meth:`calibrate` on the training rows.

    Parameters are packed (module docstring, "Speed"): :meth:`weight`/:meth:`bias` are views of
    layer ``i``'s parameters (or of their ``phi``, gradients, codes), :meth:`datalane` the slice of
    the packed datalane tensors feeding it. Weights are initialised as Keras' (and so HGQ's) Dense: Glorot-uniform, zero biases.

    ``spec`` is the :class:`qapbo.nn.spec.ModelSpec` it was built from (:meth:`from_spec`, as
    :func:`qapbo.nn.models.build_model` does), or the one its arguments describe; None when the four
    initial bits differ or are not whole numbers (no spec describes that).
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_classes: int, *, weight_f0: float = F0,
                 bias_f0: float = F0, input_f0: float = F0, act_f0: float = F0):
        super().__init__()
        widths = (n_inputs, *hidden, n_classes)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in widths) or n_classes < 2:
            raise SpecError(f"layer widths {list(widths)} must be positive integers with at least 2 classes")
        for name, v in (("weight_f0", weight_f0), ("bias_f0", bias_f0), ("input_f0", input_f0), ("act_f0", act_f0)):
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and -F_MAX <= v <= F_MAX):
                raise SpecError(f"{name} is {v!r}: use initial fractional bits within [-{F_MAX:g}, {F_MAX:g}]")
        self.widths = widths
        self.spec: ModelSpec | None = None
        if weight_f0 == bias_f0 == input_f0 == act_f0 and float(weight_f0).is_integer() and weight_f0 >= 0:
            self.spec = ModelSpec(n_inputs=n_inputs, hidden=tuple(hidden), n_classes=n_classes, precision="learned",
                                  init_bits=int(weight_f0))
        # packed layout: per layer (weights start, biases start, biases end) in `values`, and
        # (start, end) of its input datalane in `data_phi`/`lo`/`hi` (the input's, then each hidden layer's)
        self._values_at: list[tuple[int, int, int]] = []
        self._data_at: list[tuple[int, int]] = []
        values, value_phi, col = [], [], []
        v = d = 0
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            w = torch.empty(n_out, n_in)
            nn.init.xavier_uniform_(w)
            values += [w.reshape(-1), torch.zeros(n_out)]
            value_phi += [torch.full((n_out * n_in,), float(weight_f0)), torch.full((n_out,), float(bias_f0))]
            col += [torch.arange(d, d + n_in).repeat(n_out), torch.full((n_out,), -1)]
            self._values_at.append((v, v + n_out * n_in, v + n_out * n_in + n_out))
            self._data_at.append((d, d + n_in))
            v += n_out * n_in + n_out
            d += n_in
        self.values = nn.Parameter(torch.cat(values))
        self.value_phi = nn.Parameter(torch.cat(value_phi))
        self.data_phi = nn.Parameter(torch.tensor([float(input_f0)] * n_inputs + [float(act_f0)] * (d - n_inputs)))
        self.register_buffer("lo", torch.zeros(d))
        self.register_buffer("hi", torch.zeros(d))
        self.register_buffer("_col", torch.where(torch.cat(col) < 0, d, torch.cat(col)), persistent=False)
        self._codes: tuple[tuple[int, int], torch.Tensor] | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "LearnedTagger":
        """The net of a sized ``precision = "learned"`` spec: every format starts at ``spec.init_bits`` fractional bits."""
        if not spec.learned:
            raise SpecError(f"{spec.describe()} is not a learned-precision spec; build it with qapbo.nn.models.build_model")
        spec.check_sized()
        f0 = float(spec.init_bits)
        m = cls(spec.n_inputs, spec.hidden, spec.n_classes, weight_f0=f0, bias_f0=f0, input_f0=f0, act_f0=f0)
        m.spec = spec
        return m

    def param_groups(self, lr: float, bits_lr: float) -> list[dict]:
        """Adam's parameter groups: the weights and biases at ``lr``, every trained ``phi`` (bits) at ``bits_lr``."""
        return [{"params": [self.values], "lr": lr}, {"params": [self.value_phi, self.data_phi], "lr": bits_lr}]

    # -------------------------------------------------------------- views of the packed tensors

    def weight(self, i: int, of: torch.Tensor | None = None) -> torch.Tensor:
        """Layer ``i``'s weights (outputs, inputs): a view of ``values``, or of ``of``, any tensor packed as
        ``values`` is (``value_phi``, its ``grad``, :meth:`value_codes`)."""
        a, b, _ = self._values_at[i]
        return (self.values if of is None else of)[a:b].view(self.widths[i + 1], self.widths[i])

    def bias(self, i: int, of: torch.Tensor | None = None) -> torch.Tensor:
        """Layer ``i``'s biases, a view of ``values`` or of ``of`` (see :meth:`weight`)."""
        _, b, c = self._values_at[i]
        return (self.values if of is None else of)[b:c]

    def datalane(self, i: int) -> slice:
        """The slice of ``data_phi``/``lo``/``hi`` of layer ``i``'s inputs."""
        return slice(*self._data_at[i])

    # -------------------------------------------------------------- forward and cost

    def forward(self, x: torch.Tensor, taps: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits; ``taps``, if given, receives each hidden layer's pre-activation (before the ReLU) and the logits."""
        q, n = _ValueQuant.apply(self.values, self.value_phi)
        self._codes = (self._versions(), n)
        if self.training:
            self._track(x, 0, relu=False)
            x = _DataQuant.apply(x, self.data_phi[self.datalane(0)], False, None, None)
        else:
            _, c_lo, c_hi = self.data_codes()
            s = self.datalane(0)
            x = _DataQuant.apply(x, self.data_phi[s], False, c_lo[s], c_hi[s])
        last = len(self._values_at) - 1
        for i, (a, b, c) in enumerate(self._values_at):
            x = F.linear(x, q[a:b].view(self.widths[i + 1], self.widths[i]), q[b:c])
            if taps is not None:
                taps.append(x.detach())
            if i < last:
                s = self.datalane(i + 1)
                if self.training:
                    self._track(x, i + 1, relu=True)
                    x = _DataQuant.apply(x, self.data_phi[s], True, None, None)
                else:
                    x = _DataQuant.apply(x, self.data_phi[s], True, c_lo[s], c_hi[s])
        return x

    @torch.no_grad()
    def _track(self, x: torch.Tensor, i: int, relu: bool) -> None:
        s = self.datalane(i)
        hi = self.hi[s]
        torch.maximum(hi, _column_max(x), out=hi)  # with relu, hi >= 0 is relu's range and lo stays 0
        if not relu:
            lo = self.lo[s]
            torch.minimum(lo, -_column_max(-x), out=lo)

    def _versions(self) -> tuple[int, int]:
        return self.values._version, self.value_phi._version

    @torch.no_grad()
    def value_codes(self) -> torch.Tensor:
        """Integer codes of every packed weight and bias at the current parameters (cached from the last forward)."""
        if self._codes is not None and self._codes[0] == self._versions():
            return self._codes[1]
        return _ValueQuant.apply(self.values, self.value_phi)[1]

    @torch.no_grad()
    def data_codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(width, lowest code, highest code) of every datalane element, from its range and current ``f``."""
        s = torch.exp2(torch.round(self.data_phi))
        return code_format(torch.floor(self.lo * s + 0.5), torch.floor(self.hi * s + 0.5))

    def ebops(self) -> torch.Tensor:
        """EBOPs at the current formats and ranges (``hgq2-ebops-v1``), differentiable w.r.t. ``value_phi`` and ``data_phi``.

        In training call it after the forward pass whose loss it joins: that pass updated the ranges.
        """
        with torch.no_grad():
            v_bits = value_bits(self.value_codes())
            a_bits = self.data_codes()[0]
        return _NetEbops.apply(self.value_phi, self.data_phi, v_bits, a_bits, self._col)

    # -------------------------------------------------------------- ranges and bounds

    @torch.no_grad()
    def reset_ranges(self) -> None:
        """Forget the tracked ranges (0 is in every range: keeping it changes no width, see :func:`code_format`)."""
        self.lo.zero_()
        self.hi.zero_()

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, batch_size: int = 65536) -> None:
        """Set every datalane's range to exactly what rows ``x`` produce (HGQ2's ``trace_minmax``)."""
        was = self.training
        self.reset_ranges()
        self.train()
        try:
            for i in range(0, len(x), batch_size):
                self(x[i:i + batch_size])
        finally:
            self.train(was)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Bring every ``phi`` within ``[-(e + 1), F_MAX]`` (module docstring); :func:`train_epoch` calls it at each epoch end."""
        ref = torch.maximum(torch.abs(self.lo), torch.abs(self.hi))
        for phi, v in ((self.value_phi, self.values), (self.data_phi, ref)):
            phi.copy_(torch.clamp(phi, min=-_exponent(v) - 1.0).clamp_(max=F_MAX))

    # -------------------------------------------------------------- readers

    @torch.no_grad()
    def masks(self) -> list[torch.Tensor]:
        """Per linear layer, 1 where a weight's code is non-zero and 0 where it is pruned (0 bits), as
        :meth:`qapbo.nn.models.JetTagger.masks` reads; computed from the bits, not a buffer anyone may prune."""
        n = self.value_codes()
        return [(self.weight(i, n) != 0).to(self.values.dtype) for i in range(len(self._values_at))]

    @torch.no_grad()
    def effective_weights(self) -> list[torch.Tensor]:
        """The quantized weights (outputs, inputs) of every linear layer, detached: what the forward pass multiplies."""
        q, _ = _ValueQuant.apply(self.values, self.value_phi)
        return [self.weight(i, q).clone() for i in range(len(self._values_at))]

    def apply_masks_(self) -> None:
        """Refused: a learned-precision net prunes a weight by training its bits to 0, not by a mask."""
        raise SpecError("a learned-precision network prunes itself (a weight whose bits reach 0 is exactly 0); "
                            "magnitude pruning (QAP, refine, a search's sparsity) applies to fixed-precision nets only")

    @torch.no_grad()
    def fixed_point_layers(self) -> list[dict[str, np.ndarray]]:
        """Per linear layer, the exact integers and widths (the input of :mod:`qapbo.cost.perweight`).

        ``w_int`` (outputs, inputs) and ``b_int`` are the integer codes at fractional bits
        ``w_f``/``b_f`` (value = code * 2**-f); ``w_width``/``b_width`` their bits (sign included,
        0 when pruned); ``in_width``, ``in_f``, ``in_lo``, ``in_hi`` the format of each input
        (width with sign, fractional bits, lowest and highest code).
        """
        n = self.value_codes()
        v_f = torch.round(self.value_phi)
        v_bits = value_bits(n)
        width, c_lo, c_hi = self.data_codes()
        d_f = torch.round(self.data_phi)
        out = []
        for i, (a, b, c) in enumerate(self._values_at):
            shape = (self.widths[i + 1], self.widths[i])
            s = self.datalane(i)
            rec = {"w_int": n[a:b].view(shape), "w_f": v_f[a:b].view(shape), "w_width": v_bits[a:b].view(shape),
                   "b_int": n[b:c], "b_f": v_f[b:c], "b_width": v_bits[b:c],
                   "in_width": width[s], "in_f": d_f[s], "in_lo": c_lo[s], "in_hi": c_hi[s]}
            out.append({k: t.numpy().astype(np.int64) for k, t in rec.items()})
        return out


# ------------------------------------------------------------------------------ training

def log_ramp(t: float, t_end: float, beta0: float, beta1: float) -> float:
    """Beta at time ``t`` of a log-linear ramp from ``beta0`` (t <= 0) to ``beta1`` (t >= ``t_end``), as HGQ2's ``'log'`` piece."""
    if not (beta0 > 0 and beta1 > 0 and t_end > 0):
        raise SpecError(f"a log ramp needs beta0, beta1 > 0 and a positive length, got {beta0}, {beta1}, {t_end}")
    s = min(max(t / t_end, 0.0), 1.0)
    return float(beta0 * (beta1 / beta0) ** s)


def train_step(model: LearnedTagger, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on ``loss = cross_entropy + beta * EBOPs``; returns the (detached) loss and EBOPs."""
    loss = F.cross_entropy(model(x), y)
    e = model.ebops()
    if beta:
        loss = loss + beta * e
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), e.detach()


def train_epoch(model: LearnedTagger, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, beta: float,
                batch_size: int, generator: torch.Generator) -> tuple[float, float]:
    """One epoch of :func:`train_step` over a seeded permutation: the ranges are reset first, and
    every ``phi`` clamped to its bounds at the end (:meth:`LearnedTagger.clamp_`; Adam moves a
    ``phi`` by about ``lr`` a step, so an epoch cannot drift far past them).

    Returns the mean loss and the EBOPs of the last step.
    """
    model.train()
    model.reset_ranges()
    n = len(y)
    stop = n - 1 if n % batch_size == 1 else n  # as qapbo's loop: no batch of one row
    perm = torch.randperm(n, generator=generator)
    xs, ys = x[perm], y[perm]
    total, e = torch.zeros(()), torch.zeros(())
    for i in range(0, stop, batch_size):
        yb = ys[i:i + batch_size]
        loss, e = train_step(model, opt, xs[i:i + batch_size], yb, beta)
        total += loss * len(yb)
    model.clamp_()
    return float(total) / stop, float(e)
