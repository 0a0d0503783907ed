"""pythia-jets: feature definitions, physics, determinism, kill-and-resume and bad input; the
release's detector on hand-made events, its smearing against its resolution formulas, the
leading-jet selection and the physics medians with the detector on.

The sets are small (200 jets per class; 200 W, Z and top jets with the detector) so the whole
file runs in about a minute on two cores.
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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from qapbo.data import pythia as jetgen
from qapbo.data.config import DataConfig
from qapbo.data.split import load_data
from qapbo.errors import DataError, StudyFileError

ROWS, CHUNK = 1000, 100
#: The settings every set had before the options existed (particle level, matched, pT zlogz, fill):
#: the module's set is made with them, given explicitly, so it checks that such sets stay readable.
LEGACY_FLAGS = ["--detector", "none", "--selection", "matched", "--radius", "0.8", "--zlogz", "pt",
                "--undefined", "fill"]
SETTINGS = jetgen.GenSettings(seed=7, chunk_size=CHUNK, **jetgen.LEGACY)


def _qapbo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qapbo.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def jet_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pythia") / "set"
    r = _qapbo("data", "generate", "--rows", str(ROWS), "--seed", "7", "--chunk-size", str(CHUNK),
               "--workers", "2", "--out", str(out), *LEGACY_FLAGS)
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


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "default"])
@pytest.mark.parametrize("cls", ["w", "g"])
def test_every_feature_matches_an_independent_numpy_computation(cls, legacy):
    settings = jetgen.GenSettings(seed=3, **(jetgen.LEGACY if legacy else {}))
    table, info, jets, groomed = jetgen.generate_jets(settings, cls, 0, 4)
    assert table.shape == (4, len(jetgen.COLUMNS)) and info["fills"] == 0
    for k in range(4):
        pt, _, _, p4 = _kinematics(jets[k])
        z = (pt if settings.zlogz == "pt" else p4[3]) / (pt if settings.zlogz == "pt" else p4[3]).sum()
        assert _col(table, "zlogz")[k] == pytest.approx(np.sum(z * np.log(z)), rel=1e-9)
        assert _col(table, "multiplicity")[k] == len(pt)
        _, _, _, g4 = _kinematics(groomed[k])
        e, px, py, pz = g4[3].sum(), g4[0].sum(), g4[1].sum(), g4[2].sum()
        assert _col(table, "mass_mmdt")[k] == pytest.approx(np.sqrt(e**2 - px**2 - py**2 - pz**2), rel=1e-9)
        assert 0 < _col(table, "n_groomed")[k] <= len(pt)
        if settings.selection == "matched":  # the leading jet has no pT window (only the 100 GeV floor)
            assert 800 < _col(table, "jet_pt")[k] < 1600
        else:
            assert _col(table, "jet_pt")[k] > 100
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
           "--chunk-size", str(CHUNK), "--workers", "1", "--out", str(out), "--quiet", *LEGACY_FLAGS]
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
               "--out", str(jet_set), *LEGACY_FLAGS)
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
               "--out", str(copy), *LEGACY_FLAGS)
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


# --------------------------------------------------------------------------- the release's detector


def _particle(pid: int, pt: float, eta: float, phi: float, m: float = 0.0) -> tuple[float, ...]:
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return pid, px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)


def _detector(particles: list[tuple[float, ...]], event: list[int] | None = None, rng=None):
    pid, px, py, pz, e = (np.array(c) for c in zip(*particles))
    ev = np.zeros(len(pid), dtype=np.int64) if event is None else np.array(event)
    return jetgen.release_detector(pid.astype(np.int64), px, py, pz, e, ev, rng)


def _cell_centre(eta: float, phi: float, cell: float) -> tuple[float, float]:
    n_eta, n_phi = jetgen.RELEASE.grid(cell)
    i, j = np.floor((eta + 3) / 6 * n_eta), np.floor(phi / (2 * np.pi) * n_phi)
    return -3 + (i + 0.5) * 6 / n_eta, (j + 0.5) * 2 * np.pi / n_phi


def test_the_release_grids_are_the_public_codes():
    assert jetgen.RELEASE.grid(jetgen.RELEASE.hcal_cell) == (272, 285)
    assert jetgen.RELEASE.grid(jetgen.RELEASE.ecal_cell) == (342, 359)


def test_the_detector_on_hand_made_events_gives_the_tracks_and_cells_of_the_public_code():
    m_pi = 0.13957
    soft = _particle(211, 150.0, 0.3, 1.0, m_pi)      # charged, pT <= 220 GeV: a track as generated
    hard = _particle(-211, 300.0, -0.5, 2.0, m_pi)    # charged above 220 GeV: into the HCAL
    g1, g2 = _particle(22, 40.0, 1.2001, 4.0001), _particle(22, 25.0, 1.2003, 4.0003)  # one ECAL cell
    k0l = _particle(130, 60.0, 0.8, 5.0, 0.4976)      # neutral hadron: HCAL
    forward = [_particle(22, 30.0, 3.2, 0.5), _particle(2112, 30.0, -3.5, 0.5, 0.9396)]  # |eta| > 3: lost
    far_track = _particle(321, 20.0, 3.6, 0.5, 0.4937)  # tracks have no eta limit in the public code
    electron, omega = _particle(11, 80.0, 0.1, 3.0), _particle(3334, 50.0, 0.0, 3.0, 1.672)  # kept; dropped
    _, kind, px, py, pz, e = _detector([soft, hard, g1, g2, k0l, *forward, far_track, electron, omega])
    assert list(kind) == [jetgen.TRACK, jetgen.TRACK, jetgen.LEPTON, jetgen.HCAL, jetgen.HCAL, jetgen.ECAL]
    for i, p in ((0, soft), (1, far_track), (2, electron)):  # exact four-vectors, mass kept
        assert np.allclose([px[i], py[i], pz[i], e[i]], p[1:], rtol=1e-12)
    pt, eta = np.hypot(px, py), np.arcsinh(pz / np.hypot(px, py))
    phi = np.mod(np.arctan2(py, px), 2 * np.pi)
    assert np.allclose(e[3:] ** 2, (px**2 + py**2 + pz**2)[3:], rtol=1e-9)  # cells are massless
    # HCAL cells in eta-bin order: the 300 GeV pion (eta -0.5), then the K0L (eta 0.8)
    for i, p, eta0, phi0 in ((3, hard, -0.5, 2.0), (4, k0l, 0.8, 5.0)):
        c_eta, c_phi = _cell_centre(eta0, phi0, 0.022)
        assert eta[i] == pytest.approx(c_eta, abs=1e-12) and phi[i] == pytest.approx(c_phi, abs=1e-12)
        assert e[i] == pytest.approx(p[4], rel=1e-12) and pt[i] == pytest.approx(p[4] / np.cosh(c_eta), rel=1e-12)
    c_eta, c_phi = _cell_centre(1.2001, 4.0001, 0.0175)  # the two photons: one cell, energies summed
    assert eta[5] == pytest.approx(c_eta, abs=1e-12) and phi[5] == pytest.approx(c_phi, abs=1e-12)
    assert e[5] == pytest.approx(g1[4] + g2[4], rel=1e-12)


def test_cells_are_per_event():
    g = _particle(22, 40.0, 0.5, 1.0)
    ev, kind, *_ , e = _detector([g, g, g], event=[0, 0, 1])
    assert list(ev) == [0, 1] and list(kind) == [jetgen.ECAL] * 2 and e[0] == pytest.approx(2 * e[1])


def test_the_smearing_follows_the_release_resolution_formulas():
    n = 20_000
    rng = np.random.default_rng(5)
    objects = {jetgen.TRACK: (_particle(211, 200.0, 0.2, 1.0), lambda p: jetgen.sigma_track(np.hypot(p[1], p[2]))),
               jetgen.ECAL: (_particle(22, 20.0, 0.2, 1.0), lambda p: jetgen.sigma_ecal(p[4])),
               jetgen.HCAL: (_particle(2112, 150.0, 0.2, 1.0, 0.9396), lambda p: jetgen.sigma_hcal(p[4]))}
    for kind, (p, sigma) in objects.items():
        _, k, px, _, pz, e = _detector([p] * n, event=list(range(n)), rng=rng)
        assert set(k) == {kind}
        ratio = e / _detector([p])[5][0]  # the smearing factor, one per object
        s = float(sigma(p))
        assert abs(ratio.mean() - 1) < 4 * s / np.sqrt(n), kind
        assert ratio.std() == pytest.approx(s, rel=0.03), kind
        assert np.allclose(px / e, (px / e)[0]) and np.allclose(pz / e, (pz / e)[0])  # direction kept
    # the formulas themselves (E, pT in GeV)
    assert jetgen.sigma_track(np.array(100.0)) == pytest.approx(np.hypot(0.025, 0.015))
    assert jetgen.sigma_ecal(np.array(16.0)) == pytest.approx(np.sqrt((0.027 / np.sqrt(10)) ** 2 + 0.015**2 + 0.005**2))
    assert jetgen.sigma_hcal(np.array(70.0)) == pytest.approx(np.sqrt((1.2 / np.sqrt(10)) ** 2 + 0.05**2))


def test_zlogz_energy_and_the_release_drop_rule_on_hand_made_jets():
    import awkward as ak

    one = {"px": [900.0], "py": [10.0], "pz": [100.0], "E": [906.0]}
    two = {"px": [500.0, 480.0], "py": [5.0, -20.0], "pz": [40.0, 60.0], "E": [503.0, 485.0]}
    three = {"px": [500.0, 300.0, 200.0], "py": [5.0, 30.0, -25.0], "pz": [40.0, 30.0, 10.0],
             "E": [503.0, 303.0, 203.0]}
    jets = ak.unflatten(ak.zip({k: one[k] + two[k] + three[k] for k in one}), [1, 2, 3])
    drop = jetgen.GenSettings(zlogz="energy", undefined="drop")  # the defaults, given
    table, _ = jetgen.features(jets, drop)
    z = np.array(three["E"]) / sum(three["E"])
    assert _col(table, "zlogz")[2] == pytest.approx(np.sum(z * np.log(z)), rel=1e-12)
    # groomed to at most two constituents: N2 or tau32 is 0/0 in the release, which drops the jet
    assert list(jetgen.undefined_jets(table, drop)) == [True, True, False]
    assert not jetgen.undefined_jets(table, jetgen.GenSettings(undefined="fill")).any()  # "fill" keeps them all


@pytest.fixture(scope="module")
def release_jets() -> dict[str, tuple[np.ndarray, dict]]:
    settings = jetgen.GenSettings(seed=11, detector="release", selection="leading", zlogz="energy",
                                  undefined="drop")
    out = {}
    for cls in "wzt":
        table, info, _, _ = jetgen.generate_jets(settings, cls, 0, 200)
        out[cls] = (table, info)
    return out


def test_the_leading_selection_keeps_one_jet_per_event(release_jets):
    for cls, (table, info) in release_jets.items():
        assert len(table) == 200
        assert info["events"] == 200 + info["dropped"], cls  # every event gives its leading jet, no more
        assert info["fills"] == 0 and np.all(_col(table, "n_groomed") >= 3)


def test_groomed_mass_medians_with_the_detector_on(release_jets):
    med = {c: np.median(_col(t, "mass_mmdt")) for c, (t, _) in release_jets.items()}
    assert 75 < med["w"] < 85
    assert 85 < med["z"] < 95
    assert 160 < med["t"] < 185


VERSIONS = {"pythia8mc": "8.317.2", "fastjet": "3.5.2.0", "qapbo": "0.1.0", "generator": "pythia-jets-v1"}


def test_earlier_sets_keep_their_key_and_read_as_what_they_were():
    legacy = jetgen.GenSettings(seed=0, **jetgen.LEGACY)
    assert jetgen.cache_key(legacy, VERSIONS) == "2561742de4a5af3c"  # the key of a set made before the options
    old = {k: v for k, v in asdict(legacy).items() if k not in jetgen.LEGACY}
    assert jetgen.GenSettings.from_dict(old) == legacy
    keys = {jetgen.cache_key(jetgen.GenSettings(seed=0, **{**jetgen.LEGACY, f: v}), VERSIONS)
            for f, v in (("detector", "release"), ("selection", "leading"), ("jet_r", 0.4), ("zlogz", "energy"),
                         ("undefined", "drop"))}
    assert len(keys) == 5 and jetgen.cache_key(legacy, VERSIONS) not in keys


def test_the_default_is_the_measured_combination_with_its_own_key():
    measured = dict(detector="none", selection="leading", jet_r=0.8, zlogz="energy", undefined="drop")
    assert jetgen.GenSettings(seed=0) == jetgen.GenSettings(seed=0, **measured)
    assert all(getattr(jetgen.GenSettings(), k) != v for k, v in jetgen.LEGACY.items() if k != "detector")
    # the key of the 100,000-jet set measured for the default (issue 24), which the default cache holds
    assert jetgen.cache_key(jetgen.GenSettings(seed=0), VERSIONS) == "ae83004f28300353"
    assert "NO detector simulation" in jetgen.GenSettings().note and "leading R = 0.8" in jetgen.GenSettings().note


def test_a_set_made_with_the_old_settings_given_explicitly_keeps_its_key_and_loads(jet_set, tmp_path):
    """The module's set was made with today's non-defaults (the old defaults) given as flags: its key
    is the one it had before the options existed, and a study asking for those settings reads it
    from the cache without generating; asking for the defaults points elsewhere."""
    import shutil

    manifest = json.loads((jet_set / "manifest.json").read_text())
    old_format = {k: v for k, v in asdict(SETTINGS).items() if k not in jetgen.LEGACY}  # no option keys
    blob = json.dumps({"settings": old_format, "versions": manifest["versions"]}, sort_keys=True)
    assert manifest["key"] == jetgen.cache_key(SETTINGS, manifest["versions"]) == \
        hashlib.sha256(blob.encode()).hexdigest()[:16]
    cached = tmp_path / "pythia-jets" / manifest["key"]
    shutil.copytree(jet_set, cached)
    before = _tree(cached)
    n = 5 * CHUNK  # so that the default chunk size is the set's
    old = DataConfig(source="pythia-jets", n_rows=n, seed=7, data_home=str(tmp_path), detector="none",
                     selection="matched", radius=0.8, zlogz="pt", undefined="fill")
    data = load_data(old)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == n
    assert "NO detector simulation" in data.label and data.describe()["generation"]["rows_used"] == n
    assert _tree(cached) == before and [p.name for p in (tmp_path / "pythia-jets").iterdir()] == [manifest["key"]]
    default = jetgen.set_dir(jetgen.GenSettings(seed=7, chunk_size=CHUNK), tmp_path)
    assert default.name != manifest["key"] and not default.exists()


def test_a_set_is_refused_for_other_generation_options(jet_set):
    with pytest.raises(DataError, match=r"detector 'none' \(asked 'release'\)"):
        load_data(DataConfig(source="pythia-jets", path=str(jet_set), n_rows=ROWS, seed=7, detector="release"))
    with pytest.raises(DataError, match="detector 'ideal' is not known"):
        load_data(DataConfig(source="pythia-jets", path=str(jet_set), n_rows=ROWS, seed=7, detector="ideal"))


def test_study_files_take_the_generation_options():
    from qapbo.study.file import parse_study

    base = 'name = "x"\n[qap]\n[data]\nsource = "pythia-jets"\nn_rows = 1000\n'
    plain = parse_study(base)
    # unset options are stored as made (today's defaults), so a later change of default is noticed
    assert {k: plain.canonical["data"][k] for k in jetgen.OPTIONS} == \
        {"detector": "none", "selection": "leading", "radius": 0.8, "zlogz": "energy", "undefined": "drop"}
    assert plain.data.selection == "leading"
    with pytest.raises(StudyFileError, match="detector 'ideal' is not known"):
        parse_study(base + 'detector = "ideal"\n')
    s = parse_study(base + 'detector = "release"\nselection = "leading"\nradius = 0.4\nzlogz = "energy"\n'
                           'undefined = "drop"\n')
    assert (s.data.detector, s.data.selection, s.data.radius, s.data.zlogz, s.data.undefined) == \
        ("release", "leading", 0.4, "energy", "drop")
    assert s.config_hash != plain.config_hash
