"""The hand-off to hardware: QONNX (or, for HGQ2, Keras) export of a stored trial and the hls4ml configuration
that reproduces it.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "export_trial": "qapbo.export.qonnx",
    "to_qonnx": "qapbo.export.qonnx",
    "check_qonnx": "qapbo.export.qonnx",
    "hls_config": "qapbo.export.hls4ml_config",
    "check_hls4ml": "qapbo.export.hls4ml_config",
    "STRATEGIES": "qapbo.export.hls4ml_config",
    "export_hgq_trial": "qapbo.export.keras",
    "hgq_hls_config": "qapbo.export.keras",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
