"""Jet data: the sources (synthetic toy, pythia-jets, the published release), seeded splits and scaling, and the Pythia 8 + FastJet generator.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "FEATURES": "qapbo.data.config",
    "CLASSES": "qapbo.data.config",
    "SOURCES": "qapbo.data.config",
    "GENERATED": "qapbo.data.config",
    "DataConfig": "qapbo.data.config",
    "JetData": "qapbo.data.split",
    "data_label": "qapbo.data.split",
    "load_data": "qapbo.data.split",
    "prepare": "qapbo.data.split",
    "randomize_labels": "qapbo.data.split",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
