"""BOPs and EBOPs of networks with a width per weight and per input: HGQ2's, and qapbo's learned precision.

qapbo's other costs read one format per layer (:mod:`qapbo.cost.bops`, :func:`qapbo.cost.measure.view_ebops`).
A network trained with per-weight precision (HGQ2, :mod:`qapbo.nn.learned`) is described instead by
its integer weights, each weight's width and each input's width; the functions here take exactly
that, as numpy arrays, so that both methods are costed by one piece of code. Weights are
``(outputs, inputs)`` integer codes, as in :func:`linear_ebops`; a width counts
the sign bit (what a Brevitas bit width counts) and is 0 for a pruned weight or input. Numpy only:
the EBOPs helpers every cost shares (:func:`weight_bits`, :func:`linear_ebops`, re-exported by
:mod:`qapbo.cost.measure`) live here.

* EBOPs, :data:`EBOPS_DEFINITION` (qapbo's ``ebops``, exactly :func:`linear_ebops`):
  ``sum_ij in_width_j * bits(w_ij) + sum_i b_width_i [b_i != 0]``, ``bits`` the bits of the integer
  *value* (:func:`weight_bits`: magnitude bits plus a sign bit, 0 for 0).
* BOPs, :data:`BOPS_DEFINITION` (``hawks2021-perweight-v1``): Hawks et al. 2021's
  ``m n (p b_a b_w + b_a + b_w + log2 n)`` with the sums replacing the products::

      BOPs = p * sum_ij b_a,j b_w,ij + sum_ij (b_a,j + b_w,ij) + m n log2 n

  ``p`` the share of non-zero weights and biases; with one width per layer it is Hawks' formula.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qapbo.cost.definitions import DEFINITIONS, PERWEIGHT_BOPS_DEFINITION

BOPS_DEFINITION = PERWEIGHT_BOPS_DEFINITION
EBOPS_DEFINITION = DEFINITIONS["ebops"]


def weight_bits(w_int: np.ndarray) -> np.ndarray:
    """Bits each integer weight needs: its magnitude's bits plus a sign bit; 0 for a pruned weight."""
    a = np.abs(np.asarray(w_int, np.int64))
    mag = np.where(a > 0, np.floor(np.log2(np.maximum(a, 1))) + 1, 0)
    return np.where(a > 0, mag + 1, 0).astype(np.int64)


def linear_ebops(w_int: np.ndarray, input_bits: np.ndarray | int, bias_bits: np.ndarray | int = 0) -> int:
    """EBOPs of one linear layer, weights ``(outputs, inputs)``: sum_ij in_bits_j * bits(w_ij) + sum_i bias_bits_i."""
    w = np.asarray(w_int)
    in_bits = np.broadcast_to(np.asarray(input_bits, np.int64), (w.shape[1],))
    b_bits = np.broadcast_to(np.asarray(bias_bits, np.int64), (w.shape[0],))
    return int((weight_bits(w) @ in_bits).sum() + b_bits.sum())


def _ints(a: Any, what: str) -> np.ndarray:
    v = np.asarray(a)
    if not np.array_equal(np.round(v), v):
        raise ValueError(f"{what} must hold integers (codes or widths), got {v.dtype} values that are not")
    return v.astype(np.int64)


def _layer(w_int: Any, in_width: Any, w_width: Any = None, b_int: Any = None,
           b_width: Any = None) -> tuple[np.ndarray, ...]:
    """Validated (w_int, in_width, w_width, b_int, b_width); missing widths are the bits of the values."""
    w = _ints(w_int, "w_int")
    if w.ndim != 2:
        raise ValueError(f"w_int must be (outputs, inputs), got shape {w.shape}")
    m, n = w.shape
    a = np.broadcast_to(_ints(in_width, "in_width"), (n,))
    ww = weight_bits(w) if w_width is None else np.broadcast_to(_ints(w_width, "w_width"), (m, n))
    b = np.zeros(0, np.int64) if b_int is None else _ints(b_int, "b_int")
    if b.shape not in ((0,), (m,)):
        raise ValueError(f"b_int must have one code per output ({m}), got shape {b.shape}")
    bw = weight_bits(b) if b_width is None else np.broadcast_to(_ints(b_width, "b_width"), b.shape)
    return w, a, ww, b, bw


def layer_ebops(w_int: Any, in_width: Any, b_int: Any = None, b_width: Any = None) -> int:
    """EBOPs of one layer: ``sum_ij in_width_j bits(w_ij) + sum_i b_width_i [b_i != 0]``.

    ``b_width`` defaults to the bits of each bias's value (:mod:`qapbo.nn.learned`'s rule); HGQ2's
    quantizers give their configured widths.
    """
    w, a, _, b, bw = _layer(w_int, in_width, None, b_int, b_width)
    return linear_ebops(w, a, np.where(b != 0, bw, 0)) if len(b) else linear_ebops(w, a)


def layer_bops(w_int: Any, in_width: Any, w_width: Any = None, b_int: Any = None) -> float:
    """BOPs of one layer (``hawks2021-perweight-v1``): ``p sum_ij a_j w_ij + sum_ij (a_j + w_ij) + m n log2 n``.

    ``w_width`` defaults to the bits of each weight's value; ``p`` counts the non-zero weights and
    biases (``b_int``; none if not given).
    """
    w, a, ww, b, _ = _layer(w_int, in_width, w_width, b_int)
    m, n = w.shape
    p = (np.count_nonzero(w) + np.count_nonzero(b)) / (w.size + b.size)
    af, wf = a.astype(np.float64), ww.astype(np.float64)
    return float(p * (wf @ af).sum() + m * af.sum() + wf.sum() + m * n * math.log2(n))


def network_ebops(layers: Sequence[Mapping[str, Any]]) -> tuple[int, list[int]]:
    """(total, per layer) EBOPs of layers given as mappings with ``w_int``, ``in_width`` and optional ``b_int``, ``b_width``
    (what :meth:`qapbo.nn.learned.LearnedTagger.fixed_point_layers` returns)."""
    per = [layer_ebops(r["w_int"], r["in_width"], r.get("b_int"), r.get("b_width")) for r in layers]
    return sum(per), per


def network_bops(layers: Sequence[Mapping[str, Any]]) -> tuple[float, list[float]]:
    """(total, per layer) BOPs of layers given as mappings with ``w_int``, ``in_width`` and optional ``w_width``, ``b_int``."""
    per = [layer_bops(r["w_int"], r["in_width"], r.get("w_width"), r.get("b_int")) for r in layers]
    return float(sum(per)), per


def perweight_costs(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``bops`` and ``ebops`` as flat record entries (with ``*_per_layer`` and ``*_definition``), as :func:`qapbo.cost.measure_costs` writes them."""
    bops, bops_per = network_bops(layers)
    ebops, ebops_per = network_ebops(layers)
    return {"bops": bops, "bops_per_layer": bops_per, "bops_definition": BOPS_DEFINITION,
            "ebops": float(ebops), "ebops_per_layer": [float(v) for v in ebops_per], "ebops_definition": EBOPS_DEFINITION}
