"""QONNX export of a stored trial: the hand-off to hls4ml (and FINN).

Brevitas writes the graph (``Quant`` nodes carry each layer's scale and bit width) and qonnx cleans
it the way hls4ml's QONNX frontend expects. The export is then run through qonnx's own executor on
real test rows and compared with the stored model, so a user never takes an unchecked graph to
synthesis. A JSON file beside it carries what the graph cannot: the input standardization (the
network sees ``(x - mean) / scale``), feature and class names, and the trial's AUC and BOPs. A
second one, ``NAME.hls4ml.json``, is the hls4ml configuration whose fixed-point formats make
hls4ml's network the stored one (:mod:`qapbo.cost.fixedpoint`, :mod:`qapbo.export.hls4ml_config`).

A learned-precision trial (:mod:`qapbo.nn.learned`) is refused with one line (:data:`LEARNED_REFUSAL`):
its formats per neuron (round half up, saturating at each neuron's own bounds) have no exact form in
QONNX's ``Quant`` (one bit width per tensor, round half to even) or in hls4ml's per-layer types;
da4ml's own code generators take its exact logic (:func:`qapbo.cost.learned.trace`) to HLS or Verilog.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import optuna
import torch

from qapbo.cost.fixedpoint import LOGIT_TOLERANCE, FixedPointView, agreement, fixed_point_view, least_exact_precision
from qapbo.data.split import JetData
from qapbo.errors import ExportError, FixedPointError
from qapbo.export.files import atomic_write
from qapbo.export.hls4ml_config import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Hls4mlCheck,
    check_hls4ml,
    hls_config,
    prepare_graph,
    require_hls4ml,
)
from qapbo.export.trial import trial_data
from qapbo.nn.models import JetTagger
from qapbo.records import ATTR_KIND
from qapbo.study.file import StudyFile
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint, open_storage, redact, storage_url

if TYPE_CHECKING:
    from qapbo.export.keras import KerasExportReport

MAX_ABS_DIFF = 1e-4  # logits; float32 Gemm in another order differs by ~1e-7, a wrong scale by >1e-2

#: Why a learned-precision net (qapbo.nn.learned) is not exported, and what takes it to hardware instead.
LEARNED_REFUSAL = ("is a learned-precision net (its own fixed-point format per weight, input feature and neuron, "
                   "rounding half up and saturating per neuron), which neither QONNX's Quant nodes nor hls4ml's "
                   "per-layer types carry exactly, so nothing was written; qapbo export writes fixed-precision and "
                   "HGQ2 trials, and da4ml writes this one's exact logic as HLS or Verilog (README: \"Learned "
                   "per-weight precision in qapbo's own training\")")


@dataclass
class ExportReport:
    onnx_path: Path
    json_path: Path
    study_name: str
    trial: int
    rows_checked: int
    max_abs_diff: float
    same_predictions: int
    hls4ml_path: Path | None = None  # None: the network has float layers (no exact fixed-point form)
    precision: int | None = None  # relative precision (bits) of the emitted formats
    hls4ml_note: str = ""
    hls4ml_check: Hls4mlCheck | None = None
    strategy: str = STRATEGIES[DEFAULT_STRATEGY]  # hls4ml's name of the strategy written


def to_qonnx(model: JetTagger, path: str | Path) -> Path:
    """Write ``model`` as a cleaned QONNX graph (batch 1, input ``global_in``) to ``path``; a learned-precision
    net is refused (:data:`LEARNED_REFUSAL`)."""
    if getattr(model, "spec", None) is not None and model.spec.learned:
        raise ExportError(f"the network {LEARNED_REFUSAL}")
    try:
        from brevitas.export import export_qonnx
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
    except ImportError as exc:
        raise ExportError(f"QONNX export needs onnx, onnxoptimizer and qonnx ({exc.name} is missing): "
                          "pip install 'qapbo[export]'") from None

    class _Reference(torch.nn.Module):  # the Brevitas modules, not the fused fast path: they export
        def __init__(self, m: JetTagger):
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m.reference_forward(x)

    path = Path(path)
    wrapper = _Reference(model).eval()  # eval: BatchNorm must export (and keep) its running statistics
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = os.path.join(tmp, "raw.onnx")
        # dynamo=False: Brevitas' QONNX export goes through the TorchScript exporter
        with _quiet_native_stderr():  # torch's C++ exporter warns about the unused qonnx domain of float nets
            export_qonnx(wrapper, args=torch.zeros(1, model.spec.n_inputs), export_path=raw, dynamo=False)
        cleaned = cleanup_model(ModelWrapper(raw))
        atomic_write(path, cleaned.model.SerializeToString())
    return path


def check_qonnx(path: str | Path, model: JetTagger, x: np.ndarray) -> tuple[float, int]:
    """Run ``x`` through the exported graph with qonnx's executor; (max |logit diff|, same argmax)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    graph = ModelWrapper(str(path))
    name_in, name_out = graph.graph.input[0].name, graph.graph.output[0].name
    got = np.concatenate([execute_onnx(graph, {name_in: row[None, :]})[name_out] for row in x.astype(np.float32)])
    with torch.no_grad():
        want = model.reference_forward(torch.from_numpy(x.astype(np.float32))).numpy()
    return float(np.abs(got - want).max()), int((got.argmax(1) == want.argmax(1)).sum())


def export_trial(
    study: StudyFile,
    trial: int,
    out: str | Path | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    check_rows: int = 32,
    precision: int | None = None,
    check_with_hls4ml: bool = False,
    strategy: str = DEFAULT_STRATEGY,
) -> ExportReport | KerasExportReport:
    """Export trial ``trial`` of one of ``study``'s stored studies to QONNX and check it.

    Beside the graph go its JSON sidecar and, for a fully quantized network, the hls4ml
    configuration at ``precision`` relative bits (default: the least whose fixed-point emulation
    reproduces the stored model on every test row) for hls4ml's ``strategy`` (default: distributed
    arithmetic, the shift-and-add logic the ``luts`` cost counts). ``check_with_hls4ml`` also
    compiles hls4ml's C++ emulation from the very bytes that are then written, and keeps nothing
    unless it agrees on every test row. A trial of an hgq study is exported as its Keras model
    instead (:func:`qapbo.export.keras.export_hgq_trial`).
    """
    if strategy not in STRATEGIES:
        raise ExportError(f"unknown hls4ml strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if check_with_hls4ml:
        require_hls4ml(strategy)
    url = storage_url(study, storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise ExportError(f"no results at {redact(url)}; run the study first, or pass --storage")
    rdb = open_storage(url, read_only=True)  # export only reads the storage
    ostudy = optuna.load_study(study_name=_pick_study(study, rdb, study_name, url), storage=rdb)
    frozen = next((t for t in ostudy.get_trials(deepcopy=False) if t.number == trial), None)
    if frozen is None or frozen.state != optuna.trial.TrialState.COMPLETE:
        done = [t.number for t in ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        state = "does not exist" if frozen is None else f"is {frozen.state.name}"
        raise ExportError(f"trial {trial} of study {ostudy.study_name!r} {state}; COMPLETE trials: "
                          f"{_ranges(done) or 'none'} (see `qapbo compare` or `optuna trials`)")
    if "checkpoint" not in frozen.user_attrs:
        raise ExportError(f"trial {trial} of study {ostudy.study_name!r} has no checkpoint; it was not written by qapbo")
    if (frozen.user_attrs.get("model") or {}).get("precision") == "learned":
        raise ExportError(f"trial {trial} of study {ostudy.study_name!r} {LEARNED_REFUSAL}")
    if ostudy.user_attrs.get(ATTR_KIND) == "hgq":  # a Keras model: no QONNX, hls4ml's Keras frontend instead
        if precision is not None:
            raise ExportError("--precision applies to QONNX exports; an HGQ2 checkpoint carries its own formats")
        from qapbo.export.keras import export_hgq_trial

        return export_hgq_trial(study, ostudy, frozen, url, out, check_with_hls4ml, strategy)
    model, _ = load_checkpoint(artifact_store(artifact_dir(study, url), create=False), frozen.user_attrs["checkpoint"])
    if model.spec.bn == "no-stats":
        raise ExportError(f"trial {trial} of study {ostudy.study_name!r} normalizes with batch statistics at inference "
                          "(bn = \"no-stats\"), so it cannot run one event at a time on hardware; export a trial with "
                          "bn affine, no-affine or none")
    data = trial_data(study, frozen)

    out = Path(out or f"runs/{ostudy.study_name}-trial{trial}.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    unchecked = out.with_name(f".{out.name}.unchecked")  # `out` only ever holds a checked graph
    try:
        to_qonnx(model, unchecked)
        x = data.x_test[:check_rows]
        diff, same = check_qonnx(unchecked, model, x)
        if diff > MAX_ABS_DIFF:
            raise ExportError(f"the exported graph disagrees with the stored model (max logit difference "
                              f"{diff:.3g} on {len(x)} test rows), so it was not written; please report this")
        view, note = _fixed_point(model, data, precision)
        hls_path = out.with_suffix(".hls4ml.json") if view is not None else None
        # the bytes to be written are fixed first and the check reads them back: whatever hls4ml does to the
        # dictionary it converts with, the file a user loads is the one that was checked
        config = json.dumps(hls_config(view, prepare_graph(unchecked), strategy), indent=2).encode() \
            if view is not None else None
        hcheck = None
        if check_with_hls4ml:
            if config is None:
                raise ExportError(f"cannot check with hls4ml: {note}")
            hcheck = check_hls4ml(unchecked, json.loads(config), model, data.x_test, LOGIT_TOLERANCE)
            if not hcheck.ok:
                raise ExportError(f"hls4ml's emulation disagrees with the stored model (same class {hcheck.same_class}/"
                                  f"{hcheck.rows} test rows, max logit difference {hcheck.max_abs_diff:.3g}, tolerance "
                                  f"{hcheck.tolerance:g}), so nothing was written; try a larger --precision")
        side = out.with_suffix(".json")
        record = _sidecar(out, ostudy, frozen, model, data, len(x), diff, same)
        record["hls4ml"] = _hls4ml_record(hls_path, view, model, data, note, hcheck, strategy)
        if hls_path is not None and config is not None:
            atomic_write(hls_path, config)
        atomic_write(side, json.dumps(record, indent=2).encode())
        os.replace(unchecked, out)
    finally:
        if unchecked.exists():
            unchecked.unlink()
    return ExportReport(out, side, ostudy.study_name, trial, len(x), diff, same, hls_path,
                        view.precision if view is not None else None, note, hcheck, STRATEGIES[strategy])


def input_range(data: JetData) -> tuple[float, float]:
    """The smallest and largest standardized input value in all of the trial's data."""
    parts = [a for a in (data.x_train, data.x_val, data.x_test) if len(a)]
    return float(min(a.min() for a in parts)), float(max(a.max() for a in parts))


def _fixed_point(model: JetTagger, data: JetData, precision: int | None) -> tuple[FixedPointView | None, str]:
    rng = input_range(data)
    try:
        if precision is None:
            return least_exact_precision(model, data.x_test, rng), "least exact on the test rows"
        return fixed_point_view(model, rng, precision), "set by --precision"
    except FixedPointError as exc:
        if precision is not None or "float" not in str(exc):
            raise ExportError(str(exc)) from None
        return None, f"no hls4ml configuration: {exc}"


def _hls4ml_record(path: Path | None, view: FixedPointView | None, model: JetTagger, data: JetData, note: str,
                   hcheck: Hls4mlCheck | None, strategy: str) -> dict[str, Any]:
    if view is None:
        return {"config": None, "why": note}
    same, diff = agreement(view, model, data.x_test)
    return {
        "config": path.name,
        "use": "hls4ml.converters.convert_from_onnx_model(graph, hls_config=<this file>, io_type='io_parallel') "
               "on the graph after qonnx cleanup_model, GemmToMatMul, cleanup_model",
        "strategy": STRATEGIES[strategy],
        "strategy_note": {
            "da": "distributed arithmetic: every Dense as da4ml's shift-and-add logic, the arithmetic the luts cost "
                  "counts; hls4ml needs da4ml installed to convert it (pip install 'qapbo[hw]')",
            "latency": "hls4ml's fully parallel multiplier design (DSPs); the luts cost does not describe it",
        }[strategy],
        "definition": view.definition,
        "precision_bits": view.precision,
        "precision_choice": note,
        "input_range": list(view.input_range),
        "input_format": view.input_format.hls("RND_CONV,SAT"),
        "constants": {name: fmt.hls() for name, fmt in view.constants()},
        "emulation": {"test_rows": len(data.x_test), "same_class": same, "max_abs_logit_diff": diff,
                      "tolerance": LOGIT_TOLERANCE},
        "hls4ml_check": None if hcheck is None else {
            "strategy": hcheck.strategy, "test_rows": hcheck.rows, "same_class": hcheck.same_class,
            "max_abs_logit_diff": hcheck.max_abs_diff, "tolerance": hcheck.tolerance,
            "da_kernel_luts": hcheck.da_kernel_luts},
    }


def _pick_study(study: StudyFile, rdb: optuna.storages.BaseStorage, name: str | None, url: str) -> str:
    every = optuna.get_all_study_names(rdb)
    stored = [n for n in study.all_study_names() if n in set(every)]
    if name is not None:
        if name not in stored:
            raise ExportError(f"no study {name!r} of {study.path} in {redact(url)}; the storage holds: "
                              f"{', '.join(every) or 'none'}")
        return name
    if len(stored) != 1:
        which = f"several: {', '.join(stored)}; choose one with --study" if stored else "none; run the study first"
        raise ExportError(f"studies of {study.path} in {redact(url)}: {which}")
    return stored[0]


def _costs(trial: optuna.trial.FrozenTrial, model: JetTagger) -> dict[str, Any]:
    """EBOPs and da4ml's LUTs and latency beside BOPs: as recorded, else measured now (qapbo.cost.measure)."""
    from qapbo.cost.definitions import COSTS
    from qapbo.cost.measure import measure_costs

    a = trial.user_attrs
    if any(a.get(c) is None for c in COSTS):
        a = {**measure_costs(model), **{k: v for k, v in a.items() if v is not None}}
    return {k: a.get(k) for c in COSTS[1:] for k in (c, f"{c}_definition")} | \
        {"cost_fixedpoint": a.get("cost_fixedpoint"), "cost_note": a.get("cost_note")}


def _sidecar(out: Path, ostudy: optuna.Study, trial: optuna.trial.FrozenTrial, model: JetTagger, data: JetData,
             rows: int, diff: float, same: int) -> dict[str, Any]:
    a = trial.user_attrs
    return {
        "qonnx": out.name,
        "study": ostudy.study_name,
        "trial": trial.number,
        "params": trial.params,
        "auc": a.get("auc"), "accuracy": a.get("accuracy"), "bops": a.get("bops"),
        "bops_definition": a.get("bops_definition"), "sparsity": a.get("sparsity"),
        **_costs(trial, model),
        "spec": model.spec.to_dict(),
        "data": data.label,
        "synthetic": data.synthetic,
        "input": {
            "name": "global_in",
            "features": list(data.feature_names),
            "standardize": "the network expects (x - mean) / scale for each feature, in this order",
            "mean": data.scaler.mean_.tolist(),
            "scale": data.scaler.scale_.tolist(),
        },
        "output": {"classes": list(data.class_names), "kind": "logits (softmax for probabilities)"},
        "check": {"executor": "qonnx.core.onnx_exec", "test_rows": rows, "max_abs_logit_diff": diff,
                  "same_prediction": same},
    }


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _ranges(numbers: list[int]) -> str:
    parts, start = [], None
    for i, n in enumerate(numbers):
        start = n if start is None else start
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)
