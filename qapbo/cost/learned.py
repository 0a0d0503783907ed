"""The fixed-point network of a learned-precision net (:mod:`qapbo.nn.learned`) and every cost of it.

A :class:`qapbo.nn.learned.LearnedTagger` is already a fixed-point network: every weight and bias is
an integer code at its own fractional bits (a dyadic constant ``n * 2**-f``), every input feature and
hidden neuron has its own two's-complement format. So, unlike a Brevitas net
(:mod:`qapbo.cost.fixedpoint`), nothing needs folding or a chosen precision: the layers of
:meth:`~qapbo.nn.learned.LearnedTagger.fixed_point_layers` *are* the network, and

* :func:`emulate` computes it in float64 (exact: every sum of dyadic products fits 53 bits);
* :func:`trace` writes it with da4ml's tracer, the arithmetic qapbo's ``luts`` and ``latency`` count
  for fixed-bit nets (:func:`qapbo.cost.measure.trace`): per layer ``x @ W.T + b`` with the dyadic
  weights as da4ml's constant-matrix multiplication (exact, no truncation), then ReLU and the next
  datalane's format, round half up and saturating (``RND``, ``SAT``), as the model's eval-mode
  forward; the logits are the exact sums;
* :func:`learned_costs` gives the record entries: ``bops`` (``hawks2021-perweight-v1``) and ``ebops``
  from :mod:`qapbo.cost.perweight`, ``luts``/``latency`` from the traced logic.

The input convention: each feature enters the logic in its own trained format, the conversion of the
float input (round half up, saturate) done before the port by the model's own input quantizer
(:func:`input_values`); qapbo's convention for fixed-bit nets converts the float input to
``ap_fixed<16,6>`` before the port in the same way. (HGQ2's own da4ml path rounds at the port
instead, one adder per input feature.) A datalane of width 0 (every code 0) is the constant 0.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from qapbo.cost.definitions import DEFINITIONS, SOLVER_OPTIONS
from qapbo.cost.perweight import perweight_costs
from qapbo.nn.learned import LearnedTagger

#: What the record's ``cost_fixedpoint`` says of a learned net's fixed-point form.
FIXEDPOINT_NOTE = {
    "input": "per feature, its trained format (the float input converted by the model's quantizer before the port)",
    "constants": "exact: every weight and bias is a dyadic constant at its own fractional bits",
    "activations": "per neuron, its trained unsigned format (RND, SAT)",
}


def lane_kif(layer: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """da4ml's (sign, integer bits without the sign, fraction bits) of each input of ``layer``.

    A width ``w`` with a sign holds codes ``[-2**(w-1), 2**(w-1) - 1]``, without one ``[0, 2**w - 1]``
    (:func:`qapbo.nn.learned.code_format`); at ``f`` fractional bits that is ``k + i + f = w``.
    """
    k = (np.asarray(layer["in_lo"]) < 0).astype(np.int64)
    f = np.asarray(layer["in_f"], np.int64)
    return k, np.asarray(layer["in_width"], np.int64) - k - f, f


def _dyadic(codes: np.ndarray, f: np.ndarray) -> np.ndarray:
    return np.asarray(codes, np.float64) * np.exp2(-np.asarray(f, np.float64))


def weights_of(layer: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(weights (outputs, inputs), biases) of ``layer`` as the exact dyadic values they are."""
    return _dyadic(layer["w_int"], layer["w_f"]), _dyadic(layer["b_int"], layer["b_f"])


def input_values(model: LearnedTagger, x: np.ndarray) -> np.ndarray:
    """Float rows ``x`` in each input feature's format, as the model's eval-mode input quantizer gives them
    (float32, as the model computes): the values the logic's input port receives."""
    from qapbo.nn.learned import quantize_data

    _, c_lo, c_hi = model.data_codes()
    s = model.datalane(0)
    with torch.no_grad():
        q = quantize_data(torch.from_numpy(np.ascontiguousarray(x, np.float32)), model.data_phi[s].detach(),
                          code_lo=c_lo[s], code_hi=c_hi[s])
    return q.double().numpy()


def emulate(layers: Sequence[Mapping[str, np.ndarray]], h: np.ndarray) -> np.ndarray:
    """Logits of the fixed-point network for inputs ``h`` already in the input formats (:func:`input_values`), in float64."""
    h = np.asarray(h, np.float64)
    for k, r in enumerate(layers):
        if k:
            f = np.asarray(r["in_f"], np.float64)
            h = np.clip(np.floor(np.maximum(h, 0.0) * np.exp2(f) + 0.5), r["in_lo"], r["in_hi"]) * np.exp2(-f)
        w, b = weights_of(r)
        h = h @ w.T + b
    return h


def trace(layers: Sequence[Mapping[str, np.ndarray]]) -> Any:
    """da4ml's combinational logic of the fixed-point network ``layers`` (module docstring)."""
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    inp = FixedVariableArrayInput((layers[0]["w_int"].shape[1],), solver_options=dict(SOLVER_OPTIONS))
    x = inp.quantize(*lane_kif(layers[0]))  # the port's per-feature formats: cost nothing
    for k, r in enumerate(layers):
        if k:
            x = np.maximum(x, 0.0).quantize(*lane_kif(r), overflow_mode="SAT", round_mode="RND")
        w, b = weights_of(r)
        x = x @ w.T + b
    return comb_trace(inp, x)


def run_logic(comb: Any, h: np.ndarray) -> np.ndarray:
    """Logits da4ml's traced logic computes (its interpreter, bit-exact) for inputs ``h`` in the input formats."""
    return np.asarray(comb.predict(np.ascontiguousarray(h, np.float64)), np.float64).reshape(len(h), -1)


def bits_summary(layers: Sequence[Mapping[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Mean and largest width (sign included) of the kept (non-zero) weights, of the input features and of
    the hidden neurons (0-width lanes included), for a record's ``learned_bits``."""
    w = np.concatenate([np.asarray(r["w_width"]).ravel() for r in layers])
    kept = w[w > 0]
    groups = {"weights": kept, "inputs": np.asarray(layers[0]["in_width"]),
              "activations": np.concatenate([np.asarray(r["in_width"]) for r in layers[1:]] or [np.zeros(0)])}
    return {k: {"mean": float(v.mean()) if v.size else 0.0, "max": int(v.max()) if v.size else 0}
            for k, v in groups.items()}


def learned_costs(model: LearnedTagger, hw: bool) -> dict[str, Any]:
    """``bops``, ``ebops`` and, with ``hw``, da4ml's ``luts`` and ``latency`` of ``model`` at its current
    formats and ranges (calibrate it first), each with its ``*_definition``, as flat record entries."""
    layers = model.fixed_point_layers()
    rec: dict[str, Any] = perweight_costs(layers) | {"cost_fixedpoint": dict(FIXEDPOINT_NOTE)}
    if not hw:
        return rec
    rec["cost_fixedpoint"]["da4ml_solver"] = dict(SOLVER_OPTIONS)
    t0 = time.perf_counter()
    comb = trace(layers)
    lo, hi = comb.latency
    return rec | {"luts": float(comb.cost), "luts_definition": DEFINITIONS["luts"],
                  "latency": float(hi), "latency_min": float(lo), "latency_definition": DEFINITIONS["latency"],
                  "cost_seconds": time.perf_counter() - t0}
