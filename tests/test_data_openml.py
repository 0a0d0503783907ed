"""qapbo's OpenML loader against a fake, offline OpenML server.

Like scikit-learn's own ``test_openml.py`` we replace the ``urlopen`` that
``sklearn.datasets._openml`` calls, so the real ``fetch_openml`` code runs end to end
(URL building, gzip ``Content-Encoding`` handling, md5 check, the on-disk cache under
``data_home/openml/openml.org/...``, the pandas ARFF parser) without any network.

The fake serves dataset ``hls4ml_lhc_jets_hlf`` version 1 (id 42468) in the formats of the
OpenML JSON API v1: the list/search response, the data description, the features, the
qualities and the ARFF file. The ARFF holds 200 rows of seeded random numbers, not real jets.
The file id is illustrative; only the API formats matter to the code under test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import time
import types
import urllib.error
import urllib.response
from email.message import Message
from urllib.parse import urlparse

import numpy as np
import pytest
import sklearn.datasets._openml as sk_openml

from qapbo.data.config import CLASSES, FEATURES, DataConfig
from qapbo.data.sources import read_openml
from qapbo.data.split import load_data
from qapbo.errors import DataError

NAME = "hls4ml_lhc_jets_hlf"
DATA_ID = 42468
FILE_ID = 22044446  # illustrative
TARGET = "class"
# Alphabetical, as OpenML lists nominal values and as the ARFF header declares them.
ARFF_CLASS_VALUES = ("g", "q", "t", "w", "z")
CLASS_COUNTS = {"g": 44, "q": 42, "t": 40, "w": 38, "z": 36}  # unequal on purpose
N_ROWS = sum(CLASS_COUNTS.values())  # 200

SEARCH_PATH = f"/api/v1/json/data/list/data_name/{NAME}/limit/2/data_version/1"
DESCRIPTION_PATH = f"/api/v1/json/data/{DATA_ID}"
FEATURES_PATH = f"/api/v1/json/data/features/{DATA_ID}"
QUALITIES_PATH = f"/api/v1/json/data/qualities/{DATA_ID}"
ARFF_PATH = f"/data/v1/download/{FILE_ID}/{NAME}.arff"
EXPECTED_PATHS = {SEARCH_PATH, DESCRIPTION_PATH, FEATURES_PATH, QUALITIES_PATH, ARFF_PATH}


def _make_rows():
    """Seeded values: column j (FEATURES order) lies in 10*(j+1) +- 1, so any column mix-up shows."""
    rng = np.random.default_rng(20240607)
    values = np.round(rng.uniform(-1.0, 1.0, (N_ROWS, len(FEATURES))) + 10.0 * np.arange(1, 17), 6)
    labels = np.repeat(list(CLASS_COUNTS), list(CLASS_COUNTS.values()))
    labels = labels[rng.permutation(N_ROWS)]
    return values, labels


VALUES, LABELS = _make_rows()  # VALUES[:, j] is feature FEATURES[j]


def _arff_and_columns(layout: str) -> tuple[bytes, list[str]]:
    """The ARFF file and its column order.

    ``release``: the 16 features in FEATURES order, ``class`` last, as in the real release.
    ``shuffled``: ``class`` first and the features reversed, to check selection by name.
    """
    if layout == "release":
        columns = list(FEATURES) + [TARGET]
    elif layout == "shuffled":
        columns = [TARGET] + list(reversed(FEATURES))
    else:
        raise ValueError(layout)
    lines = [
        "% hls4ml LHC jet tagging, high-level features (fake test copy, seeded random numbers)",
        f"@RELATION {NAME}",
        "",
    ]
    for c in columns:
        if c == TARGET:
            lines.append(f"@ATTRIBUTE {c} {{{','.join(ARFF_CLASS_VALUES)}}}")
        else:
            lines.append(f"@ATTRIBUTE {c} NUMERIC")
    lines += ["", "@DATA"]
    for i in range(N_ROWS):
        cells = [LABELS[i] if c == TARGET else f"{VALUES[i, FEATURES.index(c)]:.6f}" for c in columns]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode("utf-8"), columns


def _quality(name: str, value: float) -> dict:
    return {"name": name, "value": repr(float(value))}


def _responses(layout: str) -> dict[str, bytes]:
    arff, columns = _arff_and_columns(layout)
    qualities = [
        _quality("MajorityClassSize", max(CLASS_COUNTS.values())),
        _quality("MinorityClassSize", min(CLASS_COUNTS.values())),
        _quality("NumberOfClasses", len(CLASS_COUNTS)),
        _quality("NumberOfFeatures", len(FEATURES) + 1),
        _quality("NumberOfInstances", N_ROWS),
        _quality("NumberOfInstancesWithMissingValues", 0),
        _quality("NumberOfMissingValues", 0),
        _quality("NumberOfNumericFeatures", len(FEATURES)),
        _quality("NumberOfSymbolicFeatures", 1),
    ]
    search = {"data": {"dataset": [{
        "did": DATA_ID, "name": NAME, "version": 1, "status": "active", "format": "ARFF",
        "file_id": FILE_ID, "quality": qualities,
    }]}}
    description = {"data_set_description": {
        "id": str(DATA_ID),
        "name": NAME,
        "version": "1",
        "description": "Jet tagging with high-level features (hls4ml LHC jet dataset, 30 particles).",
        "description_version": "1",
        "format": "ARFF",
        "upload_date": "2020-05-07T19:58:45",
        "licence": "Public",
        "url": f"https://api.openml.org/data/v1/download/{FILE_ID}/{NAME}.arff",
        "file_id": str(FILE_ID),
        "default_target_attribute": TARGET,
        "version_label": "1",
        "visibility": "public",
        "status": "active",
        "processing_date": "2020-05-07 20:01:23",
        "md5_checksum": hashlib.md5(arff).hexdigest(),
    }}
    features = []
    for i, c in enumerate(columns):
        f = {"index": str(i), "name": c, "data_type": "numeric"}
        if c == TARGET:
            f.update(data_type="nominal", nominal_value=list(ARFF_CLASS_VALUES))
        f.update(is_target="true" if c == TARGET else "false", is_ignore="false",
                 is_row_identifier="false", number_of_missing_values="0")
        features.append(f)
    qualities_full = qualities + [_quality("Dimensionality", (len(FEATURES) + 1) / N_ROWS)]
    return {
        SEARCH_PATH: json.dumps(search).encode(),
        DESCRIPTION_PATH: json.dumps(description).encode(),
        FEATURES_PATH: json.dumps({"data_features": {"feature": features}}).encode(),
        QUALITIES_PATH: json.dumps({"data_qualities": {"quality": qualities_full}}).encode(),
        ARFF_PATH: arff,
    }


class FakeOpenML:
    """Stands in for ``urllib.request.urlopen`` inside ``sklearn.datasets._openml``."""

    def __init__(self, layout: str = "release", gzip_response: bool = True):
        self.routes = _responses(layout)
        self.gzip_response = gzip_response
        self.requested: list[str] = []
        self.unexpected: list[str] = []

    def urlopen(self, request, *args, **kwargs):
        url = request.get_full_url()
        self.requested.append(url)
        path = urlparse(url).path
        if path not in self.routes:
            self.unexpected.append(url)
            # OpenML answers an unknown dataset with HTTP 412 and a JSON error
            raise urllib.error.HTTPError(url, 412, "Precondition Failed", None, io.BytesIO(b"{}"))
        body = self.routes[path]
        headers = Message()
        headers["Content-Type"] = "text/plain" if path.endswith(".arff") else "application/json"
        if self.gzip_response and request.get_header("Accept-encoding") == "gzip":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return urllib.response.addinfourl(io.BytesIO(body), headers, url, 200)


def _offline(calls: list[str]):
    def urlopen(request, *args, **kwargs):
        calls.append(request.get_full_url())
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    return urlopen


@pytest.fixture
def no_sleep(monkeypatch):
    """sklearn sleeps ``delay`` seconds between network retries; record instead of sleeping."""
    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(sk_openml, "time", fake_time)
    return sleeps


@pytest.fixture
def serve(monkeypatch, no_sleep):
    def install(layout: str = "release", gzip_response: bool = True) -> FakeOpenML:
        server = FakeOpenML(layout, gzip_response)
        monkeypatch.setattr(sk_openml, "urlopen", server.urlopen)
        return server

    return install


def _expected_y() -> np.ndarray:
    return np.array([CLASSES.index(v) for v in LABELS], dtype=np.int64)


@pytest.mark.parametrize("gzip_response", [True, False], ids=["gzip", "plain"])
def test_read_openml_values_labels_and_order(tmp_path, serve, gzip_response):
    server = serve(gzip_response=gzip_response)
    x, y, classes, features = read_openml(str(tmp_path))

    assert server.unexpected == []
    assert {urlparse(u).path for u in server.requested} == EXPECTED_PATHS
    assert classes == CLASSES and features == FEATURES
    assert x.shape == (N_ROWS, 16)
    # every column, by name, equals what the ARFF holds for that name
    for j, name in enumerate(FEATURES):
        np.testing.assert_allclose(x[:, j], VALUES[:, j], rtol=0, atol=1e-9, err_msg=name)
    # a few literal spot checks against the text written into the ARFF
    arff_rows = server.routes[ARFF_PATH].decode().split("@DATA\n", 1)[1].splitlines()
    for i in (0, 1, 117, N_ROWS - 1):
        cells = arff_rows[i].split(",")
        assert [float(v) for v in cells[:16]] == pytest.approx(list(x[i]), abs=1e-9)
        assert cells[16] == LABELS[i]
    assert x[0, FEATURES.index("zlogz")] == pytest.approx(float(arff_rows[0].split(",")[0]), abs=1e-9)
    assert x[5, FEATURES.index("multiplicity")] == pytest.approx(float(arff_rows[5].split(",")[15]), abs=1e-9)

    # labels follow CLASSES = (g, q, w, z, t), which is NOT the alphabetical ARFF order
    assert y.dtype.kind == "i" and y.shape == (N_ROWS,)
    np.testing.assert_array_equal(y, _expected_y())
    assert {CLASSES[k] for k in y[LABELS == "t"]} == {"t"} and set(y[LABELS == "t"]) == {4}
    assert set(y[LABELS == "w"]) == {2} and set(y[LABELS == "z"]) == {3}
    alphabetical = np.searchsorted(np.array(ARFF_CLASS_VALUES), LABELS)
    assert not np.array_equal(y, alphabetical)
    np.testing.assert_array_equal(np.bincount(y, minlength=5),
                                  [CLASS_COUNTS[c] for c in CLASSES])


def test_read_openml_selects_columns_by_name(tmp_path, serve):
    """``class`` first and features reversed: the loader must still use the FEATURES order."""
    server = serve(layout="shuffled")
    x, y, classes, features = read_openml(str(tmp_path))
    assert server.unexpected == []
    assert features == FEATURES
    np.testing.assert_allclose(x, VALUES, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(y, _expected_y())


def test_read_openml_served_from_cache_when_offline(tmp_path, serve, monkeypatch):
    server = serve()
    first = read_openml(str(tmp_path))
    assert server.unexpected == []

    # sklearn mirrored each URL path, gzipped, under data_home/openml/openml.org/
    cache = tmp_path / "openml" / "openml.org"
    for path in EXPECTED_PATHS:
        f = cache / (path.lstrip("/") + ".gz")
        assert f.is_file(), f
        with gzip.open(f, "rb") as fh:
            assert fh.read() == server.routes[path]

    calls: list[str] = []
    monkeypatch.setattr(sk_openml, "urlopen", _offline(calls))
    second = read_openml(str(tmp_path))
    assert calls == []  # nothing asked of the network
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1], first[1])
    assert second[2:] == first[2:] == (CLASSES, FEATURES)


@pytest.mark.filterwarnings("ignore:A network error occurred")
def test_read_openml_offline_and_not_cached_raises_data_error(tmp_path, monkeypatch, no_sleep):
    calls: list[str] = []
    monkeypatch.setattr(sk_openml, "urlopen", _offline(calls))
    home = tmp_path / "empty"
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        read_openml(str(home))
    assert time.perf_counter() - start < 5.0
    assert calls, "the fake urlopen was not used"
    assert all(urlparse(u).path == SEARCH_PATH for u in calls)
    msg = str(info.value)
    assert NAME in msg
    assert "fetch_openml" in msg
    assert str(home) in msg
    # nothing half-written was left that a later run could mistake for a cached dataset
    assert not [p for p in home.rglob("*.gz")]


def test_load_data_openml_splits(tmp_path, serve):
    serve()
    data = load_data(DataConfig(source="openml", data_home=str(tmp_path), seed=0))

    assert data.synthetic is False
    assert data.source == "openml"
    assert "SYNTHETIC" not in data.label
    assert data.class_names == CLASSES and data.feature_names == FEATURES
    assert data.n_features == 16 and data.n_classes == 5
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == N_ROWS
    assert [len(data.x_train), len(data.x_val), len(data.x_test)] == sizes
    assert min(sizes) > 0
    y_all = np.concatenate([data.y_train, data.y_val, data.y_test])
    np.testing.assert_array_equal(np.bincount(y_all, minlength=5), [CLASS_COUNTS[c] for c in CLASSES])
    for split in (data.y_train, data.y_val, data.y_test):  # stratified: every class in every split
        assert set(split) == set(range(5))
    # the standardized splits are exactly the served rows (each once, with its own label),
    # undone by the train-fitted scaler
    raw = np.concatenate([data.scaler.inverse_transform(a.astype(np.float64))
                          for a in (data.x_train, data.x_val, data.x_test)])
    match = np.abs(raw[:, None, :] - VALUES[None, :, :]).max(axis=2).argmin(axis=1)
    assert sorted(match) == list(range(N_ROWS))
    np.testing.assert_allclose(raw, VALUES[match], rtol=1e-5)
    np.testing.assert_array_equal(y_all, _expected_y()[match])
