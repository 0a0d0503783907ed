"""Jet data: one interface over the synthetic generator and the real releases.

Every source ends in :func:`prepare`, which validates the arrays, makes stratified seeded
train/validation/test splits, fits a StandardScaler on the training split only (the reference
code fit one per split, a leak we do not copy) and fingerprints data plus split settings so
every result can say exactly what it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .errors import DataError

#: The 16 high-level features of the hls4ml jet-tagging task, in PROTOCOL order.
FEATURES: tuple[str, ...] = (
    "zlogz", "c1_b0_mmdt", "c1_b1_mmdt", "c1_b2_mmdt", "c2_b1_mmdt", "c2_b2_mmdt",
    "d2_b1_mmdt", "d2_b2_mmdt", "d2_a1_b1_mmdt", "d2_a1_b2_mmdt", "m2_b1_mmdt",
    "m2_b2_mmdt", "n2_b1_mmdt", "n2_b2_mmdt", "mass_mmdt", "multiplicity",
)
#: Jet classes: gluon, light quark, W, Z, top.
CLASSES: tuple[str, ...] = ("g", "q", "w", "z", "t")

SOURCES = ("synthetic-jets", "pythia-jets", "openml", "hdf5", "table")
GENERATED = ("synthetic-jets", "pythia-jets")  # sources whose size is n_rows
OPENML_NAME = "hls4ml_lhc_jets_hlf"
SYNTHETIC_VERSION = "synthetic-jets-v1"


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is split.

    ``path`` is the file or directory for ``hdf5`` and ``table``; ``data_home`` the OpenML cache.
    ``test_path`` (hdf5, table) gives a separate test set, as the Zenodo ``val`` archive was used
    in the reference; the validation split is then taken from ``path`` alone.
    ``max_rows`` keeps a stratified, seeded subsample (handy for quick studies on real data).
    ``pythia-jets`` makes (once, then reads from its cache) ``n_rows`` physics-generated jets for
    ``seed``: the cache lives under ``data_home`` (default ``$QAPBO_DATA_HOME`` or ~/.cache/qapbo);
    ``path`` may instead name a set made by ``qapbo data generate --out DIR``.
    """

    source: str = "synthetic-jets"
    path: str | None = None
    test_path: str | None = None
    data_home: str | None = None
    label_column: str = "class"
    n_rows: int = 100_000
    max_rows: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    folds: int = 1  # k > 1: k-fold cross-validation of the non-test rows; ``fold`` is validation
    fold: int = 0
    randomize_labels: float = 0.0  # share of training rows (train + validation) given a random label
    # pythia-jets generation options (qapbo.jetgen.OPTIONS); None: the generator's default
    detector: str | None = None
    selection: str | None = None
    radius: float | None = None
    zlogz: str | None = None
    undefined: str | None = None

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise DataError(f"unknown data source {self.source!r}: use one of {', '.join(SOURCES)}")
        if self.source in ("hdf5", "table") and not self.path:
            raise DataError(f"data source {self.source!r} needs a path: pass --data-path FILE")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 < v < 0.5:
                raise DataError(f"{name} is {v}: use a fraction between 0 and 0.5")
        if self.source in GENERATED and self.n_rows < 100:
            raise DataError(f"n_rows is {self.n_rows}: ask for at least 100 {self.source}")
        if self.folds < 1 or not 0 <= self.fold < self.folds:
            raise DataError(f"fold {self.fold} of {self.folds} folds: use folds >= 1 and 0 <= fold < folds")
        if not 0.0 <= self.randomize_labels < 1.0:
            raise DataError(f"randomize_labels is {self.randomize_labels}: use a share in [0, 1)")
        if self.max_rows is not None and self.max_rows < 100:
            raise DataError(f"max_rows is {self.max_rows}: use at least 100 rows or leave it unset")


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
        return data_label(self.source)

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


def data_label(source: str) -> str:
    """The words every output made from ``source`` carries (figures, tables, logs, records)."""
    if source == "synthetic-jets":
        return "SYNTHETIC data (synthetic-jets, not real LHC jets)"
    if source == "pythia-jets":
        from .jetgen import NOTE

        return f"pythia-jets: {NOTE}"
    return source


def read_pythia_jets(config: DataConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``n_rows`` physics-generated jets: from ``path``, else from the cache, generated there if missing."""
    import sys

    from . import jetgen

    opts = jetgen.options({k: getattr(config, k) for k in jetgen.OPTIONS})
    settings = jetgen.GenSettings(seed=config.seed, chunk_size=jetgen.default_chunk_size(config.n_rows), **opts)
    settings.validate()
    if config.path:  # the user's own set
        return jetgen.load_set(config.path, config.n_rows, seed=config.seed, options=opts)
    where = jetgen.set_dir(settings, config.data_home)  # needs the extra: names it if missing
    try:
        return jetgen.load_set(where, config.n_rows, settings)
    except DataError:
        pass  # not (all) there yet: make what is missing

    def say(p: jetgen.Progress) -> None:  # generation takes minutes: one line per chunk
        done = "  ".join(f"{c} {p.done[c]}/{p.wanted[c]}" for c in p.wanted)
        print(f"pythia-jets: generating into {where}: {done}  ({p.seconds:.0f} s)", file=sys.stderr, flush=True)

    jetgen.generate_set(where, config.n_rows, settings, workers=os.cpu_count() or 1, progress=say)
    return jetgen.load_set(where, config.n_rows, settings)


def _generation_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k) for k in ("key", "versions", "rows_used", "fills_used", "note")}


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


# --------------------------------------------------------------------------- synthetic jets


def synthetic_jets(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic stand-in for the hls4ml jet features (NOT real physics).

    A few latent jet properties (groomed mass, two/three-prong-ness, radiation width, particle
    count) are drawn per class; the 16 features are noisy, correlated, partly log-normal
    (heavy-tailed) functions of them, multiplicity integer-valued. W and Z overlap in mass
    and q and g differ mostly in width and count, so, like the real task, the 5-class problem is
    far from separable. The difficulty was tuned so the float 64-32-32 baseline reaches roughly
    macro AUC 0.9-0.95 and accuracy 70-80 %.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n_rows) % len(CLASSES)
    rng.shuffle(y)
    n = n_rows
    # latent: mass (GeV), 2-prong score, 3-prong score, width, log multiplicity
    mass = np.empty(n)
    prong2 = rng.normal(0.0, 1.0, n)
    prong3 = rng.normal(0.0, 1.0, n)
    width = rng.normal(0.0, 1.0, n)
    logk = rng.normal(0.0, 0.25, n)
    spec = {
        # class: (mass sampler, prong2 shift, prong3 shift, width shift, log-mult mean)
        0: (lambda k: rng.lognormal(np.log(35), 0.55, k), -0.6, -0.4, 0.9, np.log(48)),  # g
        1: (lambda k: rng.lognormal(np.log(22), 0.60, k), -0.7, -0.6, -0.5, np.log(32)),  # q
        2: (lambda k: _resonance(rng, k, 80.4, 6.5, 0.15), 1.1, 0.0, -0.3, np.log(38)),  # w
        3: (lambda k: _resonance(rng, k, 91.2, 7.0, 0.15), 1.2, 0.1, 0.4, np.log(44)),  # z
        4: (lambda k: _top_mass(rng, k), 0.7, 1.4, 0.5, np.log(55)),  # t
    }
    for c, (msample, p2, p3, wd, lk) in spec.items():
        idx = np.flatnonzero(y == c)
        mass[idx] = msample(len(idx))
        prong2[idx] += p2
        prong3[idx] += p3
        width[idx] += wd
        logk[idx] += lk
    mult = rng.poisson(np.exp(logk)).astype(np.float64) + 1.0
    noise = lambda s: rng.normal(0.0, s, n)  # noqa: E731
    ln = lambda mu, s: np.exp(mu + noise(s))  # noqa: E731 - heavy-tailed, positive
    mnorm = np.log(mass / 50.0)
    feats = {
        "zlogz": -0.9 * np.log(mult) + 0.35 * width + noise(0.35),
        "c1_b0_mmdt": 1.0 / (1.0 + np.exp(-(0.6 * width + 0.4 * mnorm + noise(0.6)))) * 0.6,
        "c1_b1_mmdt": ln(-2.5 + 0.3 * width + 0.6 * mnorm, 0.45),
        "c1_b2_mmdt": ln(-3.6 + 0.35 * width + 1.1 * mnorm, 0.55),
        "c2_b1_mmdt": ln(-1.4 - 0.35 * prong2 + 0.15 * width, 0.5),
        "c2_b2_mmdt": ln(-2.3 - 0.40 * prong2 + 0.2 * width, 0.6),
        "d2_b1_mmdt": ln(0.9 - 0.45 * prong2 + 0.2 * width, 0.45),
        "d2_b2_mmdt": ln(0.6 - 0.50 * prong2 + 0.25 * width, 0.55),
        "d2_a1_b1_mmdt": ln(0.8 - 0.40 * prong2 - 0.2 * prong3, 0.5),
        "d2_a1_b2_mmdt": ln(0.5 - 0.45 * prong2 - 0.2 * prong3, 0.6),
        "m2_b1_mmdt": ln(-3.0 + 0.3 * prong3 + 0.3 * width, 0.7),
        "m2_b2_mmdt": ln(-4.0 + 0.4 * prong3 + 0.3 * width, 0.8),
        "n2_b1_mmdt": 0.35 - 0.06 * prong2 + 0.02 * width + noise(0.06),
        "n2_b2_mmdt": 0.30 - 0.07 * prong2 - 0.03 * prong3 + noise(0.08),
        "mass_mmdt": mass * np.exp(noise(0.05)),
        "multiplicity": mult,
    }
    x = np.column_stack([feats[f] for f in FEATURES])
    return x.astype(np.float32), y.astype(np.int64)


def _resonance(rng: np.random.Generator, k: int, m: float, s: float, lost: float) -> np.ndarray:
    """A boson mass peak; a share ``lost`` of jets had a prong groomed away (QCD-like mass)."""
    out = rng.normal(m, s, k)
    miss = rng.random(k) < lost
    out[miss] = rng.lognormal(np.log(30), 0.6, miss.sum())
    return np.abs(out) + 1.0


def _top_mass(rng: np.random.Generator, k: int) -> np.ndarray:
    """Top peak near 173 GeV, with a W-like and a QCD-like shoulder from partial containment."""
    u = rng.random(k)
    out = rng.normal(172.0, 18.0, k)
    out[u < 0.30] = rng.normal(82.0, 12.0, (u < 0.30).sum())
    low = u > 0.85
    out[low] = rng.lognormal(np.log(40), 0.6, low.sum())
    return np.abs(out) + 1.0


# --------------------------------------------------------------------------- real releases


def read_openml(data_home: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """OpenML dataset 42468 through scikit-learn, cached under ``data_home``."""
    from urllib.error import URLError

    from sklearn.datasets import fetch_openml, get_data_home

    where = get_data_home(data_home)
    try:
        bunch = fetch_openml(OPENML_NAME, version=1, data_home=where, as_frame=False, parser="auto", n_retries=1)
    except (URLError, OSError) as exc:  # offline and not cached (or a cache sklearn had to discard)
        raise DataError(
            f"cannot load OpenML dataset {OPENML_NAME!r}: it is not in the cache at {where} and cannot be "
            f"downloaded here ({type(exc).__name__}: {exc}); on a machine with internet run "
            f"`python -c \"from sklearn.datasets import fetch_openml; fetch_openml('{OPENML_NAME}', version=1, "
            f"data_home='{where}')\"` and copy {where} over, or use --data hdf5/table"
        ) from None
    except Exception as exc:  # checksum mismatch, dataset missing on the server, unparsable ARFF ...
        raise DataError(
            f"cannot load OpenML dataset {OPENML_NAME!r} from {where} ({type(exc).__name__}: {exc}); delete "
            f"{where}/openml and fetch it again with scikit-learn's fetch_openml"
        ) from None
    names = [str(n) for n in bunch.feature_names]
    missing = [f for f in FEATURES if f not in names]
    if missing:
        raise DataError(f"OpenML data lacks column(s) {', '.join(missing)}: the cache holds another dataset")
    x = np.asarray(bunch.data, dtype=np.float64)[:, [names.index(f) for f in FEATURES]]
    labels = np.asarray(bunch.target).astype(str)
    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        raise DataError(f"OpenML labels {unknown} are not among {CLASSES}: the cache holds another dataset")
    y = np.array([CLASSES.index(v) for v in labels], dtype=np.int64)
    return x, y, CLASSES, FEATURES


def read_hdf5(path: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """A Zenodo-release HDF5 file, or a directory of them (``jets`` + ``jetFeatureNames``)."""
    import h5py

    p = Path(str(path))
    if p.is_dir():
        files = sorted(p.glob("*.h5")) + sorted(p.glob("*.hdf5"))
        if not files:
            raise DataError(f"{p}: no .h5 files in this directory; point --data-path at the unpacked release")
    elif p.is_file():
        files = [p]
    else:
        raise DataError(f"{p}: no such file or directory; check the data path (--data-path, or [data] path in a study file), or run on the synthetic jets (--synthetic)")
    xs, ys = [], []
    for f in files:
        try:
            with h5py.File(f, "r") as h:
                if "jets" not in h or "jetFeatureNames" not in h:
                    raise DataError(f"{f}: no 'jets' and 'jetFeatureNames' datasets; is this a hls4ml jet file?")
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in h["jetFeatureNames"][()]]
                jets = np.asarray(h["jets"][()])
        except DataError:
            raise
        except Exception as exc:  # OSError from a truncated or corrupt file
            raise DataError(f"{f}: unreadable HDF5 ({exc}); re-download or re-extract it") from None
        if jets.ndim != 2 or jets.shape[1] != len(names):
            raise DataError(f"{f}: 'jets' has shape {jets.shape} but {len(names)} column names")
        want = [f"j_{n}" for n in FEATURES] + [f"j_{c}" for c in CLASSES]
        missing = [w for w in want if w not in names]
        if missing:
            raise DataError(f"{f}: missing column(s) {', '.join(missing)} in jetFeatureNames")
        x = jets[:, [names.index(f"j_{n}") for n in FEATURES]]
        onehot = jets[:, [names.index(f"j_{c}") for c in CLASSES]]
        if not np.all(np.isin(onehot, (0, 1))) or not np.all(onehot.sum(axis=1) == 1):
            raise DataError(f"{f}: label columns j_g..j_t are not one-hot for every jet")
        xs.append(x)
        ys.append(onehot.argmax(axis=1))
    return np.concatenate(xs), np.concatenate(ys), CLASSES, FEATURES


def read_table(path: str | None, label_column: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """CSV, Parquet or NPZ with one label column; every other column is a feature.

    Class names are the labels as the user wrote them (a CSV label column is read as text, so
    ``01`` stays ``01``); numeric labels are ordered by value (2 before 10), others as text.
    """
    p = Path(str(path))
    if p.is_dir():
        raise DataError(f"{p}: is a directory, not a table file; point --data-path (or [data] path) at a "
                        ".csv, .parquet or .npz file inside it")
    if not p.is_file():
        raise DataError(f"{p}: no such file; check the data path (--data-path, or [data] path in a study file), or run on the synthetic jets (--synthetic)")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                cols = {k: z[k] for k in z.files}
            if label_column not in cols:
                raise DataError(f"{p}: no array named {label_column!r} (arrays: {', '.join(cols)}); set label_column")
            if "x" in cols and cols["x"].ndim == 2:
                x = cols["x"]
                names = [str(n) for n in cols["feature_names"]] if "feature_names" in cols else [
                    f"f{i}" for i in range(x.shape[1])]
            else:
                names = [k for k in cols if k not in (label_column, "feature_names")]
                x = np.column_stack([cols[k] for k in names]) if names else np.empty((len(cols[label_column]), 0))
            labels = cols[label_column]
            if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
                raise DataError(f"{p}: feature arrays are not real numbers ({x.dtype}); convert or drop them")
        elif suffix in (".csv", ".parquet", ".pq"):
            import pandas as pd

            if suffix == ".csv":
                if p.stat().st_size == 0:
                    raise DataError(f"{p}: the file is empty; write a header line and one row per jet")
                # labels as text: "01" and "1.0" stay as written; empty cells become NaN (missing)
                df = pd.read_csv(p, dtype={label_column: str})
            else:
                try:
                    df = pd.read_parquet(p)
                except ImportError:
                    raise DataError("reading Parquet needs pyarrow: pip install 'qapbo[parquet]'") from None
            if label_column not in df.columns:
                raise DataError(
                    f"{p}: no column {label_column!r} (columns: {', '.join(map(str, df.columns[:20]))}); "
                    "set label_column to the column that holds the class"
                )
            if len(df) == 0:
                raise DataError(f"{p}: no data rows (only the header {', '.join(map(str, df.columns[:20]))}); "
                                "write one row per jet")
            if list(df.columns).count(label_column) > 1:
                raise DataError(f"{p}: {list(df.columns).count(label_column)} columns are named {label_column!r}; "
                                "rename all but the label column")
            labels = df[label_column].to_numpy()
            feat = df.drop(columns=[label_column])
            names = [str(c) for c in feat.columns]
            nonnum = [str(c) for c in feat.columns if not pd.api.types.is_numeric_dtype(feat[c])
                      or pd.api.types.is_complex_dtype(feat[c])]
            if nonnum:
                raise DataError(f"{p}: column(s) {', '.join(nonnum[:10])} are not numeric; drop or encode them")
            x = feat.to_numpy(dtype=np.float64)
        else:
            raise DataError(f"{p}: unknown table format {suffix!r}; use .csv, .parquet or .npz")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{p}: unreadable ({type(exc).__name__}: {exc}); check the file") from None
    if x.ndim != 2 or x.shape[1] == 0:
        raise DataError(f"{p}: no feature columns besides {label_column!r}")
    classes, y = _encode_labels(np.asarray(labels), p, label_column)
    return x, y, classes, tuple(names)


def _encode_labels(labels: np.ndarray, where: Path, label_column: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names as written and integer labels; numeric labels ordered by value, others as text."""
    if labels.ndim != 1:
        raise DataError(f"{where}: labels {label_column!r} have shape {labels.shape}; expected one label per row")
    text = [_label_text(v) for v in labels.tolist()]
    missing = [i for i, t in enumerate(text) if t is None]
    if missing:
        first = ", ".join(str(i + 1) for i in missing[:5])
        raise DataError(f"{where}: {len(missing)} row(s) have no label in {label_column!r} (data rows {first}"
                        f"{', ...' if len(missing) > 5 else ''}, counting from 1); fill in or drop those rows")
    names = sorted(set(text), key=_label_order_key(text))
    index = {n: i for i, n in enumerate(names)}
    return tuple(names), np.array([index[t] for t in text], dtype=np.int64)


def _label_text(v: Any) -> str | None:
    """A label as the user wrote it; None for a missing one (NaN, None, empty text)."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # an integer column that pandas or numpy stored as float
    t = str(v)
    return t if t.strip() else None


def _label_order_key(text: Sequence[str]):
    """Order by number when every label is a finite number, else by text."""
    try:
        nums = {t: float(t) for t in set(text)}
    except ValueError:
        return lambda t: t
    if not all(np.isfinite(v) for v in nums.values()):
        return lambda t: t
    return lambda t: (nums[t], t)
