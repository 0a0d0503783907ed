"""Where jets come from: the synthetic toy, pythia-jets, and the published release as OpenML, HDF5 or a table.

Each reader returns raw arrays and names; :mod:`qapbo.data.split` validates, splits and scales them.
The release's loaders are kept and tested on small files in its exact formats, since the release
itself cannot be downloaded everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qapbo.data.config import CLASSES, FEATURES, OPENML_NAME, DataConfig
from qapbo.errors import DataError


def read_pythia_jets(config: DataConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``n_rows`` physics-generated jets: from ``path``, else from the cache, generated there if missing."""
    import sys

    from qapbo.data import pythia as jetgen

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
