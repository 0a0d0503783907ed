"""pythia-jets: feature definitions, physics, determinism, kill-and-resume and bad input.

The set is small (200 jets per class) so the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qapbo.data import pythia as jetgen
from qapbo.data.config import DataConfig
from qapbo.data.split import load_data
from qapbo.errors import DataError

ROWS, CHUNK = 1000, 100
SETTINGS = jetgen.GenSettings(seed=7, chunk_size=CHUNK)


def _qapbo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qapbo.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def jet_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pythia") / "set"
    r = _qapbo("data", "generate", "--rows", str(ROWS), "--seed", "7", "--chunk-size", str(CHUNK),
               "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "NO detector simulation" in r.stdout
    return out


def _col(table: np.ndarray, name: str) -> np.ndarray:
    return table[:, jetgen.COLUMNS.index(name)]


def _raw(path: Path) -> np.ndarray:
    """Every chunk of a set, class by class, with all COLUMNS."""
    names = sorted(json.loads((path / "manifest.json").read_text())["chunks"])
    return np.concatenate([np.load(path / n) for n in names])


# --------------------------------------------------------------------------- definitions


def _kinematics(c) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    px, py, pz, e = (np.asarray(c[k], dtype=np.float64) for k in ("px", "py", "pz", "E"))
    pt = np.hypot(px, py)
    return pt, 0.5 * np.log((e + pz) / (e - pz)), np.arctan2(py, px), np.stack([px, py, pz, e])


def _reference_ratios(c) -> dict[str, float]:
    """The energy-correlation ratios from their definitions, over every pair and triplet (plain numpy).

    z_i = pT_i / sum pT; dR_ij in rapidity-azimuth; e2 = sum z_i z_j dR^b; 1e3, 2e3, e3 = sum z_i z_j z_k
    times the smallest, the two smallest, all three of the triplet's dR^b.
    """
    pt, y, phi, _ = _kinematics(c)
    z = pt / pt.sum()
    dphi = np.abs(phi[:, None] - phi[None, :])
    dphi = np.minimum(dphi, 2 * np.pi - dphi)
    dr = np.hypot(y[:, None] - y[None, :], dphi)
    i, j = np.triu_indices(len(z), 1)
    tri = np.array(list(itertools.combinations(range(len(z)), 3)))
    a, b, d = tri.T
    w3 = z[a] * z[b] * z[d]
    sides = np.sort(np.stack([dr[a, b], dr[a, d], dr[b, d]]), axis=0)
    e2 = {beta: np.sum(z[i] * z[j] * dr[i, j] ** beta) for beta in (0, 1, 2)}
    e3 = {beta: np.sum(w3 * np.prod(sides, axis=0) ** beta) for beta in (1, 2)}
    e3_1 = {beta: np.sum(w3 * sides[0] ** beta) for beta in (1, 2)}
    e3_2 = {beta: np.sum(w3 * (sides[0] * sides[1]) ** beta) for beta in (1, 2)}
    return {
        "c1_b0_mmdt": e2[0], "c1_b1_mmdt": e2[1], "c1_b2_mmdt": e2[2],
        "c2_b1_mmdt": e3[1] / e2[1] ** 2, "c2_b2_mmdt": e3[2] / e2[2] ** 2,
        "d2_b1_mmdt": e3[1] / e2[1] ** 3, "d2_b2_mmdt": e3[2] / e2[2] ** 3,
        "d2_a1_b1_mmdt": e3[1] / e2[1] ** 3, "d2_a1_b2_mmdt": e3[1] / e2[2] ** 1.5,
        "m2_b1_mmdt": e3_1[1] / e2[1], "m2_b2_mmdt": e3_1[2] / e2[2],
        "n2_b1_mmdt": e3_2[1] / e2[1] ** 2, "n2_b2_mmdt": e3_2[2] / e2[2] ** 2,
    }


@pytest.mark.parametrize("cls", ["w", "g"])
def test_every_feature_matches_an_independent_numpy_computation(cls):
    table, info, jets, groomed = jetgen.generate_jets(jetgen.GenSettings(seed=3), cls, 0, 4)
    assert table.shape == (4, len(jetgen.COLUMNS)) and info["fills"] == 0
    for k in range(4):
        pt, _, _, p4 = _kinematics(jets[k])
        z = pt / pt.sum()
        assert _col(table, "zlogz")[k] == pytest.approx(np.sum(z * np.log(z)), rel=1e-9)
        assert _col(table, "multiplicity")[k] == len(pt)
        _, _, _, g4 = _kinematics(groomed[k])
        e, px, py, pz = g4[3].sum(), g4[0].sum(), g4[1].sum(), g4[2].sum()
        assert _col(table, "mass_mmdt")[k] == pytest.approx(np.sqrt(e**2 - px**2 - py**2 - pz**2), rel=1e-9)
        assert 0 < _col(table, "n_groomed")[k] <= len(pt)
        assert 800 < _col(table, "jet_pt")[k] < 1600
        ref = _reference_ratios(groomed[k])
        for name, value in ref.items():
            assert _col(table, name)[k] == pytest.approx(value, rel=1e-9, abs=1e-300), name


def test_a_groomed_jet_of_one_constituent_gets_the_fill_value_and_is_counted():
    import awkward as ak

    jets = ak.unflatten(ak.zip({"px": [900.0, 500.0, 480.0], "py": [10.0, 5.0, -20.0],
                                "pz": [100.0, 40.0, 60.0], "E": [906.0, 503.0, 485.0]}), [1, 2])
    table, _ = jetgen.features(jets, jetgen.GenSettings())
    assert list(_col(table, "filled")) == [1.0, 0.0]
    for name in jetgen.RATIO_FEATURES:
        assert _col(table, name)[0] == jetgen.FILL_VALUE
    # two constituents: e3 = 0, so C2 and D2 are 0 by definition, not filled
    assert _col(table, "c2_b1_mmdt")[1] == 0.0 and _col(table, "c1_b1_mmdt")[1] > 0


# --------------------------------------------------------------------------- physics


def test_physics_of_the_generated_jets(jet_set):
    table = _raw(jet_set)
    cls = np.repeat(sorted("gqwzt"), len(table) // 5)  # chunks sort g, q, t, w, z
    med = {c: {f: np.median(_col(table, f)[cls == c]) for f in ("mass_mmdt", "d2_b1_mmdt", "multiplicity")}
           for c in "gqwzt"}
    assert 75 < med["w"]["mass_mmdt"] < 85
    assert 85 < med["z"]["mass_mmdt"] < 95
    assert 160 < med["t"]["mass_mmdt"] < 185
    assert med["w"]["d2_b1_mmdt"] < min(med["g"]["d2_b1_mmdt"], med["q"]["d2_b1_mmdt"])
    assert med["g"]["multiplicity"] > med["q"]["multiplicity"]
    assert np.all((_col(table, "jet_pt") > 800) & (_col(table, "jet_pt") < 1600))
    manifest = json.loads((jet_set / "manifest.json").read_text())
    assert manifest["counts"] == {c: 200 for c in "gqwzt"}
    assert sum(manifest["fills"].values()) == int(_col(table, "filled").sum())
    assert manifest["versions"]["pythia8mc"] == "8.317.2" and "NO detector simulation" in manifest["note"]


def test_load_data_reads_a_set_and_says_what_it_is(jet_set):
    data = load_data(DataConfig(source="pythia-jets", path=str(jet_set), n_rows=ROWS, seed=7))
    assert data.n_features == 16 and data.class_names == ("g", "q", "w", "z", "t")
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == ROWS
    assert np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test])).tolist() == [200] * 5
    assert "NO detector simulation" in data.label and not data.synthetic
    assert data.describe()["generation"]["rows_used"] == ROWS
    smaller = load_data(DataConfig(source="pythia-jets", path=str(jet_set), n_rows=500, seed=7))
    assert len(smaller.y_train) + len(smaller.y_val) + len(smaller.y_test) == 500
    with pytest.raises(DataError, match="seed 7, not 8"):
        load_data(DataConfig(source="pythia-jets", path=str(jet_set), n_rows=ROWS, seed=8))
    with pytest.raises(DataError, match="too few jets"):
        load_data(DataConfig(source="pythia-jets", path=str(jet_set), n_rows=2000, seed=7))


def test_the_default_cache_is_made_once_then_read(tmp_path, monkeypatch):
    monkeypatch.setenv("QAPBO_DATA_HOME", str(tmp_path))
    cfg = DataConfig(source="pythia-jets", n_rows=100, seed=5)
    first = load_data(cfg)
    (where,) = list((tmp_path / "pythia-jets").iterdir())
    stamp = {p.name: p.stat().st_mtime_ns for p in where.iterdir()}
    again = load_data(cfg)
    assert again.fingerprint == first.fingerprint
    assert {p.name: p.stat().st_mtime_ns for p in where.iterdir()} == stamp  # read, not regenerated
    assert json.loads((where / "manifest.json").read_text())["key"] == where.name


# --------------------------------------------------------------------------- kill and resume


def _snapshot(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())
            if p.name.endswith(".npy")}


def test_sigkill_then_the_same_command_gives_the_same_bytes_with_one_worker(jet_set, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "qapbo.cli", "data", "generate", "--rows", str(ROWS), "--seed", "7",
           "--chunk-size", str(CHUNK), "--workers", "1", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*.npy"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _snapshot(out)
    assert 2 <= len(done_before) < 10, "the kill must land mid-run"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    after = _snapshot(out)
    assert {k: after[k] for k in done_before} == done_before  # finished chunks were kept, not redone
    assert after == _snapshot(jet_set)  # same bytes as the uninterrupted two-worker run
    assert not list(out.glob(".tmp-*"))
    assert json.loads((out / "manifest.json").read_text())["counts"] == {c: 200 for c in "gqwzt"}


# --------------------------------------------------------------------------- bad input


def _tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "--rows 0: ask for a positive number of jets"),
    (["--rows", "-3"], "--rows -3: ask for a positive number of jets"),
    (["--rows", "10", "--classes", "g,b"], "unknown jet class(es) 'b'"),
])
def test_bad_requests_are_one_line_and_exit_2(tmp_path, args, message):
    r = _qapbo("data", "generate", *args, "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_an_unwritable_directory_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = _qapbo("data", "generate", "--rows", "10", "--out", str(blocker / "set"))
    assert r.returncode == 2 and "choose a writable directory" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_set_made_with_other_settings_is_refused_and_left_alone(jet_set):
    before = _tree(jet_set)
    r = _qapbo("data", "generate", "--rows", str(ROWS), "--seed", "8", "--chunk-size", str(CHUNK),
               "--out", str(jet_set))
    assert r.returncode == 2 and "made with other settings (seed 7 (asked 8))" in r.stderr
    assert _tree(jet_set) == before


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_chunk_is_refused_and_nothing_else_changes(jet_set, tmp_path, damage):
    import shutil

    copy = tmp_path / "set"
    shutil.copytree(jet_set, copy)
    victim = copy / "w-00001.npy"
    raw = victim.read_bytes()
    mid = len(raw) // 2
    victim.write_bytes(raw[:mid] if damage == "truncate" else raw[:mid] + bytes([raw[mid] ^ 1]) + raw[mid + 1:])
    before = _tree(copy)
    r = _qapbo("data", "generate", "--rows", str(ROWS), "--seed", "7", "--chunk-size", str(CHUNK),
               "--out", str(copy))
    assert r.returncode == 2 and "w-00001.npy is damaged" in r.stderr and "Traceback" not in r.stderr
    assert _tree(copy) == before
    with pytest.raises(DataError, match="is damaged"):
        load_data(DataConfig(source="pythia-jets", path=str(copy), n_rows=ROWS, seed=7))


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, capsys):
    import importlib.metadata as md

    from qapbo.cli import main

    real = md.version

    def version(name: str) -> str:
        if name == "pythia8mc":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "version", version)
    assert main(["train", "--data", "pythia-jets", "--rows", "200", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("pip install 'qapbo[physics]'") and len(err.splitlines()) == 1
