"""Hardware costs of a trained network, each named and versioned: BOPs, EBOPs, da4ml LUTs and latency, and the fixed-point view they read; and the training FLOPs it took.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "COSTS": "qapbo.cost.definitions",
    "DEFINITIONS": "qapbo.cost.definitions",
    "HW_COSTS": "qapbo.cost.definitions",
    "LABELS": "qapbo.cost.definitions",
    "BOPS_DEFINITION": "qapbo.cost.definitions",
    "PERWEIGHT_BOPS_DEFINITION": "qapbo.cost.definitions",
    "FLOPS_DEFINITION": "qapbo.cost.definitions",
    "forward_flops": "qapbo.cost.flops",
    "epoch_flops": "qapbo.cost.flops",
    "training_flops": "qapbo.cost.flops",
    "BopsReport": "qapbo.cost.bops",
    "linear_bops": "qapbo.cost.bops",
    "model_bops": "qapbo.cost.bops",
    "measure_costs": "qapbo.cost.measure",
    "learned_costs": "qapbo.cost.learned",
    "hw_available": "qapbo.cost.measure",
    "require_hw": "qapbo.cost.measure",
    "FixedPointView": "qapbo.cost.fixedpoint",
    "fixed_point_view": "qapbo.cost.fixedpoint",
    "least_exact_precision": "qapbo.cost.fixedpoint",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
