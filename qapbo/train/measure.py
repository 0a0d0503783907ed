"""Train one network and measure it: the path every study, QAP run and search trial takes.

A trained network's record carries its compute three ways: wall ``seconds``, process
``cpu_seconds`` and ``flops`` counted by the rule named in ``flops_definition``
(:mod:`qapbo.cost.flops`), the last two independent of the machine's load.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any, Callable

import torch

from qapbo.cost.definitions import FLOPS_DEFINITION
from qapbo.cost.flops import training_flops
from qapbo.cost.learned import bits_summary
from qapbo.cost.measure import measure_costs
from qapbo.data.split import JetData
from qapbo.nn.learned import LearnedTagger
from qapbo.nn.metrics import evaluate
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.nn.tagger import Tagger
from qapbo.train.config import TrainConfig
from qapbo.train.loop import EpochLog, TrainResult, train


@dataclass
class Measurement:
    """A trained model and everything measured about it (test-set metrics, BOPs, cost)."""

    model: Tagger
    training: TrainResult
    record: dict[str, Any]


def measure(model: Tagger, data: JetData, training: TrainResult | None = None,
            hw: bool | None = None) -> dict[str, Any]:
    """Test-set metrics, sparsity and every hardware cost (:mod:`qapbo.cost.measure`) of ``model`` as one
    flat JSON-able record. ``hw=False`` skips the da4ml trace (``luts``, ``latency``)."""
    metrics = evaluate(model, data.x_test, data.y_test, data.class_names)
    record: dict[str, Any] = {
        **metrics,
        **measure_costs(model, hw=hw),
        "model": model.spec.to_dict(),
        "model_name": model.spec.describe(),
        "data": data.describe(),
        "data_fingerprint": data.fingerprint,
        "synthetic": data.synthetic,
        "data_note": data.label,
    }
    if isinstance(model, LearnedTagger):
        record["learned_bits"] = bits_summary(model.fixed_point_layers())
    if training is not None:
        record |= {
            "epochs": training.epochs,
            "best_epoch": training.best_epoch,
            "best_val_loss": training.best_val_loss,
            "seconds": training.seconds,
            "cpu_seconds": training.cpu_seconds,
            "flops": training_flops(model.spec, training.train_rows, training.val_rows, training.epochs),
            "flops_definition": FLOPS_DEFINITION,
        }
    return record


def train_and_measure(
    data: JetData,
    spec: ModelSpec,
    config: TrainConfig,
    callback: Callable[[EpochLog], None] | None = None,
    model: Tagger | None = None,
    beta: Callable[[int], float] | None = None,
) -> Measurement:
    """Build (or continue) a model, train it to early stop, and measure it on the test split.

    ``beta``: a learned-precision net's EBOPs weight per epoch (:func:`qapbo.train.loop.train`)."""
    spec = spec.sized_for(data.n_features, data.n_classes)  # from the data; a mismatch is refused
    if model is None:
        model = build_model(spec, seed=config.seed)
    result = train(model, data, config, callback=callback, beta=beta)
    record = measure(model, data, result)
    record["train_config"] = config.to_dict()
    record["versions"] = versions()
    return Measurement(model=model, training=result, record=record)


def versions() -> dict[str, str]:
    import brevitas

    from qapbo._version import __version__

    return {"qapbo": __version__, "torch": torch.__version__, "brevitas": brevitas.__version__,
            "python": platform.python_version()}
