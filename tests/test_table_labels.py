"""The table source on users' tables: labels as written, missing labels, empty files, odd paths.

The property-based test writes random tables (mixed dtypes, NaN and inf, empty and duplicate
columns, any number of classes, text and integer labels) and checks that loading one either
gives a valid result or one clear DataError, never another exception, and never changes the file.
"""

import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qapbo.data.config import DataConfig
from qapbo.data.sources import read_table
from qapbo.data.split import load_data
from qapbo.errors import DataError


def _ten_class_csv(path, labels):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=len(labels)), "b": rng.normal(size=len(labels))})
    df["class"] = labels
    df.to_csv(path, index=False)


def test_integer_labels_are_ordered_by_value(tmp_path):
    labels = [k % 11 for k in range(110)]
    _ten_class_csv(tmp_path / "t.csv", labels)
    x, y, classes, feats = read_table(str(tmp_path / "t.csv"), "class")
    assert classes == tuple(str(k) for k in range(11))  # 0, 1, 2, ..., 10; not 0, 1, 10, 2
    assert y.tolist() == labels and feats == ("a", "b")


def test_labels_are_kept_as_written(tmp_path):
    (tmp_path / "t.csv").write_text("a,class\n1,01\n2,1.5\n3,01\n4,z\n")
    _, y, classes, _ = read_table(str(tmp_path / "t.csv"), "class")
    assert classes == ("01", "1.5", "z") and y.tolist() == [0, 1, 0, 2]
    (tmp_path / "n.csv").write_text("a,class\n1,007\n2,2.5\n3,10\n")
    assert read_table(str(tmp_path / "n.csv"), "class")[2] == ("2.5", "007", "10")  # by value, as written


def test_separate_test_file_uses_the_numeric_order(tmp_path):
    _ten_class_csv(tmp_path / "train.csv", [k % 11 for k in range(440)])
    _ten_class_csv(tmp_path / "test.csv", [10, 2] * 20)
    d = load_data(DataConfig(source="table", path=str(tmp_path / "train.csv"),
                             test_path=str(tmp_path / "test.csv")))
    assert d.class_names[10] == "10" and sorted(set(d.y_test.tolist())) == [2, 10]


def test_missing_labels_name_count_and_rows(tmp_path):
    labels = ["a", "b"] * 20
    for row in (3, 8, 9, 20, 25, 30):
        labels[row - 1] = None
    _ten_class_csv(tmp_path / "t.csv", labels)
    with pytest.raises(DataError, match=r"6 row\(s\) have no label in 'class' \(data rows 3, 8, 9, 20, 25, \.\.\."):
        read_table(str(tmp_path / "t.csv"), "class")
    np.savez(tmp_path / "t.npz", a=np.arange(4.0), y=np.array([1.0, np.nan, 2.0, 1.0]))
    with pytest.raises(DataError, match=r"1 row\(s\) have no label in 'y' \(data rows 2,"):
        read_table(str(tmp_path / "t.npz"), "y")


def test_header_only_and_empty_csv(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,class\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(str(tmp_path / "h.csv"), "class")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        read_table(str(tmp_path / "e.csv"), "class")


def test_directory_is_not_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="is a directory, not a table file"):
        read_table(str(tmp_path), "class")


# --------------------------------------------------------------------------- property-based

_cells = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True, width=32), st.just(""),
    st.sampled_from(["x", "1e3", "nan", "inf", " "]),
)
_label_cells = st.one_of(st.integers(0, 12), st.sampled_from(["g", "q", "10", "2", "01", "", "w z"]))


@st.composite
def tables(draw):
    n_rows = draw(st.integers(0, 40))
    n_cols = draw(st.integers(0, 4))
    names = draw(st.lists(st.sampled_from(["a", "b", "", "class", "a"]), min_size=n_cols, max_size=n_cols))
    cols = [draw(st.lists(_cells, min_size=n_rows, max_size=n_rows)) for _ in range(n_cols)]
    numeric = draw(st.booleans())  # mostly-clean numeric tables reach the split and scaler code
    if numeric:
        cols = [[float(draw(st.integers(-3, 3))) for _ in range(n_rows)] for _ in range(n_cols)]
    labels = draw(st.lists(_label_cells, min_size=n_rows, max_size=n_rows))
    header = ",".join(names + ["class"])
    lines = [header] + [",".join([str(c[i]) for c in cols] + [str(labels[i])]) for i in range(n_rows)]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=tables())
def test_random_tables_load_or_fail_cleanly(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(text)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        d = load_data(DataConfig(source="table", path=str(path)))
    except DataError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg
    else:
        assert d.n_classes >= 2 and len(d.class_names) == len(set(d.class_names))
        assert all(np.isfinite(a).all() for a in (d.x_train, d.x_val, d.x_test))
        assert set(np.unique(np.concatenate([d.y_train, d.y_val, d.y_test]))) <= set(range(d.n_classes))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
