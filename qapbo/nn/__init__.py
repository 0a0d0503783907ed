"""Networks: the model spec, the Brevitas-quantized jet tagger, the learned-precision one, their fused quantizers and metrics.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "ModelSpec": "qapbo.nn.spec",
    "BN_MODES": "qapbo.nn.spec",
    "FLOAT_BITS": "qapbo.nn.spec",
    "MIN_BITS": "qapbo.nn.spec",
    "MAX_BITS": "qapbo.nn.spec",
    "PRECISIONS": "qapbo.nn.spec",
    "Tagger": "qapbo.nn.tagger",
    "JetTagger": "qapbo.nn.models",
    "LearnedTagger": "qapbo.nn.learned",
    "build_model": "qapbo.nn.models",
    "classification_metrics": "qapbo.nn.metrics",
    "evaluate": "qapbo.nn.metrics",
    "macro_auc": "qapbo.nn.metrics",
    "sparsity": "qapbo.nn.metrics",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
