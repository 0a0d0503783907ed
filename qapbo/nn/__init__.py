"""Networks: the model spec, the Brevitas-quantized jet tagger, its fused quantizers and its metrics.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "ModelSpec": "qapbo.nn.spec",
    "BN_MODES": "qapbo.nn.spec",
    "FLOAT_BITS": "qapbo.nn.spec",
    "MIN_BITS": "qapbo.nn.spec",
    "MAX_BITS": "qapbo.nn.spec",
    "JetTagger": "qapbo.nn.models",
    "build_model": "qapbo.nn.models",
    "classification_metrics": "qapbo.nn.metrics",
    "evaluate": "qapbo.nn.metrics",
    "macro_auc": "qapbo.nn.metrics",
    "sparsity": "qapbo.nn.metrics",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
