"""Export of a stored HGQ2 checkpoint: the Keras model and its hls4ml configuration, checked.

An hgq trial (:mod:`qapbo.study.hgq`) holds a calibrated HGQ2 model: every weight, bias, input and
activation already has the fixed-point format HGQ2 learned, so hls4ml's Keras v3 frontend reads
each format from the model itself and the configuration only chooses what the model does not say:
the strategy (hls4ml's ``distributed_arithmetic`` by default, the shift-and-add logic da4ml costs as
``luts``; or ``Latency``), reuse factor 1 and a placeholder default precision that every HGQ2
quantizer overrides. ``--check-hls4ml`` converts the file as written, compiles hls4ml's C++
emulation and keeps nothing unless it gives the stored model's logits on every test row.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from qapbo.errors import ExportError
from qapbo.export.files import atomic_write
from qapbo.export.hls4ml_config import STRATEGIES, Hls4mlCheck
from qapbo.export.trial import trial_data

HGQ_TOLERANCE = 0.0  # HGQ2's arithmetic is fixed point throughout: hls4ml must give the very same logits
CONVERT = dict(backend="Vitis", io_type="io_parallel")  # what the check converts with; the README's recipe


@dataclass
class KerasExportReport:
    keras_path: Path
    json_path: Path
    hls4ml_path: Path
    study_name: str
    trial: int
    rows_checked: int
    same_predictions: int
    strategy: str
    hls4ml_check: Hls4mlCheck | None = None


def hgq_hls_config(strategy: str) -> dict[str, Any]:
    """``hls_config`` for ``hls4ml.converters.convert_from_keras_model`` of a calibrated HGQ2 model."""
    return {"Model": {"Precision": "fixed<1,0>", "ReuseFactor": 1, "Strategy": STRATEGIES[strategy]}}


def hls4ml_keras_predict(keras_path: str | Path, config: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, Any]:
    """Convert the Keras file with ``config`` (a copy: hls4ml fills in what it is given), compile hls4ml's
    C++ emulation and predict ``x``: (logits, hls4ml's model)."""
    from qapbo.export.hls4ml_config import require_hls4ml
    from qapbo.train.hgq import load_checkpoint

    require_hls4ml("da" if config["Model"]["Strategy"] == STRATEGIES["da"] else "latency")
    model = load_checkpoint(keras_path)
    import hls4ml

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hm = hls4ml.converters.convert_from_keras_model(model, hls_config=copy.deepcopy(config),
                                                        output_dir=str(Path(tmp) / "hls4ml_prj"), **CONVERT)
        hm.compile()
        got = np.asarray(hm.predict(np.ascontiguousarray(x, np.float64)), np.float64).reshape(len(x), -1)
        return got, hm


def export_hgq_trial(study: Any, ostudy: optuna.Study, frozen: optuna.trial.FrozenTrial, url: str,
                     out: str | Path | None, check_with_hls4ml: bool, strategy: str) -> KerasExportReport:
    """Write trial ``frozen`` of the hgq study ``ostudy`` as ``NAME.keras``, ``NAME.hls4ml.json`` and
    ``NAME.json`` (what the network expects and what was measured); with ``check_with_hls4ml``
    nothing is written unless hls4ml's emulation of the written configuration matches on every test row."""
    from qapbo.study.hgq import load_stored_model
    from qapbo.train.hgq import keras_logits, logic_logits, require_hgq, trace_hgq

    require_hgq()
    model = load_stored_model(study, url, frozen)
    data = trial_data(study, frozen)
    want = keras_logits(model, data.x_test)
    traced = trace_hgq(model, data.x_train)  # the stored model is calibrated: this recalibration changes nothing
    logic = logic_logits(traced, data.x_test)
    same = int((logic.argmax(1) == want.argmax(1)).sum())
    if not np.array_equal(logic, want):
        raise ExportError(f"da4ml's logic of trial {frozen.number} disagrees with the stored model on "
                          f"{len(want) - same} test rows, so nothing was written; please report this")
    out = Path(out or f"runs/{ostudy.study_name}-trial{frozen.number}.keras")
    if out.suffix != ".keras":
        raise ExportError(f"--out {out}: an HGQ2 checkpoint is a Keras model; name a .keras file")
    out.parent.mkdir(parents=True, exist_ok=True)
    config = json.dumps(hgq_hls_config(strategy), indent=2).encode()
    hls_path, side = out.with_suffix(".hls4ml.json"), out.with_suffix(".json")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staged = Path(tmp) / out.name
        model.save(staged)
        hcheck = None
        if check_with_hls4ml:
            got, hm = hls4ml_keras_predict(staged, json.loads(config), data.x_test)
            kernels = [la.attributes["da_kernel_cost"] for la in hm.get_layers() if "da_kernel_cost" in la.attributes]
            hcheck = Hls4mlCheck(len(got), int((got.argmax(1) == want.argmax(1)).sum()),
                                 float(np.abs(got - want).max()), HGQ_TOLERANCE, STRATEGIES[strategy],
                                 float(sum(kernels)) if kernels else None)
            if not hcheck.ok:
                raise ExportError(f"hls4ml's emulation disagrees with the stored model (same class "
                                  f"{hcheck.same_class}/{hcheck.rows} test rows, max logit difference "
                                  f"{hcheck.max_abs_diff:.3g}), so nothing was written; please report this")
        record = _sidecar(out, hls_path, ostudy, frozen, data, same, strategy, hcheck)
        atomic_write(hls_path, config)
        atomic_write(side, json.dumps(record, indent=2).encode())
        os.replace(staged, out)
    return KerasExportReport(out, side, hls_path, ostudy.study_name, frozen.number, len(want), same,
                             STRATEGIES[strategy], hcheck)


def _sidecar(out: Path, hls_path: Path, ostudy: optuna.Study, trial: optuna.trial.FrozenTrial, data: Any, same: int,
             strategy: str, hcheck: Hls4mlCheck | None) -> dict[str, Any]:
    a = trial.user_attrs
    return {
        "keras": out.name,
        "study": ostudy.study_name,
        "trial": trial.number,
        "params": trial.params,
        "method": "HGQ2 (per-weight learned bit widths; Sun et al., arXiv:2405.00645)",
        **{k: a.get(k) for k in ("auc", "accuracy", "sparsity", "weight_bits_mean", "beta", "luts", "latency", "bops",
                                 "ebops", "ebops_hgq")},
        **{f"{k}_definition": a.get(f"{k}_definition") for k in ("luts", "latency", "bops", "ebops", "ebops_hgq")},
        "data": data.label,
        "synthetic": data.synthetic,
        "input": {
            "features": list(data.feature_names),
            "standardize": "the network expects (x - mean) / scale for each feature, in this order; its input "
                           "quantizer then takes the fixed-point format HGQ2 learned for each feature",
            "mean": data.scaler.mean_.tolist(),
            "scale": data.scaler.scale_.tolist(),
        },
        "output": {"classes": list(data.class_names), "kind": "logits (softmax for probabilities)"},
        "load": "keras.models.load_model(<keras file>) with KERAS_BACKEND=jax and `import hgq` (pip install "
                "'qapbo[hgq]')",
        "check": {"da4ml_logic": {"test_rows": len(data.x_test), "same_class": same, "bit_exact": True}},
        "hls4ml": {
            "config": hls_path.name,
            "use": "hls4ml.converters.convert_from_keras_model(model, hls_config=<this file>, backend='Vitis', "
                   "io_type='io_parallel')",
            "strategy": STRATEGIES[strategy],
            "formats": "every fixed-point format comes from the model's HGQ2 quantizers; the default precision in "
                       "the file is a placeholder they override",
            "hls4ml_check": None if hcheck is None else {
                "strategy": hcheck.strategy, "test_rows": hcheck.rows, "same_class": hcheck.same_class,
                "max_abs_logit_diff": hcheck.max_abs_diff, "da_kernel_luts": hcheck.da_kernel_luts},
        },
    }
