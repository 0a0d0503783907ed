"""Jet data ready for training: one interface over every source (:func:`load_data`).

Every source ends in :func:`prepare`, which validates the arrays, makes stratified seeded
train/validation/test splits, fits a StandardScaler on the training split only (the reference
code fit one per split, a leak we do not copy) and fingerprints data plus split settings so
every result can say exactly what it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from qapbo.data.config import (
    CLASSES,
    FEATURES,
    SYNTHETIC_VERSION,
    DataConfig,
)
from qapbo.data.pythia import GenSettings
from qapbo.data.sources import (
    read_hdf5,
    read_openml,
    read_pythia_jets,
    read_table,
    synthetic_jets,
)
from qapbo.errors import DataError


@dataclass
class JetData:
    """Standardized float32 splits with integer labels, ready for training."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    fingerprint: str
    source: str
    synthetic: bool
    scaler: StandardScaler = field(repr=False)
    config: DataConfig | None = field(default=None, repr=False)
    randomized_rows: int = 0  # training + validation rows whose label was drawn at random
    generation: dict[str, Any] | None = field(default=None, repr=False)  # pythia-jets: the set's manifest

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def label(self) -> str:
        """How outputs name this data; says "synthetic" or "no detector simulation" whenever it is."""
        if self.generation and self.generation.get("note"):  # pythia-jets: what the set says it is
            return f"{self.source}: {self.generation['note']}"
        if self.config is not None and self.config.path and self.source in ("table", "hdf5"):
            files = [Path(p).name for p in (self.config.path, self.config.test_path) if p]
            return f"{self.source} {' + '.join(files)}"
        return data_label(self.source)

    @property
    def sizes(self) -> str:
        """The split, as the lines that open a run print it beside :attr:`label`."""
        return (f"{len(self.y_train):,} train / {len(self.y_val):,} validation / {len(self.y_test):,} test rows, "
                f"{self.n_classes} classes")

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "synthetic": self.synthetic,
            "fingerprint": self.fingerprint,
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            "classes": list(self.class_names),
            "features": list(self.feature_names),
            "fold": self.config.fold if self.config else 0,
            "folds": self.config.folds if self.config else 1,
            "randomize_labels": self.config.randomize_labels if self.config else 0.0,
            "randomized_rows": self.randomized_rows,
            "note": self.label,
            **({"generation": _generation_summary(self.generation)} if self.generation else {}),
        }


def load_data(config: DataConfig) -> JetData:
    """Load, validate, split and standardize the data that ``config`` names."""
    config.validate()
    test: tuple[np.ndarray, np.ndarray] | None = None
    generation = None
    if config.source == "synthetic-jets":
        x, y = synthetic_jets(config.n_rows, seed=config.seed)
        classes, features = CLASSES, FEATURES
    elif config.source == "pythia-jets":
        x, y, generation = read_pythia_jets(config)
        classes, features = CLASSES, FEATURES
    elif config.source == "openml":
        x, y, classes, features = read_openml(config.data_home)
    elif config.source == "hdf5":
        x, y, classes, features = read_hdf5(config.path)
        if config.test_path:
            xt, yt, _, _ = read_hdf5(config.test_path)
            test = (xt, yt)
    else:
        x, y, classes, features = read_table(config.path, config.label_column)
        if config.test_path:
            xt, yt, classes_t, features_t = read_table(config.test_path, config.label_column)
            if tuple(features_t) != tuple(features) or not set(classes_t) <= set(classes):
                raise DataError(
                    f"test file {config.test_path} has other columns or classes than {config.path}: "
                    "use files written with the same columns"
                )
            yt = np.array([classes.index(c) for c in classes_t], dtype=np.int64)[yt]  # the train file's order
            test = (xt, yt)
    data = prepare(x, y, classes, features, config, test=test)
    data.generation = generation
    return data


def prepare(
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    feature_names: Sequence[str],
    config: DataConfig,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> JetData:
    """Validate arrays, split them stratified and seeded, and standardize on train only."""
    x, y = _check_arrays(x, y, class_names, feature_names, where=config.path or config.source)
    if test is not None:
        xt, yt = _check_arrays(test[0], test[1], class_names, feature_names, where=config.test_path)
    if config.max_rows is not None and config.max_rows < len(y):
        x, _, y, _ = _split(x, y, config.max_rows, config.seed)
    fp_settings = {
        "source": config.source if config.source != "synthetic-jets" else SYNTHETIC_VERSION,
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction if test is None else "file",
        "max_rows": config.max_rows,
        "folds": config.folds, "fold": config.fold, "randomize_labels": config.randomize_labels,
    }
    if config.randomize_labels > 0:
        fp_settings["label_randomization"] = "uniform"  # earlier qapbo forced a wrong class: other data
    if test is None:
        rest_x, x_test, rest_y, y_test = _split(x, y, 1.0 - config.test_fraction, config.seed)
        val_share = config.val_fraction / (1.0 - config.test_fraction)
    else:
        rest_x, rest_y, x_test, y_test = x, y, xt, yt
        val_share = config.val_fraction
    if config.folds > 1:
        from sklearn.model_selection import StratifiedKFold

        kfold = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed + 1)
        tr_idx, va_idx = list(kfold.split(rest_x, rest_y))[config.fold]
        x_train, x_val, y_train, y_val = rest_x[tr_idx], rest_x[va_idx], rest_y[tr_idx], rest_y[va_idx]
    else:
        x_train, x_val, y_train, y_val = _split(rest_x, rest_y, 1.0 - val_share, config.seed + 1)
    randomized = 0
    if config.randomize_labels > 0:
        n_classes = len(class_names)
        y_train, rows_t = randomize_labels(y_train, config.randomize_labels, n_classes, config.seed + 2)
        y_val, rows_v = randomize_labels(y_val, config.randomize_labels, n_classes, config.seed + 3)
        randomized = len(rows_t) + len(rows_v)

    scaler = StandardScaler().fit(x_train)  # train split only: no leak into val/test

    def tr(a: np.ndarray) -> np.ndarray:
        return scaler.transform(a).astype(np.float32)

    h = hashlib.sha256()
    for part in (x, y) + ((xt, yt) if test is not None else ()):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update(json.dumps(fp_settings, sort_keys=True).encode())
    h.update(json.dumps([list(class_names), list(feature_names)]).encode())
    return JetData(
        x_train=tr(x_train), y_train=y_train.astype(np.int64),
        x_val=tr(x_val), y_val=y_val.astype(np.int64),
        x_test=tr(x_test), y_test=y_test.astype(np.int64),
        class_names=tuple(class_names), feature_names=tuple(feature_names),
        fingerprint=h.hexdigest()[:16], source=config.source,
        synthetic=config.source == "synthetic-jets", scaler=scaler, config=config, randomized_rows=randomized,
    )


def randomize_labels(y: np.ndarray, share: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Randomize the labels of exactly ``round(share * len(y))`` rows; returns (labels, those rows).

    Each chosen row gets a class drawn uniformly from all classes, whatever the jet (the random
    labels of Zhang et al. 2017 that the paper's generalization study follows), so about 1/K of them
    keep their class by chance. Forcing a wrong class instead would make the labels
    anti-informative above a share of (K-1)/K: the network would learn to rank the true class last.
    """
    rng = np.random.default_rng(seed)
    out = np.array(y, copy=True)
    rows = np.sort(rng.choice(len(y), size=round(share * len(y)), replace=False))
    out[rows] = rng.integers(0, n_classes, size=len(rows))
    return out, rows


def _split(x: np.ndarray, y: np.ndarray, keep: float | int, seed: int):
    try:
        return train_test_split(x, y, train_size=keep, stratify=y, random_state=seed)
    except ValueError as exc:  # a class too rare to appear in every split
        raise DataError(f"cannot make stratified splits ({exc}): give every class more rows") from None


def _check_arrays(x, y, class_names, feature_names, where) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise DataError(f"{where}: features have shape {x.shape}, expected a 2-D (rows, features) array")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: labels have shape {y.shape} for {len(x)} rows; expected one label per row")
    if x.shape[1] != len(feature_names):
        raise DataError(f"{where}: {x.shape[1]} feature columns but {len(feature_names)} names")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{where}: features are not numeric ({x.dtype}); convert or drop text columns")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        names = sorted({feature_names[c] for c in cols})
        raise DataError(
            f"{where}: {bad.sum()} NaN or infinite value(s) in {len(set(rows))} row(s), "
            f"columns {', '.join(names[:5])}: clean or drop those rows first"
        )
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(f"{where}: only one class ({class_names[int(present[0])] if len(present) else 'none'}) "
                        "in the labels; a classifier needs at least two")
    if len(x) < 20:
        raise DataError(f"{where}: only {len(x)} rows; need at least 20 to split train/validation/test")
    return x, y.astype(np.int64)


def _generation_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in ("key", "versions", "rows_used", "fills_used", "note")}


def data_label(source: str) -> str:
    """The words every output made from ``source`` carries (figures, tables, logs, records)."""
    if source == "synthetic-jets":
        return "SYNTHETIC data (synthetic-jets, not real LHC jets)"
    if source == "pythia-jets":  # a set's own note (JetData.label) says what it was made with
        return f"pythia-jets: {GenSettings().note}"
    return source
