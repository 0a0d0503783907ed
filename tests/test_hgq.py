"""HGQ2 as a contender (qapbo.hgq): settings, resumable training, costs, bit-exact logic.

Training tests need the extra ``qapbo[hgq]`` (hgq2, keras, jax, da4ml) and are skipped only when one
of those packages is truly absent; settings and the missing-extra message are tested everywhere.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from qapbo.errors import QapboError, SpecError
from qapbo.train import hgq

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
needs_hgq = pytest.mark.skipif(not hgq.hgq_available(), reason="needs the extra qapbo[hgq] (hgq2, keras, jax, da4ml)")

#: Small and fast: a 16-32-16-5 net, 40 epochs of ~7 batches, a ramp steep enough to move the front.
SETTINGS = hgq.HgqSettings(hidden=(32, 16), epochs=40, batch_size=256, beta0=1e-6, beta1=3e-3, seeds=(0,))
DATA = "load_data(DataConfig(n_rows=3000, seed=0))"  # = conftest's tiny_data, rebuilt in subprocesses
COSTS = ("luts", "latency", "ebops_hgq", "ebops", "bops")


# ------------------------------------------------------------------------------------ settings

def test_settings_defaults_are_the_example_net_with_a_log_ramp():
    s = hgq.HgqSettings()
    assert s.hidden == (64, 32, 32) and s.lr == 5e-3 and s.epochs == 800
    assert s.runs() == [("ramp", [(0, 5e-7, "log"), (800, 1e-3, "constant")])]
    fixed = hgq.HgqSettings.from_dict({"betas": [1e-6, 5e-6], "hidden": [16]})
    assert fixed.betas == (1e-6, 5e-6) and fixed.hidden == (16,)
    assert [name for name, _ in fixed.runs()] == ["beta=1e-06", "beta=5e-06"]
    assert hgq.HgqSettings.from_dict(fixed.to_dict()) == fixed


@pytest.mark.parametrize("bad, words", [
    ({"beta0": 0.0}, "every beta must be > 0"),
    ({"beta1": -1e-5}, "every beta must be > 0"),
    ({"betas": [1e-6, 0]}, "every beta must be > 0"),
    ({"betas": []}, "betas is empty"),
    ({"epochs": 0}, "epochs is 0"),
    ({"hidden": []}, "hidden is ()"),
    ({"lr": 0}, "lr is 0"),
    ({"seeds": [1, 1]}, "repeat a seed"),
    ({"batch_size": 1.5}, "batch_size is 1.5"),
    ({"betta": 1e-5}, "unknown hgq setting 'betta': use hidden, epochs"),
])
def test_bad_settings_are_one_clear_error(bad, words):
    with pytest.raises(hgq.HgqSettingsError) as exc:
        hgq.HgqSettings.from_dict(bad)
    msg = str(exc.value)
    assert words in msg and "\n" not in msg
    assert isinstance(exc.value, SpecError) and isinstance(exc.value, QapboError)


def _python(code: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_a_missing_extra_is_one_line_naming_the_install():
    # hgq2 made unimportable in a fresh interpreter: what a user without the extra sees
    r = _python("""
        import sys
        sys.modules["hgq"] = None
        from qapbo.train import hgq
        assert not hgq.hgq_available() or True
        try:
            hgq.train_hgq(None, None, None, None, hgq.HgqSettings(), "/nonexistent", 0)
        except hgq.HgqError as exc:
            print(exc)
        else:
            print("no error")
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines == ["HGQ2 needs hgq2, which is not installed: pip install 'qapbo[hgq]'"]


@needs_hgq
def test_keras_with_another_backend_is_refused():
    r = _python("""
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import keras
        from qapbo.train import hgq
        try:
            hgq.build_model(hgq.HgqSettings(), 16, 5, 1e-6)
        except hgq.HgqError as exc:
            print(exc)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("keras was imported with the 'torch' backend before qapbo.hgq needed it: set KERAS_BACKEND=jax")


# ------------------------------------------------------------------------------- training runs

def _train(data, workdir, settings=SETTINGS, progress=None):
    return hgq.train_hgq(data.x_train, data.y_train, data.x_val, data.y_val, settings, workdir, seed=0,
                         progress=progress)


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """One uninterrupted run: its checkpoints and the variables of each."""
    wd = tmp_path_factory.mktemp("hgq-ref")
    epochs = []
    ckpts = _train(tiny_data, wd, progress=epochs.append)
    return {"dir": wd, "ckpts": ckpts, "epochs": epochs}


def _weights(path) -> list[np.ndarray]:
    return [np.asarray(v) for v in hgq.load_checkpoint(path).get_weights()]


def _same_checkpoints(a: list[hgq.HgqCheckpoint], b: list[hgq.HgqCheckpoint]) -> None:
    """Same epochs, file names, metrics and bit-identical weights; seconds are not compared."""
    assert [(c.epochs, Path(c.path).name) for c in a] == [(c.epochs, Path(c.path).name) for c in b]
    for x, y in zip(a, b):
        for f in ("val_auc", "val_accuracy", "val_loss", "ebops_train", "beta"):
            assert getattr(x, f) == getattr(y, f), f
        for wx, wy in zip(_weights(x.path), _weights(y.path), strict=True):
            assert np.array_equal(wx, wy)


@needs_hgq
def test_a_ramp_keeps_a_front_of_checkpoints(reference):
    ckpts, epochs = reference["ckpts"], reference["epochs"]
    assert len(ckpts) >= 3
    assert [e.epoch for e in epochs] == list(range(1, SETTINGS.epochs + 1))
    assert epochs[-1].beta == pytest.approx(1e-6 * (3e-3 / 1e-6) ** (39 / (40 + 1e-9)), rel=1e-9)  # HGQ2's log ramp
    assert epochs[0].ebops > 2 * epochs[-1].ebops  # the penalty shrank the net
    ebops = [c.ebops_train for c in ckpts]
    aucs = [c.val_auc for c in ckpts]
    for i, c in enumerate(ckpts):  # a front: nothing kept is weakly dominated by another kept point
        assert Path(c.path).is_file() and c.path.endswith(".keras")
        assert 1 <= c.epochs <= SETTINGS.epochs and c.seconds > 0 and c.seed == 0 and c.run == "ramp"
        assert 0.5 < c.val_auc <= 1 and 0 < c.val_accuracy <= 1 and c.val_loss > 0
        assert not any(j != i and aucs[j] >= aucs[i] and ebops[j] <= ebops[i] for j in range(len(ckpts)))
    assert [c.seconds for c in ckpts] == sorted(c.seconds for c in ckpts)
    assert max(aucs) > 0.85  # synthetic jets are easy
    front = ckpts[0].path.rsplit("/", 1)[0]
    assert sorted(os.listdir(front)) == sorted(Path(c.path).name for c in ckpts)  # no leftovers
    # a finished run called again trains nothing and returns the same checkpoints
    again = []
    t0 = time.perf_counter()
    assert _train_data_again(reference, again) == ckpts and again == []
    assert time.perf_counter() - t0 < 60


def _train_data_again(reference, progress_log):
    from qapbo.data import DataConfig, load_data

    return _train(load_data(DataConfig(n_rows=3000, seed=0)), reference["dir"], progress=progress_log.append)


@needs_hgq
def test_every_checkpoint_has_every_cost_and_da4ml_reproduces_it(reference, tiny_data):
    d = tiny_data
    luts = []
    for c in reference["ckpts"]:
        model = hgq.load_checkpoint(c.path)
        traced = hgq.trace_hgq(model, d.x_train)
        costs = hgq.hgq_costs(model, d.x_train, traced)
        for k in COSTS:
            assert isinstance(costs[k], float) and math.isfinite(costs[k]) and costs[k] > 0, (k, costs[k])
            assert costs[f"{k}_definition"] == hgq.DEFINITIONS[k]
        assert costs["latency_min"] <= costs["latency"]
        assert costs["ebops_definition"] == "hgq2-ebops-v1" and costs["luts_definition"] == "da4ml-0.6-adders-v1"
        assert len(costs["ebops_per_layer"]) == len(costs["bops_per_layer"]) == 3
        # HGQ2's own count, recomputed from the formats: in bits x weight bits + mean bias bits x outputs
        mine = sum(float((r["in_bits"] @ r["w_bits"]).sum()) + r["b_bits_mean"] * r["w"].shape[1]
                   for r in _with_bias_bits(model, traced.layers))
        assert costs["ebops_hgq"] == pytest.approx(mine, rel=1e-6)
        assert costs["ebops"] != costs["ebops_hgq"]  # the two definitions differ (sign bits, values)
        # da4ml's logic gives the Keras model's logits bit for bit, so its class, on every test row
        k_logits = hgq.keras_logits(model, d.x_test)
        l_logits = hgq.logic_logits(traced, d.x_test)
        assert l_logits.shape == (len(d.y_test), 5)
        assert np.array_equal(k_logits.argmax(1), l_logits.argmax(1))
        assert np.array_equal(k_logits, l_logits)
        m = hgq.test_metrics(k_logits, d.y_test, d.class_names)
        from qapbo.nn.metrics import macro_auc

        assert m["auc"] == pytest.approx(macro_auc(hgq.softmax(k_logits), d.y_test), abs=1e-12) and m["auc"] > 0.6
        luts.append(costs["luts"])
    assert max(luts) > 1.5 * min(luts)  # the front spans costs


def _with_bias_bits(model, layers):
    from hgq.layers import QDense

    dense = [lay for lay in model.layers if isinstance(lay, QDense)]
    out = []
    for lay, r in zip(dense, layers):
        bb = np.asarray(lay.bq.bits_(lay.bias.shape), np.float64)
        out.append(r | {"b_bits_mean": float(np.broadcast_to(bb, lay.bias.shape).mean())})
    return out


def test_bops_per_weight_reduces_to_hawks_and_ebops_counts_values():
    from qapbo.cost.bops import linear_bops

    rng = np.random.default_rng(0)
    w = rng.integers(-3, 4, size=(6, 4)).astype(np.float64) / 4  # (inputs, outputs), 2 fraction bits
    b = np.array([0.25, 0.0, -0.5, 0.0])
    layer = {"w": w, "b": b, "w_f": np.full(w.shape, 2.0), "w_width": np.full(w.shape, 5.0),
             "in_width": np.full(6, 7.0)}
    p = (np.count_nonzero(w) + np.count_nonzero(b)) / (w.size + b.size)
    total, per = hgq.hgq_bops([layer])
    assert total == pytest.approx(linear_bops(6, 4, 5, 7, p)) and per == [total]
    # qapbo's ebops: bits of each integer value (w * 2**f) times the input width, plus non-zero biases' widths
    layer |= {"b_width": np.full(4, 9.0)}
    w_int = np.round(w * 4).astype(int)
    bits = np.where(w_int != 0, np.floor(np.log2(np.maximum(np.abs(w_int), 1))) + 2, 0)
    e, _ = hgq.hgq_ebops([layer])
    assert e == (bits * 7).sum() + 2 * 9
    # a weight 0.5 stored with 3 fraction bits is the integer 4: 3 magnitude bits and a sign
    one = {"w": np.array([[0.5]]), "b": np.zeros(1), "w_f": np.array([[3.0]]), "b_width": np.zeros(1),
           "in_width": np.array([1.0])}
    assert hgq.hgq_ebops([one])[0] == 4.0


# --------------------------------------------------------------------------------- resuming

@needs_hgq
def test_sigkill_mid_run_then_the_same_call_resumes_to_the_same_checkpoints(reference, tmp_path):
    wd = tmp_path / "killed"
    s = SETTINGS.to_dict()
    code = f"""
        import sys, time
        from qapbo.train import hgq
        from qapbo.data import DataConfig, load_data
        d = {DATA}
        def progress(e):
            print("epoch", e.epoch, flush=True)
            time.sleep(0.15)  # slow enough to be killed mid-run; does not touch the numbers
        hgq.train_hgq(d.x_train, d.y_train, d.x_val, d.y_val, hgq.HgqSettings.from_dict({s!r}), {str(wd)!r}, 0,
                      progress=progress)
        print("finished", flush=True)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("epoch") and int(line.split()[1]) >= 15:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with np.load(wd / "ramp" / "backup" / "backup.npz") as z:
        backed_up = json.loads(str(z["__meta__"]))["epoch"]
    assert 15 <= backed_up < SETTINGS.epochs  # killed mid-run, after a backup
    from qapbo.data import DataConfig, load_data

    d = load_data(DataConfig(n_rows=3000, seed=0))
    seen = []
    resumed = _train(d, wd, progress=seen.append)
    assert [e.epoch for e in seen] == list(range(backed_up + 1, SETTINGS.epochs + 1))  # continued, not restarted
    _same_checkpoints(resumed, reference["ckpts"])
    assert sorted(os.listdir(wd / "ramp" / "front")) == sorted(Path(c.path).name for c in resumed)


@needs_hgq
def test_ctrl_c_stops_cleanly_and_resumes(reference, tiny_data, tmp_path):
    def stop_at_12(e):
        if e.epoch == 12:
            raise KeyboardInterrupt

    with pytest.raises(hgq.HgqInterrupted) as exc:
        _train(tiny_data, tmp_path, progress=stop_at_12)
    assert exc.value.epochs == 12 and isinstance(exc.value, KeyboardInterrupt)
    assert all(c.epochs <= 12 and Path(c.path).is_file() for c in exc.value.checkpoints)
    _same_checkpoints(_train(tiny_data, tmp_path), reference["ckpts"])


@needs_hgq
def test_a_workdir_of_other_settings_is_refused(reference, tiny_data):
    other = hgq.HgqSettings(hidden=(32, 16), epochs=41, batch_size=256, beta0=1e-6, beta1=3e-3)
    with pytest.raises(hgq.HgqError, match="holds an HGQ2 run with other settings: use another workdir"):
        _train(tiny_data, reference["dir"], settings=other)


@needs_hgq
def test_the_front_keeps_what_hgq2s_own_pareto_front_keeps(tmp_path):
    """Our deferred-deletion front against hgq.utils.sugar.ParetoFront on the same epochs."""
    keras = hgq._keras()
    from hgq.utils.sugar import ParetoFront

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    theirs = ParetoFront(tmp_path / "theirs", metrics=list(hgq.FRONT_METRICS), sides=list(hgq.FRONT_SIDES))
    run = hgq._RunState(tmp_path / "ours", "ramp", 0, 0.0)
    ours = hgq._Front(tmp_path / "ours" / "front", run)
    for cb in (theirs, ours):
        cb.set_model(model)
        cb.on_train_begin()
    rng = np.random.default_rng(1)
    for epoch in range(80):
        logs = {"val_auc": float(rng.choice([0.7, 0.8, 0.9, rng.uniform(0.6, 0.95)])),
                "ebops": float(rng.choice([100, 200, rng.integers(50, 400)])),
                "val_accuracy": 0.5, "val_loss": 1.0, "beta": 1e-5}
        theirs.on_epoch_end(epoch, dict(logs))
        ours.on_epoch_end(epoch, dict(logs))
    assert sorted(map(tuple, theirs.record)) == sorted((r["val_auc"], r["ebops"]) for r in run.front)
    assert sorted(p.name for p in theirs.paths) == sorted(r["file"] for r in run.front)
    assert len(run.front) >= 3
