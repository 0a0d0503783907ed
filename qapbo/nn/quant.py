"""Brevitas's fake quantization as fused autograd nodes, for fast quantization-aware training.

Why this exists: a Brevitas module call walks a tree of small ScriptModules, and autograd walks
one node per elementary op; for a 16-64-32-32-5 net that overhead, not arithmetic, made a QAT
epoch 3-5x slower than a float one. The two functions below compute *the same numbers* as the
Brevitas quantizers configured in :mod:`qapbo.nn.models` (forward values and every gradient,
checked bit for bit against the Brevitas modules in the tests), in one autograd node each:

* the forward replays Brevitas's arithmetic op by op (``x / scale``, round, clamp, ``* scale``);
* the backward applies PyTorch's own derivative formulas for the chain autograd would have
  built (round: straight-through; clamp: real gradient; ``div``: ``-g * ((x / s) / s)``;
  ``max``: gradient shared evenly among ties; ``abs``: ``g * sign``), summing to the scalar
  scale with ``sum_to_size`` exactly as autograd's ``sum_to`` does.

Boolean-mask kernels (comparisons, ``where``, ``masked_fill``) are 5-20x slower than float
arithmetic on these CPUs, so gradient masks are float 0/1 tensors: multiplying by them gives
the same values as autograd's ``where`` (at most the sign of a zero differs).
"""

from __future__ import annotations

import torch


class QuantReLUFn(torch.autograd.Function):
    """``clamp(round_ste(relu(x) / s), max=max_int) * s`` (Brevitas QuantReLU, unsigned).

    ``s`` is the scalar scale (``|learned value| / int threshold``), computed by the caller so
    autograd carries its gradient back to the learned parameter.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, s: torch.Tensor, max_int: float) -> torch.Tensor:
        h = torch.relu(x)
        y = h / s
        r = torch.round(y)
        mask = torch.sign(h)  # relu's gradient: 1 where the output is > 0, else 0
        if float(r.max()) > max_int:  # clamp acts somewhere: its gradient is 0 there
            mask.mul_((max_int + 1.0 - r).clamp_(0.0, 1.0))  # r is integer-valued
            r.clamp_max_(max_int)
        ctx.save_for_backward(y, r, s, mask)
        return r * s

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        y, c, s, mask = ctx.saved_tensors
        gy = (g * s) * mask  # d(c * s)/dc, through round (straight-through), clamp and relu
        gx = gy / s
        # d(c * s)/ds + d(h / s)/ds. The relu part of the mask does not belong in the second
        # term, but where it is 0, h = y = 0, so the term is 0 either way.
        gs = (g * c).sum_to_size(s.shape) + -(gy * (y / s)).sum_to_size(s.shape)
        return gx, gs, None


class QuantWeightFn(torch.autograd.Function):
    """``round_ste(w / s) * s`` with ``s = clamp_min(max|w|, eps) / threshold``, ``w = w_orig * mask``.

    Brevitas ``Int8WeightPerTensorFloat`` (narrow range, per-tensor abs-max) at any bit width.
    Its clamp to ``[-max_int, max_int]`` never acts (``|w / s| <= max_int`` by construction of
    the abs-max scale) and is straight-through, so it is left out.
    """

    @staticmethod
    def forward(ctx, w_orig: torch.Tensor, mask: torch.Tensor, threshold: torch.Tensor, eps: float) -> torch.Tensor:
        w = w_orig * mask
        a = torch.abs(w)
        m = torch.max(a)
        s = torch.clamp_min(m, eps) / threshold
        y = w / s
        r = torch.round(y)
        ctx.save_for_backward(w, a, m, s, y, r, mask, threshold)
        ctx.eps = eps
        return r * s

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        w, a, m, s, y, r, mask, threshold = ctx.saved_tensors
        gy = g * s  # from r * s w.r.t. r; round is straight-through
        gw = gy / s  # from w / s, w.r.t. w
        gs = (g * r).sum_to_size(s.shape) + -(gy * (y / s)).sum_to_size(s.shape)  # both uses of s
        if float(m) >= ctx.eps:  # else clamp_min blocks the gradient to the abs-max
            gm = gs / threshold
            flat_a, flat_w, flat_gw = a.view(-1), w.view(-1), gw.view(-1)
            ties = torch.nonzero(flat_a == m).view(-1)  # max: gradient shared evenly among ties
            flat_gw.index_add_(0, ties, (gm / len(ties)) * torch.sign(flat_w[ties]))  # abs: * sign
        return gw * mask, None, None, None
