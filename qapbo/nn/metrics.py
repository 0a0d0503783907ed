"""Classifier metrics for jet taggers (scikit-learn underneath) and sparsity."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve

from qapbo.nn.tagger import Tagger

SIGNAL_EFFICIENCY = 0.5  # background efficiency is quoted at 50 % signal efficiency, per class


def classification_metrics(proba: np.ndarray, y: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Macro and per-class one-vs-rest AUC, accuracy, background efficiency at 50 % signal eff.

    The macro AUC is the unweighted mean of the per-class one-vs-rest AUCs, which is what
    ``roc_auc_score(..., multi_class="ovr", average="macro")`` computes.
    """
    proba = np.asarray(proba, dtype=np.float64)
    auc, bkg = {}, {}
    for c, name in enumerate(class_names):
        is_c = y == c
        if is_c.all() or not is_c.any():
            auc[name] = float("nan")
            bkg[name] = float("nan")
            continue
        auc[name] = float(roc_auc_score(is_c, proba[:, c]))
        fpr, tpr, _ = roc_curve(is_c, proba[:, c])
        bkg[name] = _fpr_at_tpr(fpr, tpr, SIGNAL_EFFICIENCY)
    return {
        "auc": float(np.nanmean(list(auc.values()))),
        "auc_per_class": auc,
        "accuracy": float(accuracy_score(y, proba.argmax(axis=1))),
        "bkg_eff_at_sig50": bkg,
    }


def macro_auc(proba: np.ndarray, y: np.ndarray) -> float:
    """Macro one-vs-rest AUC alone: what per-epoch reporting needs, 5x cheaper than everything."""
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=np.arange(proba.shape[1])))


def _fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Lowest false-positive rate reaching ``target`` TPR, interpolated linearly along the ROC."""
    i = int(np.searchsorted(tpr, target, side="left"))  # first point with tpr >= target
    if tpr[i] == target or i == 0:
        return float(fpr[i])
    t = (target - tpr[i - 1]) / (tpr[i] - tpr[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def sparsity(model: Tagger) -> dict[str, Any]:
    """Share of pruned weights per linear layer and over all linear weights (biases excluded)."""
    per_layer, pruned, total = [], 0, 0
    for m in model.masks():
        z = int((m == 0).sum())
        per_layer.append(z / m.numel())
        pruned += z
        total += m.numel()
    return {"sparsity": pruned / total, "sparsity_per_layer": per_layer}


AIQ_BETA = 2.0  # PROTOCOL: aIQ = (AUC^beta * network efficiency)^(1 / (beta + 1))


def layer_efficiency(activations: np.ndarray) -> float:
    """Shannon entropy (bits) of a layer's binary microstates (x > 0 per neuron), over its width.

    Each sample's activation pattern is one microstate; a layer of width w can carry at most w
    bits, reached when all 2^w patterns are equally frequent.
    """
    a = np.asarray(activations)
    if a.ndim != 2 or a.shape[1] == 0 or a.shape[0] == 0:
        raise ValueError(f"activations must be a non-empty (samples, width) array, got shape {a.shape}")
    states = np.packbits(a > 0, axis=1)  # one row of bytes per microstate
    _, counts = np.unique(states, axis=0, return_counts=True)
    p = counts / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    return max(entropy, 0.0) / a.shape[1]


def neural_efficiency(layer_activations: Sequence[np.ndarray], auc: float, beta: float = AIQ_BETA) -> dict[str, Any]:
    """Per-layer efficiencies, network efficiency (their geometric mean) and aIQ."""
    effs = [layer_efficiency(a) for a in layer_activations]
    net = float(np.exp(np.mean(np.log(effs)))) if all(e > 0 for e in effs) else 0.0
    aiq = float((auc ** beta * net) ** (1.0 / (beta + 1.0)))
    return {"layer_efficiency": effs, "network_efficiency": net, "aiq": aiq}


def evaluate(model: Tagger, x: np.ndarray, y: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """All classification metrics of ``model`` on ``(x, y)``, its sparsity and neural efficiency."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    proba = model.predict_proba(xt).numpy()
    out = classification_metrics(proba, np.asarray(y), class_names) | sparsity(model)
    acts = [a.numpy() for a in model.layer_activations(xt)]
    return out | neural_efficiency(acts, out["auc"])
