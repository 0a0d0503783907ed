"""qapbo: quantization-aware pruning versus multi-objective Bayesian optimization for jet taggers.

Public API: data (:func:`load_data`, :class:`DataConfig`), models (:class:`ModelSpec`,
:func:`build_model`), training (:class:`TrainConfig`, :func:`train`), measurement
(:func:`train_and_measure`, :func:`model_bops`, :func:`evaluate`).
"""

__version__ = "0.1.0"

from qapbo.cost.bops import BOPS_DEFINITION, BopsReport, linear_bops, model_bops
from qapbo.data.split import CLASSES, FEATURES, DataConfig, JetData, load_data
from qapbo.errors import DataError, QapboError, SpecError, TrainingError
from qapbo.train.measure import Measurement, measure, train_and_measure
from qapbo.nn.metrics import classification_metrics, evaluate, sparsity
from qapbo.nn.models import JetTagger, ModelSpec, build_model
from qapbo.train.loop import EpochLog, TrainConfig, TrainResult, train

__all__ = [
    "BOPS_DEFINITION", "BopsReport", "CLASSES", "DataConfig", "DataError", "EpochLog", "FEATURES",
    "JetData", "JetTagger", "Measurement", "ModelSpec", "QapboError", "SpecError", "TrainConfig",
    "TrainResult", "TrainingError", "build_model", "classification_metrics", "evaluate",
    "linear_bops", "load_data", "measure", "model_bops", "sparsity", "train", "train_and_measure",
]
