"""Training one network: the loop, iterative pruning, and train-and-measure.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "TrainConfig": "qapbo.train.config",
    "EpochLog": "qapbo.train.loop",
    "TrainResult": "qapbo.train.loop",
    "train": "qapbo.train.loop",
    "Measurement": "qapbo.train.measure",
    "train_and_measure": "qapbo.train.measure",
    "versions": "qapbo.train.measure",
    "iterative_pruning": "qapbo.train.prune",
    "prune_to_fraction_": "qapbo.train.prune",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
