"""Data sources on small files written in the published formats, and every bad-data case."""

import h5py
import numpy as np
import pandas as pd
import pytest

from qapbo.data.config import CLASSES, FEATURES, DataConfig
from qapbo.data.sources import synthetic_jets
from qapbo.data.split import load_data
from qapbo.errors import DataError

# Extra columns of the Zenodo release that the loader must skip (names as in jetFeatureNames).
EXTRA = ["j_ptfrac", "j_pt", "j_eta", "j_mass", "j_tau1_b1", "j_undef"]


def write_zenodo_h5(path, n=200, seed=0, names=None, jets=None):
    """A file like the Zenodo 3602254 `jetImage_*.h5`: `jets` (rows x columns) + `jetFeatureNames`."""
    rng = np.random.default_rng(seed)
    names = names or (EXTRA[:3] + [f"j_{f}" for f in FEATURES] + EXTRA[3:] + [f"j_{c}" for c in CLASSES])
    if jets is None:
        jets = rng.normal(size=(n, len(names))).astype(np.float32)
        labels = np.arange(n) % 5
        for k, c in enumerate(CLASSES):
            jets[:, names.index(f"j_{c}")] = (labels == k).astype(np.float32)
    with h5py.File(path, "w") as h:
        h.create_dataset("jets", data=jets)
        h.create_dataset("jetFeatureNames", data=np.array([s.encode() for s in names]))
    return jets, names


def test_synthetic_is_deterministic_and_shaped():
    x1, y1 = synthetic_jets(1000, seed=5)
    x2, y2 = synthetic_jets(1000, seed=5)
    x3, _ = synthetic_jets(1000, seed=6)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and not np.array_equal(x1, x3)
    assert x1.shape == (1000, 16) and x1.dtype == np.float32
    assert np.bincount(y1).tolist() == [200] * 5
    mult = x1[:, FEATURES.index("multiplicity")]
    assert np.all(mult == np.round(mult)) and mult.min() >= 1
    assert np.isfinite(x1).all()
    # heavy tails: some features have large positive skew
    skew = ((x1 - x1.mean(0)) ** 3).mean(0) / x1.std(0) ** 3
    assert (skew > 2).sum() >= 3


def test_splits_scaler_and_fingerprint():
    d = load_data(DataConfig(n_rows=2000, seed=1, val_fraction=0.2, test_fraction=0.2))
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (1200, 400, 400)
    # stratified: every class at its share in every split
    for y in (d.y_train, d.y_val, d.y_test):
        assert np.bincount(y).tolist() == [len(y) // 5] * 5
    # scaler fit on the training split only
    assert np.allclose(d.x_train.mean(0), 0, atol=1e-5) and np.allclose(d.x_train.std(0), 1, atol=1e-4)
    assert not np.allclose(d.x_test.mean(0), 0, atol=1e-5)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.synthetic and "SYNTHETIC" in d.label
    assert d.class_names == CLASSES and d.feature_names == FEATURES
    same = load_data(DataConfig(n_rows=2000, seed=1))
    other_split = load_data(DataConfig(n_rows=2000, seed=1, val_fraction=0.25))
    other_seed = load_data(DataConfig(n_rows=2000, seed=2))
    assert same.fingerprint == d.fingerprint
    assert len({d.fingerprint, other_split.fingerprint, other_seed.fingerprint}) == 3


def test_hdf5_file_and_directory(tmp_path):
    jets, names = write_zenodo_h5(tmp_path / "jetImage_0.h5", n=200, seed=0)
    x, y, classes, feats = __import__("qapbo.data.sources", fromlist=["read_hdf5"]).read_hdf5(str(tmp_path / "jetImage_0.h5"))
    assert x.shape == (200, 16) and classes == CLASSES and feats == FEATURES
    assert np.array_equal(x[:, FEATURES.index("mass_mmdt")], jets[:, names.index("j_mass_mmdt")])
    assert np.array_equal(x[:, 0], jets[:, names.index("j_zlogz")])
    assert np.array_equal(y, np.arange(200) % 5)
    write_zenodo_h5(tmp_path / "jetImage_1.h5", n=100, seed=1)
    d = load_data(DataConfig(source="hdf5", path=str(tmp_path), seed=0))
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 300
    assert not d.synthetic and d.source == "hdf5"


def test_hdf5_separate_test_release(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    write_zenodo_h5(tmp_path / "train" / "jetImage_0.h5", n=300, seed=0)
    write_zenodo_h5(tmp_path / "val" / "jetImage_0.h5", n=100, seed=1)
    d = load_data(DataConfig(source="hdf5", path=str(tmp_path / "train"), test_path=str(tmp_path / "val"),
                             val_fraction=0.25))
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (225, 75, 100)


def _table(n=150, seed=0, n_feat=3, classes=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, n_feat)), columns=[f"f{i}" for i in range(n_feat)])
    df["label"] = [classes[i % len(classes)] for i in range(n)]
    return df


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz"])
def test_table_formats(tmp_path, suffix):
    df = _table()
    path = tmp_path / f"jets{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    else:
        np.savez(path, **{c: df[c].to_numpy().astype(str if c == "label" else float) for c in df.columns})
    d = load_data(DataConfig(source="table", path=str(path), label_column="label"))
    assert d.class_names == ("a", "b", "c") and d.feature_names == ("f0", "f1", "f2")
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 150
    # the rows are the table's rows: standardize back and compare as sets of rows
    back = d.scaler.inverse_transform(np.concatenate([d.x_train, d.x_val, d.x_test]))
    assert np.allclose(np.sort(back[:, 0]), np.sort(df["f0"].to_numpy()), atol=1e-5)


def test_npz_with_x_matrix(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(100, 4)), y=np.arange(100) % 2,
             feature_names=np.array(["a", "b", "c", "d"]))
    d = load_data(DataConfig(source="table", path=str(tmp_path / "d.npz"), label_column="y"))
    assert d.feature_names == ("a", "b", "c", "d") and d.class_names == ("0", "1")


# ---------------------------------------------------------------- bad data: one clear error each


def test_nan_and_inf_are_refused(tmp_path):
    df = _table()
    df.loc[3, "f1"] = np.nan
    df.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(DataError, match=r"1 NaN or infinite value\(s\) in 1 row\(s\), columns f1"):
        load_data(DataConfig(source="table", path=str(tmp_path / "nan.csv"), label_column="label"))
    jets, names = write_zenodo_h5(tmp_path / "inf.h5")
    jets[5, names.index("j_c2_b1_mmdt")] = np.inf
    write_zenodo_h5(tmp_path / "inf.h5", jets=jets, names=names)
    with pytest.raises(DataError, match="NaN or infinite.*c2_b1_mmdt"):
        load_data(DataConfig(source="hdf5", path=str(tmp_path / "inf.h5")))


def test_missing_columns_are_named(tmp_path):
    names = [f"j_{f}" for f in FEATURES if f != "mass_mmdt"] + [f"j_{c}" for c in CLASSES]
    write_zenodo_h5(tmp_path / "short.h5", names=names,
                    jets=np.eye(len(names), dtype=np.float32)[np.arange(50) % len(names)])
    with pytest.raises(DataError, match="missing column.*j_mass_mmdt"):
        load_data(DataConfig(source="hdf5", path=str(tmp_path / "short.h5")))
    _table().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="no column 'class'.*set label_column"):
        load_data(DataConfig(source="table", path=str(tmp_path / "t.csv")))


def test_single_class_is_refused(tmp_path):
    _table(classes=("only",)).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataError, match="only one class"):
        load_data(DataConfig(source="table", path=str(tmp_path / "one.csv"), label_column="label"))


def test_wrong_shape_is_refused(tmp_path):
    with h5py.File(tmp_path / "flat.h5", "w") as h:
        h.create_dataset("jets", data=np.zeros(30, dtype=np.float32))
        h.create_dataset("jetFeatureNames", data=np.array([b"j_zlogz"]))
    with pytest.raises(DataError, match="'jets' has shape"):
        load_data(DataConfig(source="hdf5", path=str(tmp_path / "flat.h5")))
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 3)), y=np.zeros(7))
    with pytest.raises(DataError, match="labels have shape"):
        load_data(DataConfig(source="table", path=str(tmp_path / "bad.npz"), label_column="y"))


def test_unreadable_and_corrupt_files(tmp_path):
    write_zenodo_h5(tmp_path / "good.h5")
    raw = (tmp_path / "good.h5").read_bytes()
    (tmp_path / "corrupt.h5").write_bytes(raw[: len(raw) // 3])  # truncated download
    with pytest.raises(DataError, match="unreadable HDF5"):
        load_data(DataConfig(source="hdf5", path=str(tmp_path / "corrupt.h5")))
    (tmp_path / "garbage.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match="unreadable"):
        load_data(DataConfig(source="table", path=str(tmp_path / "garbage.parquet"), label_column="label"))
    with pytest.raises(DataError, match="no such file"):
        load_data(DataConfig(source="table", path=str(tmp_path / "absent.csv")))
    with pytest.raises(DataError, match="unknown table format"):
        (tmp_path / "x.txt").write_text("a,b\n")
        load_data(DataConfig(source="table", path=str(tmp_path / "x.txt")))
    with h5py.File(tmp_path / "other.h5", "w") as h:
        h.create_dataset("images", data=np.zeros((3, 3)))
    with pytest.raises(DataError, match="no 'jets' and 'jetFeatureNames'"):
        load_data(DataConfig(source="hdf5", path=str(tmp_path / "other.h5")))


def test_text_feature_and_bad_config(tmp_path):
    df = _table()
    df["name"] = "x"
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="name are not numeric"):
        load_data(DataConfig(source="table", path=str(tmp_path / "t.csv"), label_column="label"))
    with pytest.raises(DataError, match="unknown data source"):
        load_data(DataConfig(source="root"))
    with pytest.raises(DataError, match="val_fraction"):
        load_data(DataConfig(val_fraction=0.7))
    with pytest.raises(DataError, match="needs a path"):
        load_data(DataConfig(source="hdf5"))


def test_label_randomization_share_is_exact_and_test_labels_untouched():
    from qapbo.data.split import randomize_labels

    y = np.arange(10_000) % 5
    r, rows = randomize_labels(y, 0.75, 5, seed=0)
    assert len(rows) == 7_500 and len(np.unique(rows)) == 7_500  # exactly the share asked for
    kept = np.setdiff1d(np.arange(10_000), rows)
    assert np.array_equal(r[kept], y[kept])  # the other rows keep their labels
    # a randomized label is uniform over all 5 classes, whatever the true class: among the n randomized
    # rows of each true class every new class has p = 1/5, so n/5 +- 5 sigma, sigma = sqrt(n * 0.2 * 0.8)
    for c in range(5):
        counts = np.bincount(r[rows][y[rows] == c], minlength=5)
        n = counts.sum()
        assert 1_350 < n < 1_650 and np.all(np.abs(counts - n / 5) < 5 * np.sqrt(n * 0.16)), (c, counts)
    # hence about 1/5 of them keep their class by chance: 1,500 +- 5 sigma of 7,500 draws at p = 0.2
    assert abs((r[rows] == y[rows]).sum() - 1_500) < 5 * np.sqrt(7_500 * 0.2 * 0.8)
    again, rows_again = randomize_labels(y, 0.75, 5, seed=0)
    assert np.array_equal(again, r) and np.array_equal(rows_again, rows)  # seeded
    clean = load_data(DataConfig(n_rows=2000, seed=3))
    noisy = load_data(DataConfig(n_rows=2000, seed=3, randomize_labels=0.5))
    assert np.array_equal(clean.x_train, noisy.x_train)  # same rows, same order
    n_train, n_val = len(clean.y_train), len(clean.y_val)
    assert noisy.randomized_rows == round(0.5 * n_train) + round(0.5 * n_val) and clean.randomized_rows == 0
    changed = (clean.y_train != noisy.y_train).sum() + (clean.y_val != noisy.y_val).sum()
    assert 0.3 * (n_train + n_val) < changed <= noisy.randomized_rows  # ~ 4/5 of the randomized rows
    assert np.array_equal(clean.y_test, noisy.y_test)  # test labels untouched
    assert clean.fingerprint != noisy.fingerprint and noisy.describe()["randomize_labels"] == 0.5


def test_k_fold_validation_splits_partition_the_training_rows():
    folds = [load_data(DataConfig(n_rows=1000, seed=0, folds=4, fold=k)) for k in range(4)]
    vals = [f.scaler.inverse_transform(f.x_val) for f in folds]
    allrows = np.concatenate(vals)
    assert len(allrows) == 800  # the 80 % that is not test, each row in exactly one fold
    assert len(np.unique(np.round(allrows, 3), axis=0)) == 800
    assert all(np.array_equal(f.y_test, folds[0].y_test) for f in folds)
    assert len({f.fingerprint for f in folds}) == 4
    with pytest.raises(DataError, match="fold 4 of 4"):
        load_data(DataConfig(n_rows=1000, folds=4, fold=4))
