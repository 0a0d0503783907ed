"""Hardware costs of a trained network: every cost qapbo measures, each named and versioned.

BOPs (PROTOCOL's formula, :mod:`qapbo.cost.bops`) is a proxy that ignores weight values; the costs
here read the network's fixed-point form (:func:`qapbo.cost.fixedpoint.fixed_point_view`, the same
one the hls4ml configuration is written from) and so see pruning and the size of each weight:

* ``ebops``: effective BOPs as HGQ2 defines them (``_compute_ebops`` of its dense layer): over
  every multiply, the input's bits times the bits of that weight's integer value, plus, per
  output, the bits of its (folded) bias. A pruned (zero) weight costs 0; no accumulator term.
* ``luts`` and ``latency``: the fixed-point network traced with da4ml (optional extra
  ``qapbo[hw]``), which writes every constant multiplication as shift-and-add logic: ``luts``
  is its cost (adder bits, da4ml's LUT estimate), ``latency`` its adder depth (the longest
  path, in adder levels).

Conventions, so that every network gets a number (a cost never fails a trial):

* the float input arrives as hls4ml's default ``ap_fixed<16,6>`` (configurable); a quantized
  input keeps its quantizer's integer codes;
* a float (32-bit) layer is written as hls4ml's default configuration writes it: weights and
  activations in ``ap_fixed<16,6>`` (:data:`FLOAT_FORMAT`);
* the folded float constants (scales, biases, requantizers) keep :data:`PRECISION` significant
  bits (the fixed-point view's rule);
* BatchNorm without running statistics has no fixed-point form: its ``ebops``, ``luts`` and
  ``latency`` are missing (None), with the reason in ``cost_note``.

A learned-precision net (:class:`qapbo.nn.learned.LearnedTagger`) is its own exact fixed-point
network: :func:`measure_costs` costs it by :mod:`qapbo.cost.learned` (per-weight BOPs
``hawks2021-perweight-v1`` and EBOPs from :mod:`qapbo.cost.perweight`, da4ml's logic of its
per-feature input formats and per-weight dyadic constants), with the same names and definitions.

Written by hand because no library turns a Brevitas network into da4ml's tracer; the adder
logic and its cost are da4ml's own.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from qapbo.cost.bops import model_bops
from qapbo.cost.definitions import DEFINITIONS, HW_COSTS, HW_EXTRA, SOLVER_OPTIONS
from qapbo.cost.fixedpoint import Fixed, FixedPointView, LayerView, Requantizer, fixed_point_view
from qapbo.cost.learned import learned_costs
from qapbo.cost.perweight import linear_ebops, weight_bits  # noqa: F401  (re-exported: qapbo's EBOPs helpers)
from qapbo.errors import CostError, FixedPointError
from qapbo.nn.learned import LearnedTagger
from qapbo.nn.models import JetTagger
from qapbo.nn.spec import FLOAT_BITS

#: hls4ml's default fixed-point type: the float input's format and a float layer's weights and activations.
INPUT_FORMAT = Fixed(6, 10)

FLOAT_FORMAT = Fixed(6, 10)


#: Relative precision (significant bits) of the folded float constants in the cost's fixed-point view.
PRECISION = 12


def hw_available() -> bool:
    try:
        import da4ml.trace  # noqa: F401
    except ImportError:
        return False
    return True


def require_hw(costs: Any, where: str = "") -> None:
    """Refuse, with the install line, costs that need da4ml when it is missing."""
    need = [c for c in costs if c in HW_COSTS]
    if need and not hw_available():
        raise CostError(f"{where}{' and '.join(need)} need da4ml, which is not installed: {HW_EXTRA}")


@dataclass(frozen=True)
class CostConfig:
    """How the fixed-point form behind ``ebops``, ``luts`` and ``latency`` is chosen."""

    input_format: Fixed = INPUT_FORMAT
    float_format: Fixed = FLOAT_FORMAT
    precision: int = PRECISION

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input_format.hls(), "float_layers": self.float_format.hls(),
                "constants_precision": self.precision, "da4ml_solver": dict(SOLVER_OPTIONS)}


def cost_view(model: JetTagger, config: CostConfig = CostConfig()) -> FixedPointView:
    """The fixed-point view every cost reads (the input range is unused: the input format is given)."""
    top = config.input_format.bounds[1]
    return fixed_point_view(model, (-top, top), config.precision, input_format=config.input_format,
                            float_format=config.float_format)


def view_ebops(view: FixedPointView) -> tuple[int, list[int]]:
    """(total, per layer) EBOPs of a fixed-point view.

    A layer's input bits are the width of what feeds it (the input format or quantizer codes,
    then the activation codes); a bias costs its format's width where it is non-zero.
    """
    if view.input_quantizer is not None:
        in_bits = view.input_quantizer.code_format.width
    else:
        in_bits = view.input_format.width
    per = []
    for layer in view.layers:
        nz_bias = np.round(layer.bias * 2.0 ** layer.bias_format.fraction) != 0
        per.append(linear_ebops(layer.weights, in_bits, np.where(nz_bias, layer.bias_format.width, 0)))
        if layer.requantizer is not None:
            in_bits = layer.requantizer.code_format.width
    return sum(per), per


def _kif(f: Fixed) -> tuple[int, int, int]:
    """da4ml's (sign, integer bits without sign, fraction bits) of a format."""
    k = 1 if f.signed else 0
    return k, f.integer - k, f.fraction


def _requantize_trace(x: Any, q: Requantizer) -> Any:
    """``clamp(round(x / s), lo, hi)``: a constant multiplication, then a saturating round."""
    inv = float(q.inv_scale_format.round(q.inv_scale))
    k, i, _ = _kif(q.code_format)
    v = (x @ np.diag(np.full(x.shape[0], inv))).quantize(k, i, 0, "SAT", "RND")  # CMVM, see _affine_trace
    if q.min_code > -(2 ** i) * k:  # narrow range: one code less than the format holds
        v = np.maximum(v, float(q.min_code))
    if q.max_code < 2 ** i - 1:
        v = np.minimum(v, float(q.max_code))
    return v


def _affine_trace(acc: Any, layer: LayerView) -> Any:
    scale = layer.scale_format.round(layer.scale)
    bias = layer.bias_format.round(layer.bias)
    # per-output constant multiplications as a diagonal matrix: da4ml's CMVM writes them exactly as
    # shift-and-add (its scalar `*` wrapped negative products of wide operands in 0.6.0)
    y = acc @ np.diag(scale) + bias
    # truncate to the result's fraction bits; its range holds every value by construction, so the
    # integer part is left as traced (da4ml 0.6.0's interpreter mis-wraps wide values otherwise)
    return y.quantize(f=layer.result_format.fraction, round_mode="TRN")


def trace(view: FixedPointView) -> Any:
    """da4ml's combinational logic of ``view``: the same arithmetic as :meth:`FixedPointView.emulate`."""
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    n_in = view.layers[0].weights.shape[1]
    inp = FixedVariableArrayInput((n_in,), solver_options=dict(SOLVER_OPTIONS))
    x = inp.quantize(*_kif(view.input_format))  # the input port's format: costs nothing
    if view.input_quantizer is not None:
        x = _requantize_trace(x, view.input_quantizer)
    for layer in view.layers:
        x = _affine_trace(x @ layer.weights.T.astype(np.float64), layer)
        if layer.requantizer is not None:
            x = _requantize_trace(np.maximum(x, 0.0), layer.requantizer)
    return comb_trace(inp, x)


def run_logic(comb: Any, view: FixedPointView, x: np.ndarray) -> np.ndarray:
    """Logits the traced logic computes for float rows ``x`` (converted to the input format first)."""
    h = view.input_format.round_even_saturate(np.asarray(x, np.float64))
    return np.array([np.asarray(comb(row), np.float64) for row in h])


def measure_costs(model: JetTagger, config: CostConfig = CostConfig(), hw: bool | None = None) -> dict[str, Any]:
    """Every cost of ``model`` as flat record entries: ``<cost>``, ``<cost>_definition``, details.

    ``hw=None`` traces with da4ml when it is installed; without it ``luts`` and ``latency``
    are left out of the record (a notice says so once per process, see :func:`notice_once`).
    A learned-precision net (:class:`qapbo.nn.learned.LearnedTagger`) is costed from its own exact
    fixed-point form (:func:`qapbo.cost.learned.learned_costs`; ``config`` does not apply).
    """
    if hw is None:
        hw = hw_available()
        if not hw:
            notice_once()
    if isinstance(model, LearnedTagger):
        return learned_costs(model, hw)
    bops = model_bops(model)
    rec: dict[str, Any] = {"bops": bops.total, "bops_per_layer": [layer.bops for layer in bops.layers],
                           "bops_definition": bops.definition, "cost_fixedpoint": config.to_dict()}
    try:
        view = cost_view(model, config)
    except FixedPointError as exc:
        rec["cost_note"] = f"no fixed-point form ({exc}): ebops, luts and latency not measured"
        return rec
    total, per = view_ebops(view)
    rec |= {"ebops": float(total), "ebops_per_layer": [float(v) for v in per], "ebops_definition": DEFINITIONS["ebops"]}
    if FLOAT_BITS in model.spec.weight_bits or FLOAT_BITS in model.spec.act_bits:
        rec["cost_note"] = f"float layers costed as hls4ml's default {config.float_format.hls()}"
    if not hw:
        return rec
    t0 = time.perf_counter()
    comb = trace(view)
    lo, hi = comb.latency
    rec |= {"luts": float(comb.cost), "luts_definition": DEFINITIONS["luts"],
            "latency": float(hi), "latency_min": float(lo), "latency_definition": DEFINITIONS["latency"],
            "cost_seconds": time.perf_counter() - t0}
    return rec


_noticed = [False]


def notice_once() -> None:
    if not _noticed[0]:
        _noticed[0] = True
        print(f"qapbo: note: da4ml is not installed, so luts and latency are not recorded ({HW_EXTRA})",
              file=sys.stderr, flush=True)
