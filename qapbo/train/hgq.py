"""HGQ2: per-weight learned bit widths with an EBOPs penalty, as a contender (optional extra ``qapbo[hgq]``).

HGQ2 (PyPI ``hgq2``, LGPL-3; Sun et al., "Gradient-based automatic mixed precision quantization
for neural networks on-chip", arXiv:2405.00645) trains every weight's and every activation's bit
width by gradient descent, with a penalty ``beta * EBOPs`` on the network's effective bit
operations. Ramping beta during one run traces a whole accuracy-versus-cost front, which HGQ2's
``ParetoFront`` callback keeps as checkpoints. This module runs it the way HGQ2's documentation
and its ``example/small_jet_tagger.ipynb`` do, on arrays that qapbo's split provides:

* the 16-64-32-32-5 example net of ``QDense`` layers: weights and biases with per-weight ``kbi``
  quantizers (``SAT_SYM``), inputs and activations with per-feature ``kif`` quantizers (``WRAP``),
  a signed input quantizer, an output quantizer with HGQ2's ``MonoL1`` on its bits;
* ``BetaScheduler`` (a log ramp by default, :class:`HgqSettings`), ``FreeEBOPs`` and a
  ``ParetoFront`` on (validation macro AUC, HGQ2's EBOPs);
* costs of every checkpoint through da4ml's own HGQ2 path (:func:`hgq_costs`).

Keras is imported in one place, :func:`_keras`, which sets ``KERAS_BACKEND=jax`` first (and
``JAX_PLATFORMS=cpu`` unless set). Nothing here imports keras, hgq, jax or da4ml at import time:
``import qapbo.train.hgq`` always works, and the first call that needs the extra raises
:class:`HgqError` naming ``pip install 'qapbo[hgq]'`` when it is missing.

Workdir layout (one per seed): ``run.json`` (the arguments' identity: settings, seed, data
fingerprint; another call's arguments are refused), and per run (``ramp`` or ``beta=<b>``)
``backup/backup.npz`` and ``front/*.keras`` (HGQ2's ParetoFront file names).

Resuming (:func:`train_hgq`): Keras' ``BackupAndRestore`` callback, subclassed so that one file
holding every model and optimizer variable, the epoch, the Pareto front's records and the seconds
spent is replaced atomically at the end of every ``backup_every``-th epoch (Keras' own writes two
files one after the other, and ``save_weights`` of an HGQ2 net takes ~0.4 s). A run killed at any
point (SIGKILL included) and called again with the same arguments continues from its last
backed-up epoch. What is reproducible, measured on this CPU/JAX stack (jax/jaxlib 0.10.2, keras
3.15.1, hgq2 0.2.0) and tested in ``tests/test_hgq.py``:

* the checkpoints a resumed run ends with are the same as an uninterrupted run's with the same
  arguments: the same epochs, the same file names, bit-identical weights and metrics. This holds
  because nothing in training is random once the seed fixed the initial weights: HGQ2 rounds
  with ``RND`` (not stochastic), the net has no dropout, the batches' order of every epoch is
  drawn from ``(seed, epoch)`` (:class:`_Batches`), and the backup holds every model variable
  (weights, bit widths, tracked integer bits, HGQ2's beta and EBOPs) and the optimizer's state;
  XLA on CPU runs the same compiled program the same way in a new process;
* not reproducible: the seconds. ``seconds`` sums the wall time of completed epochs over all
  processes (the JIT compile of each process's first epoch included, the epoch a kill interrupted
  not counted), so a resumed run reports other seconds than an uninterrupted one.
* Different thread counts or another XLA build may round float sums differently; bit-identity is
  promised for the same machine and versions only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qapbo.errors import HgqError, HgqSettingsError
from qapbo.train.front import FRONT_METRICS, FRONT_SIDES, RunEpoch, front_after

HGQ_EXTRA = "pip install 'qapbo[hgq]'"
#: Packages of the extra, by import name (what is probed) and distribution name (what is reported).
_REQUIRED = {"keras": "keras", "jax": "jax", "hgq": "hgq2", "da4ml": "da4ml"}

#: Definition names of the costs :func:`hgq_costs` reports.
DEFINITIONS: dict[str, str] = {
    "ebops_hgq": "hgq2-0.2-ebops-calibrated-v1",
    "ebops": "hgq2-ebops-v1",  # qapbo.cost's definition, applied to HGQ2's per-weight formats
    "bops": "hawks2021-perweight-v1",
    "luts": "da4ml-0.6-adders-v1",
    "latency": "da4ml-0.6-depth-v1",
}
STATE_VERSION = 1


class HgqInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the workdir holds a consistent state to resume from.

    ``epochs`` is the number of epochs backed up (a rerun continues there) and ``checkpoints``
    the Pareto checkpoints saved up to them.
    """

    def __init__(self, epochs: int, checkpoints: list["HgqCheckpoint"]):
        super().__init__(f"HGQ2 training interrupted after {epochs} backed-up epochs: rerun the same call to resume")
        self.epochs = epochs
        self.checkpoints = checkpoints


# ------------------------------------------------------------------------------------ the extra

def hgq_available() -> bool:
    """Whether every package of ``qapbo[hgq]`` is importable (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in _REQUIRED)


def require_hgq() -> None:
    """Raise :class:`HgqError` with the install line when a package of the extra is missing."""
    missing = []
    for mod, dist in _REQUIRED.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
            found = False
        if not found or sys.modules.get(mod, 0) is None:
            missing.append(dist)
    if missing:
        raise HgqError(f"HGQ2 needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                       f"not installed: {HGQ_EXTRA}")


def _keras():
    """Keras with the JAX backend: the one place this module imports keras (and hgq with it)."""
    require_hgq()
    if "keras" in sys.modules:
        backend = sys.modules["keras"].backend.backend()
        if backend != "jax":
            raise HgqError(f"keras was imported with the {backend!r} backend before qapbo.hgq needed it: "
                           "set KERAS_BACKEND=jax in the environment or import nothing that imports keras first")
    else:
        os.environ["KERAS_BACKEND"] = "jax"
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import hgq  # noqa: F401  (registers HGQ2's layers for keras.models.load_model)
        import keras
    except ImportError as exc:  # pragma: no cover - require_hgq saw the modules, but they do not import
        raise HgqError(f"HGQ2 could not be imported ({exc}): {HGQ_EXTRA}") from exc
    return keras


# ------------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class HgqSettings:
    """What one HGQ2 study trains; defaults follow HGQ2's ``example/small_jet_tagger.ipynb``.

    * ``hidden``: widths of the hidden ``QDense`` layers (ReLU); (64, 32, 32) is the example's
      16-64-32-32-5 net (inputs and classes come from the data).
    * ``epochs``, ``batch_size``, ``lr`` (Adam, the example's 5e-3). The example's batch of 33,200
      is 1/20 of its 664,000 training rows; on qapbo's quickstart split (12,000 training rows) that
      is one step per epoch, and an 800-epoch ramp then ends at 8,000 LUTs for test AUC 0.85
      instead of ~370 with 1,024 rows per batch (measured), hence the default 1,024.
    * The beta schedule: by default one run with a log ramp ``beta0`` -> ``beta1`` over all epochs
      (``PieceWiseSchedule([(0, beta0, 'log'), (epochs, beta1, 'constant')])``, the schedule kind of
      HGQ's jet-tagger sweeps, which start at 5e-7; 1e-3 at the end reaches ~200 LUTs); with
      ``betas`` set, one run per fixed beta instead (the example's constant ``beta0=0.5e-5`` is
      ``betas=(5e-6,)``). Every beta must be > 0.
    * Initial bits (the example's quantizer scopes): weights and biases ``weight_bits0`` bits
      (``kbi``, b0) with no integer bits (i0=0), activations ``act_frac_bits0`` fraction bits
      (``kif``, f0) with ``act_int_bits0`` integer bits to start (i0; ``WRAP`` tracks the needed
      integer bits during training); ``output_bits_l1``: HGQ2's ``MonoL1`` on the output
      quantizer's bits.
    * ``seeds``: the runs a study makes (one :func:`train_hgq` call each).
    """

    hidden: tuple[int, ...] = (64, 32, 32)
    epochs: int = 800
    batch_size: int = 1024
    lr: float = 5e-3
    beta0: float = 5e-7
    beta1: float = 1e-3
    betas: tuple[float, ...] | None = None
    weight_bits0: int = 3
    act_frac_bits0: int = 3
    act_int_bits0: int = 3
    output_bits_l1: float = 1e-3
    seeds: tuple[int, ...] = (0,)
    backup_every: int = 1  # epochs between two backups (a kill loses at most this many)

    def __post_init__(self) -> None:
        # normalise list inputs (from a TOML or JSON file) to tuples so the frozen object hashes
        for name in ("hidden", "betas", "seeds"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))
        bad = HgqSettingsError
        if not self.hidden or not all(_is_int(h) and h >= 1 for h in self.hidden):
            raise bad(f"hgq hidden is {self.hidden!r}: give one or more layer widths >= 1, e.g. [64, 32, 32]")
        for name in ("epochs", "batch_size", "weight_bits0", "backup_every"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise bad(f"hgq {name} is {v!r}: use a whole number >= 1")
        for name in ("act_frac_bits0", "act_int_bits0"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise bad(f"hgq {name} is {v!r}: use a whole number >= 0")
        if not _is_num(self.lr) or not self.lr > 0:
            raise bad(f"hgq lr is {self.lr!r}: use a learning rate > 0, e.g. 5e-3")
        if not _is_num(self.output_bits_l1) or self.output_bits_l1 < 0:
            raise bad(f"hgq output_bits_l1 is {self.output_bits_l1!r}: use a penalty >= 0 (0 turns it off)")
        betas = (self.beta0, self.beta1) if self.betas is None else self.betas
        what = "beta0 and beta1" if self.betas is None else "betas"
        if self.betas is not None and not self.betas:
            raise bad("hgq betas is empty: give one or more fixed betas > 0, or leave betas out for the beta0-beta1 ramp")
        for b in betas:
            if not _is_num(b) or not math.isfinite(b) or b <= 0:
                raise bad(f"hgq {what} hold {b!r}: every beta must be > 0 (HGQ2's EBOPs penalty weight, e.g. 1e-6)")
        if not self.seeds or not all(_is_int(s) and s >= 0 for s in self.seeds):
            raise bad(f"hgq seeds is {self.seeds!r}: give one or more whole numbers >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise bad(f"hgq seeds {list(self.seeds)} repeat a seed: give each seed once")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HgqSettings":
        """Settings from a mapping (a study file's ``[hgq]`` table); an unknown key is an error."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise HgqSettingsError(f"unknown hgq setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                                   f"use {', '.join(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def runs(self) -> list[tuple[str, list[tuple[int, float, str]]]]:
        """(name, HGQ2 ``PieceWiseSchedule`` intervals) of every run one seed makes."""
        if self.betas is None:
            return [("ramp", [(0, float(self.beta0), "log"), (self.epochs, float(self.beta1), "constant")])]
        return [(f"beta={b:g}", [(0, float(b), "constant")]) for b in self.betas]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


# --------------------------------------------------------------------------------- checkpoints

@dataclass(frozen=True)
class HgqCheckpoint:
    """One Pareto checkpoint of an HGQ2 run.

    ``epochs``: epochs trained when it was saved (1-based); ``seconds``: wall seconds of its run's
    training up to then, summed across resumes (``cpu_seconds`` the process CPU time likewise);
    ``seconds_before``: seconds of the earlier runs of the same :func:`train_hgq` call (fixed betas),
    so the compute that produced it is ``seconds_before + seconds``. ``val_*`` are measured on the
    validation rows at that epoch (``val_auc`` is qapbo's macro one-vs-rest AUC); ``ebops_train``
    is HGQ2's EBOPs during training (before calibration; :func:`hgq_costs` has the calibrated one).
    """

    path: str
    run: str
    seed: int
    epochs: int
    seconds: float
    cpu_seconds: float
    seconds_before: float
    beta: float
    val_auc: float
    val_accuracy: float
    val_loss: float
    ebops_train: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


HgqEpoch = RunEpoch  # the record both one-run methods report (qapbo.train.front)


# ------------------------------------------------------------------------------------ training

def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_model(settings: HgqSettings, n_features: int, n_classes: int, beta: float):
    """The HGQ2 example's net for ``settings`` (built, not compiled), as ``example/small_jet_tagger`` writes it."""
    keras = _keras()
    from hgq.config import QuantizerConfig, QuantizerConfigScope
    from hgq.layers import QDense
    from hgq.regularizers import MonoL1

    s = settings
    scope0 = QuantizerConfigScope(place="all", k0=1, b0=s.weight_bits0, i0=0, default_q_type="kbi",
                                  overflow_mode="sat_sym")
    scope1 = QuantizerConfigScope(place="datalane", k0=0, default_q_type="kif", overflow_mode="wrap",
                                  f0=s.act_frac_bits0, i0=s.act_int_bits0)
    with scope0, scope1:
        iq_conf = QuantizerConfig(place="datalane", k0=1)
        oq_conf = QuantizerConfig(place="datalane", k0=1,
                                  fr=MonoL1(s.output_bits_l1) if s.output_bits_l1 > 0 else None)
        layers = [keras.Input((n_features,))]
        for i, width in enumerate(s.hidden):
            layers.append(QDense(width, beta0=beta, activation="relu", name=f"dense_{i}",
                                 **({"iq_conf": iq_conf} if i == 0 else {})))
        layers.append(QDense(n_classes, beta0=beta, enable_oq=True, oq_conf=oq_conf, name=f"dense_{len(s.hidden)}"))
    return keras.Sequential(layers, name="hgq")


def train_hgq(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    settings: HgqSettings,
    workdir: str | os.PathLike,
    seed: int,
    progress: Callable[[HgqEpoch], None] | None = None,
) -> list[HgqCheckpoint]:
    """Train HGQ2 runs for one ``seed`` (one per fixed beta, or the ramp) and return every Pareto checkpoint.

    Checkpoints are HGQ2 ``.keras`` files under ``workdir/<run>/front``. Calling again with the
    same arguments resumes an interrupted run from its last backup, or returns a finished run's
    checkpoints without training (see the module docstring for what is reproducible). A workdir
    that holds a run of other arguments is refused. Ctrl-C raises :class:`HgqInterrupted` after
    leaving a consistent state. ``keras.utils.set_random_seed(seed)`` seeds Python, NumPy and
    Keras' global generators.
    """
    keras = _keras()
    x_train = np.ascontiguousarray(x_train, np.float32)
    x_val = np.ascontiguousarray(x_val, np.float32)
    y_train = np.ascontiguousarray(y_train, np.int64)
    y_val = np.ascontiguousarray(y_val, np.int64)
    if x_train.ndim != 2 or len(x_train) != len(y_train) or x_val.shape[1:] != x_train.shape[1:] or len(x_val) != len(y_val):
        raise HgqError(f"train {x_train.shape}/{y_train.shape} and validation {x_val.shape}/{y_val.shape} arrays "
                       "do not match: pass (rows, features) inputs and one label per row")
    if not _is_int(seed) or seed < 0:
        raise HgqSettingsError(f"seed is {seed!r}: use a whole number >= 0")
    n_classes = int(max(y_train.max(), y_val.max())) + 1
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    identity = {"settings": settings.to_dict(), "seed": int(seed), "n_classes": n_classes,
                "data": _fingerprint(x_train, y_train, x_val, y_val), "state_version": STATE_VERSION}
    ident_path = workdir / "run.json"
    if ident_path.exists():
        held = json.loads(ident_path.read_text())
        if held != identity:
            diff = sorted(k for k in identity if held.get(k) != identity[k])
            raise HgqError(f"workdir {workdir} holds an HGQ2 run with other {', '.join(diff)}: "
                           "use another workdir or delete this one")
    else:
        _write_json_atomic(ident_path, identity)

    out: list[HgqCheckpoint] = []
    before = 0.0
    for name, schedule in settings.runs():
        ckpts, seconds = _train_run(keras, x_train, y_train, x_val, y_val, settings, workdir / name, name,
                                    schedule, int(seed), n_classes, before, progress)
        out += ckpts
        before += seconds
    return out


def _train_run(keras, x_train, y_train, x_val, y_val, settings, rundir: Path, name: str, schedule, seed: int,
               n_classes: int, before: float, progress) -> tuple[list[HgqCheckpoint], float]:
    from hgq.utils.sugar import BetaScheduler, FreeEBOPs, PieceWiseSchedule

    keras.utils.set_random_seed(seed)
    rundir.mkdir(parents=True, exist_ok=True)
    beta_fn = PieceWiseSchedule(schedule)
    model = build_model(settings, x_train.shape[1], n_classes, beta_fn(0))
    model.compile(keras.optimizers.Adam(settings.lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    run = _RunState(rundir, name, seed, before)
    batches = _Batches(x_train, y_train, settings.batch_size, seed)
    callbacks = [
        _EpochStart(batches, run),
        BetaScheduler(beta_fn),
        FreeEBOPs(),
        _Validation(x_val, y_val, run),
        _Front(rundir / "front", run),
        _Backup(rundir / "backup", run, settings.backup_every),
    ]
    if progress is not None:
        callbacks.append(_Progress(progress, run, settings.epochs))
    try:
        model.fit(batches, epochs=settings.epochs, verbose=0, callbacks=callbacks, shuffle=False)
    except KeyboardInterrupt:
        run.collect_garbage()
        run.materialize(model)  # the model's own state is of no further use
        raise HgqInterrupted(run.epochs, run.checkpoints()) from None
    run.collect_garbage()
    run.materialize(model)
    return run.checkpoints(), run.seconds


def _snapshot_name(fname: str) -> str:
    return fname[: -len(".keras")] + ".vars.npz" if fname.endswith(".keras") else fname + ".vars.npz"


def _variables(model) -> list:
    """Every variable a backup must hold: the model's (weights, bit widths, tracked integer bits,
    HGQ2's beta and EBOPs) and the optimizer's (step count, moments)."""
    vs = list(model.variables)
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        if not opt.built:
            opt.build(model.trainable_variables)
        vs += list(opt.variables)
    return vs


def _save_snapshot(model, path: Path, meta: dict[str, Any] | None = None) -> None:
    """The variables' exact values (and ``meta``) in one ``.npz``, replaced atomically."""
    from keras import ops

    vs = _variables(model)
    arrays = {f"v{i}": np.asarray(ops.convert_to_numpy(v)) for i, v in enumerate(vs)}
    arrays["__shapes__"] = np.array(json.dumps([_signature(v) for v in vs]))
    arrays["__meta__"] = np.array(json.dumps(meta or {}))
    tmp = path.with_name("tmp-" + path.name)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _signature(v) -> list:
    return [list(v.shape), str(v.dtype)]


def _restore(model, path: Path) -> dict[str, Any]:
    """Assign a snapshot's values to ``model`` (same architecture); returns its ``meta``."""
    with np.load(path) as z:
        vs = _variables(model)
        # variables are matched by position: the model is built the same way every time (their
        # paths carry Keras' per-process name counters, so they are not compared)
        if json.loads(str(z["__shapes__"])) != [_signature(v) for v in vs]:
            raise HgqError(f"{path} holds the variables of another model: delete the workdir {path.parents[2]}")
        for i, v in enumerate(vs):
            v.assign(z[f"v{i}"])
        return json.loads(str(z["__meta__"]))


class _RunState:
    """What one run's backup carries besides the model: the front's records and the seconds spent."""

    def __init__(self, rundir: Path, name: str, seed: int, before: float):
        self.rundir, self.name, self.seed, self.before = rundir, name, seed, before
        self.front: list[dict[str, Any]] = []  # HGQ2 ParetoFront's record, one dict per kept checkpoint
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.epochs = 0  # epochs in the last backup
        self._t0 = self._c0 = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"front": self.front, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}

    def load(self, state: dict[str, Any], epochs: int) -> None:
        self.front = list(state["front"])
        self.seconds, self.cpu_seconds = float(state["seconds"]), float(state["cpu_seconds"])
        self.epochs = epochs

    def start_epoch(self) -> None:
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def end_epoch(self) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.cpu_seconds += time.process_time() - self._c0

    def collect_garbage(self) -> None:
        """Delete front files the backed-up record does not hold (saved or dropped after the last backup)."""
        keep = {r["file"] for r in self.front} | {_snapshot_name(r["file"]) for r in self.front}
        front = self.rundir / "front"
        if front.is_dir():
            for p in front.iterdir():
                if p.name not in keep:
                    p.unlink()

    def materialize(self, model) -> None:
        """Write the ``.keras`` file of every kept checkpoint that has only its variable snapshot.

        Saving a ``.keras`` file of an HGQ2 model takes ~0.5 s (Keras walks every quantizer's
        properties), while during a ramp the front changes nearly every epoch; so an epoch that
        joins the front stores a snapshot of the variables (milliseconds) and the files are
        written once, for what is kept. ``model`` is loaded with each snapshot in turn.
        """
        front = self.rundir / "front"
        for r in self.front:
            path = front / r["file"]
            snap = front / _snapshot_name(r["file"])
            if not path.exists():
                _restore(model, snap)
                tmp = path.with_name("tmp-" + path.name)  # ends in .keras, as keras requires
                model.save(tmp)
                os.replace(tmp, path)
            if snap.exists():
                snap.unlink()

    def checkpoints(self) -> list[HgqCheckpoint]:
        return [HgqCheckpoint(path=str(self.rundir / "front" / r["file"]), run=self.name, seed=self.seed,
                              epochs=r["epochs"], seconds=r["seconds"], cpu_seconds=r["cpu_seconds"],
                              seconds_before=self.before, beta=r["beta"], val_auc=r["val_auc"],
                              val_accuracy=r["val_accuracy"], val_loss=r["val_loss"], ebops_train=r["ebops"])
                for r in sorted(self.front, key=lambda r: r["epochs"])]


def _keras_base(name: str):
    keras = _keras()
    return {"Callback": keras.callbacks.Callback, "PyDataset": keras.utils.PyDataset,
            "BackupAndRestore": keras.callbacks.BackupAndRestore}[name]


@functools.cache
def _batches_class():
    PyDataset = _keras_base("PyDataset")

    class Batches(PyDataset):
        """Training batches whose order in every epoch is a permutation drawn from ``(seed, epoch)``.

        Keras' own shuffling draws from a global generator whose state a resumed process does not
        have; this order depends on the epoch alone, so a resumed run sees the same batches.
        One batch holding every row is not permuted (its order does not change the gradient).
        """

        def __init__(self, x, y, batch_size, seed):
            super().__init__()
            self.x, self.y, self.bs, self.seed = x, y, int(batch_size), seed
            self.epoch = None
            self._perm = None
            self.epochs_served: list[int] = []  # the epochs whose order batches were cut from (tests read it)

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch
            self._perm = None

        def __len__(self):
            return max(1, math.ceil(len(self.y) / self.bs))

        def __getitem__(self, idx):
            if self.epoch is None:  # keras peeks at one batch for shapes before training, then resets
                return self.x[:self.bs], self.y[:self.bs]
            if self._perm is None:
                n = len(self.y)
                self._perm = (np.arange(n) if self.bs >= n
                              else np.random.default_rng([self.seed, self.epoch]).permutation(n))
                self.epochs_served.append(self.epoch)
            rows = self._perm[idx * self.bs:(idx + 1) * self.bs]
            return self.x[rows], self.y[rows]

    return Batches


def _Batches(x, y, batch_size, seed):
    return _batches_class()(x, y, batch_size, seed)


@functools.cache
def _callback_classes():
    """Callbacks deriving from keras types, made on first use (keras is imported lazily)."""
    Callback = _keras_base("Callback")
    BackupAndRestore = _keras_base("BackupAndRestore")

    class EpochStart(Callback):
        def __init__(self, batches, run):
            super().__init__()
            self.batches, self.run = batches, run

        def on_epoch_begin(self, epoch, logs=None):
            self.batches.set_epoch(epoch)
            self.run.start_epoch()

    class Validation(Callback):
        """Validation macro AUC (qapbo.metrics), accuracy and cross-entropy of the logits, into the logs."""

        def __init__(self, x, y, run):
            super().__init__()
            self.x, self.y, self.run = x, y, run

        def on_epoch_end(self, epoch, logs=None):
            logits = self.model.predict(self.x, batch_size=max(1, min(len(self.x), 65536)), verbose=0)
            m = logit_metrics(logits, self.y)
            logs.update({"val_auc": m["auc"], "val_accuracy": m["accuracy"], "val_loss": m["loss"]})
            self.run.end_epoch()  # seconds: training and validation, not the file writes that follow

    class Front(Callback):
        """HGQ2's ``ParetoFront`` on (val_auc, ebops), sides (1, -1), with its file names.

        The same keep-or-drop rule as ``hgq.utils.sugar.ParetoFront.on_epoch_end`` (a new point
        weakly dominated by a kept one is dropped; kept points it strictly dominates are dropped),
        but a dropped file is deleted only after the next backup (:meth:`_RunState.collect_garbage`),
        so that a kill between the two never leaves a backed-up record pointing at a deleted file.
        ``tests/test_hgq.py`` checks it keeps what HGQ2's own callback keeps.
        """

        def __init__(self, path, run):
            super().__init__()
            from hgq.utils.sugar import ParetoFront

            self._hgq = ParetoFront(path, metrics=list(FRONT_METRICS), sides=list(FRONT_SIDES))
            self.path, self.run = Path(path), run

        def on_train_begin(self, logs=None):
            self.path.mkdir(parents=True, exist_ok=True)

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs)
            logs["epoch"] = epoch
            kept = front_after(self.run.front, {m: float(logs[m]) for m in FRONT_METRICS})
            if kept is None:
                return
            fname = self._hgq.fname_format.format(**logs)
            _save_snapshot(self.model, self.path / _snapshot_name(fname))  # .keras: RunState.materialize
            run = self.run
            kept.append({"file": fname, "epochs": epoch + 1, "seconds": run.seconds, "cpu_seconds": run.cpu_seconds,
                         "beta": float(logs.get("beta", float("nan"))), "val_auc": float(logs["val_auc"]),
                         "val_accuracy": float(logs["val_accuracy"]), "val_loss": float(logs["val_loss"]),
                         "ebops": float(logs["ebops"])})
            run.front = kept

    class Backup(BackupAndRestore):
        """Keras' ``BackupAndRestore``: restore at the start of ``fit``, back up at the end of epochs.

        Its flow is kept (``on_train_begin`` loads and sets the model's initial epoch); its storage
        is replaced: Keras writes ``latest.weights.h5`` and then ``training_metadata.json``, so a kill
        between the two (or during the first) leaves the weights of one epoch with the number of
        another, and ``save_weights`` of an HGQ2 model takes ~0.4 s. Here one ``backup.npz`` holds
        every model and optimizer variable, the epoch, and the run's front records and seconds, and
        is replaced atomically. It is kept after training, so that a finished run called again
        trains nothing.
        """

        def __init__(self, backup_dir, run, every):
            super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
            self.dir, self.run, self.every = Path(backup_dir), run, every
            self.file = self.dir / "backup.npz"

        def _load_model(self):
            if self.file.exists():
                meta = _restore(self.model, self.file)
                self.model._initial_epoch = meta["epoch"]
                self.run.load(meta["state"], meta["epoch"])
            self.run.collect_garbage()

        def on_epoch_end(self, epoch, logs=None):
            self._current_epoch = epoch + 1
            if self._current_epoch % self.every == 0 or self._current_epoch == self.params["epochs"]:
                self._save_model()

        def _save_model(self):
            self.dir.mkdir(parents=True, exist_ok=True)
            e = self._current_epoch
            _save_snapshot(self.model, self.file, {"epoch": e, "state": self.run.to_json()})
            self.run.epochs = e
            self.run.collect_garbage()

        def on_train_end(self, logs=None):
            pass

    class Progress(Callback):
        def __init__(self, fn, run, epochs):
            super().__init__()
            self.fn, self.run, self.epochs = fn, run, epochs

        def on_epoch_end(self, epoch, logs=None):
            self.fn(HgqEpoch(run=self.run.name, epoch=epoch + 1, epochs=self.epochs, loss=float(logs["loss"]),
                             val_auc=float(logs["val_auc"]), ebops=float(logs["ebops"]),
                             beta=float(logs.get("beta", float("nan"))), seconds=self.run.seconds,
                             front=len(self.run.front)))

    return {"EpochStart": EpochStart, "Validation": Validation, "Front": Front, "Backup": Backup,
            "Progress": Progress}


def _EpochStart(*a):
    return _callback_classes()["EpochStart"](*a)


def _Validation(*a):
    return _callback_classes()["Validation"](*a)


def _Front(*a):
    return _callback_classes()["Front"](*a)


def _Backup(*a):
    return _callback_classes()["Backup"](*a)


def _Progress(*a):
    return _callback_classes()["Progress"](*a)


# ------------------------------------------------------------------------- models and metrics

def load_checkpoint(path: str | os.PathLike):
    """The Keras model of a checkpoint file (HGQ2's layers registered first)."""
    keras = _keras()
    return keras.models.load_model(path, compile=False)


def keras_logits(model, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """The Keras model's logits for float rows ``x`` (float64; HGQ2's quantized values are exact in float32)."""
    _keras()
    x = np.ascontiguousarray(x, np.float32)
    return np.asarray(model.predict(x, batch_size=max(1, min(len(x), batch_size)), verbose=0), np.float64)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logit_metrics(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Macro one-vs-rest AUC of the softmax (qapbo.metrics.macro_auc), accuracy and mean cross-entropy."""
    from qapbo.nn.metrics import macro_auc

    y = np.asarray(y, np.int64)
    p = softmax(logits)
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None))))
    return {"auc": macro_auc(p, y), "accuracy": float(np.mean(np.argmax(logits, axis=1) == y)), "loss": loss}


def test_metrics(logits: np.ndarray, y: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Every classifier metric qapbo reports (``qapbo.metrics.classification_metrics`` of the softmax):
    ``auc`` is the same macro one-vs-rest AUC as every study's."""
    from qapbo.nn.metrics import classification_metrics

    return classification_metrics(softmax(logits), np.asarray(y, np.int64), class_names)


test_metrics.__test__ = False  # not a pytest test despite its name


# ------------------------------------------------------------------------------------- costs

@dataclass
class HgqTrace:
    """A calibrated model's da4ml logic: ``comb`` (da4ml ``CombLogic``) and HGQ2's calibrated EBOPs."""

    comb: Any
    ebops_hgq: float
    trace_seconds: float = 0.0
    layers: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False)


def calibrate(model, x_calib: np.ndarray) -> float:
    """HGQ2's ``trace_minmax`` on ``x_calib`` (in place): the integer bits each ``WRAP`` quantizer
    needs for those rows, as HGQ2's docs require before deployment. Returns HGQ2's EBOPs after it."""
    _keras()
    from hgq.utils import trace_minmax

    return float(trace_minmax(model, np.ascontiguousarray(x_calib, np.float32), batch_size=max(1, min(len(x_calib), 65536))))


def trace_hgq(model, x_calib: np.ndarray) -> HgqTrace:
    """Calibrate ``model`` on ``x_calib`` (:func:`calibrate`), then trace it with da4ml's own HGQ2/Keras
    path: ``da4ml.converter.trace_model`` and ``da4ml.trace.comb_trace``, with the solver options
    qapbo's ``luts`` use (:data:`qapbo.cost.SOLVER_OPTIONS`)."""
    ebops = calibrate(model, x_calib)
    from da4ml.converter import trace_model
    from da4ml.trace import comb_trace

    from qapbo.cost.measure import SOLVER_OPTIONS

    t0 = time.perf_counter()
    inp, out = trace_model(model, solver_options=dict(SOLVER_OPTIONS))
    comb = comb_trace(inp, out)
    return HgqTrace(comb=comb, ebops_hgq=ebops, trace_seconds=time.perf_counter() - t0, layers=_layer_formats(model))


def logic_logits(traced: HgqTrace, x: np.ndarray) -> np.ndarray:
    """Logits da4ml's traced logic computes for float rows ``x`` (its C++ interpreter, bit-exact)."""
    return np.asarray(traced.comb.predict(np.ascontiguousarray(x, np.float64)), np.float64)


def _np(v) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(v), np.float64)


def _layer_formats(model) -> list[dict[str, np.ndarray]]:
    """Per ``QDense`` layer: quantized weights (inputs, outputs) and biases, with the formats HGQ2 gives them.

    ``w_f``: each weight's fraction bits; ``w_width``/``b_width``/``in_width``: full widths with the
    sign (HGQ2's ``fbits``), 0 for a quantizer with no bits; ``w_bits``/``b_bits``/``in_bits``:
    the widths HGQ2's EBOPs count (its quantizers' ``bits``).
    """
    from hgq.layers import QDense

    out = []
    for layer in model.layers:
        if not isinstance(layer, QDense):
            raise HgqError(f"layer {layer.name} is a {type(layer).__name__}: only QDense nets are costed here")
        kshape, bshape = layer.kernel.shape, layer.bias.shape
        in_shape = (1, kshape[0])
        w = _np(layer.qkernel)
        kq, bq, iq = layer.kq, layer.bq, layer.iq
        w_f = np.broadcast_to(_np(kq.quantizer.bw_mapper.bw_to_x(kq.quantizer.f, kshape)), kshape)
        rec = {
            "w": w, "b": _np(layer.qbias),
            "w_f": w_f,
            "w_width": np.broadcast_to(_np(kq.fbits_(kshape)), kshape) * (np.broadcast_to(_np(kq.bits_(kshape)), kshape) > 0),
            "w_bits": np.broadcast_to(_np(kq.bits_(kshape)), kshape),
            "b_f": np.broadcast_to(_np(bq.quantizer.bw_mapper.bw_to_x(bq.quantizer.f, bshape)), bshape),
            "b_width": np.broadcast_to(_np(bq.fbits_(bshape)), bshape) * (np.broadcast_to(_np(bq.bits_(bshape)), bshape) > 0),
            "in_width": np.broadcast_to(_np(iq.fbits_(in_shape)), in_shape)[0] * (np.broadcast_to(_np(iq.bits_(in_shape)), in_shape)[0] > 0),
            "in_bits": np.broadcast_to(_np(iq.bits_(in_shape)), in_shape)[0],
        }
        out.append(rec)
    return out


def hgq_ebops(layers: list[dict[str, np.ndarray]]) -> tuple[float, list[float]]:
    """qapbo's ``ebops`` (``hgq2-ebops-v1``, :func:`qapbo.cost.perweight.layer_ebops`) of HGQ2's per-weight formats.

    Per layer ``sum_ij in_width_j * bits(w_int_ij) + sum_i b_width_i [b_i != 0]``, where
    ``w_int_ij = w_ij * 2**f_ij`` is weight ij's integer value at its own fraction bits,
    ``bits`` is :func:`qapbo.cost.weight_bits` (magnitude bits plus a sign bit, 0 for a zero
    weight), ``in_width_j`` the full width (sign included) of input j's quantizer and ``b_width_i``
    that of bias i's. With one format per layer this is exactly what :mod:`qapbo.cost` computes for
    a Brevitas net with power-of-two scales.
    """
    from qapbo.cost.perweight import layer_ebops

    per = [float(layer_ebops(_codes(r).T, r["in_width"], _nonzero(r), r["b_width"])) for r in layers]
    return float(sum(per)), per


def _codes(r: dict[str, np.ndarray]) -> np.ndarray:
    """The integer codes of a layer's weights at their own fraction bits, (inputs, outputs)."""
    return _integers(r["w"] * 2.0 ** r["w_f"], "weight")


def _nonzero(r: dict[str, np.ndarray]) -> np.ndarray:
    """1 for each non-zero bias: all either cost reads of a bias besides its configured width."""
    return (r["b"] != 0).astype(np.int64)


def _integers(v: np.ndarray, what: str) -> np.ndarray:
    r = np.round(v)
    if not np.array_equal(r, v):
        raise HgqError(f"a quantized {what} is not an integer at its own fraction bits (max error {np.abs(r - v).max()})")
    return r.astype(np.int64)


def hgq_bops(layers: list[dict[str, np.ndarray]]) -> tuple[float, list[float]]:
    """BOPs of HGQ2's per-weight formats, ``hawks2021-perweight-v1`` (:func:`qapbo.cost.perweight.layer_bops`).

    qapbo's BOPs (:mod:`qapbo.bops`, Hawks et al. 2021) of a layer with n inputs, m outputs,
    weight bits b_w, input bits b_a and a share p of non-zero weights and biases is
    ``m n (p b_a b_w + b_a + b_w + log2 n)``. With a width per weight (b_w,ij) and per input
    (b_a,j) the sums replace the products::

        BOPs = p * sum_ij b_a,j b_w,ij + sum_ij (b_a,j + b_w,ij) + m n log2 n

    which is exactly Hawks' formula when every width in the layer is the same. Widths are the
    quantizers' full widths, sign included (what a Brevitas bit width counts); a quantizer HGQ2
    trained down to 0 bits has width 0 (the weight, or the input, is gone). p counts the quantized
    weights and biases that are non-zero, as qapbo's BOPs do.
    """
    from qapbo.cost.perweight import layer_bops

    per = [layer_bops(_codes(r).T, r["in_width"], r["w_width"].T, _nonzero(r)) for r in layers]
    return float(sum(per)), per


def hgq_costs(model, x_calib: np.ndarray, traced: HgqTrace | None = None) -> dict[str, Any]:
    """Every cost of an HGQ2 model, each with its ``*_definition``; calibrates ``model`` in place.

    * ``luts``, ``latency`` (and ``latency_min``): da4ml's cost (adder bits) and adder depth of the
      logic da4ml's own HGQ2 path traces (:func:`trace_hgq`: HGQ2's ``trace_minmax`` on ``x_calib``,
      then ``trace_model`` + ``comb_trace``) - the same quantities as qapbo's ``luts``/``latency``.
    * ``ebops_hgq``: EBOPs as HGQ2 counts them after that calibration (``trace_minmax``'s total):
      per layer ``sum_ij bits(in_j) * bits(w_ij)`` + the mean bias bits times the outputs, where
      ``bits`` is each quantizer's configured width without the sign bit (HGQ2's ``bits`` for its
      ``SAT_SYM``/``WRAP`` modes); a weight quantized to 0 still counts its width.
    * ``ebops``: qapbo's ``hgq2-ebops-v1`` (:func:`hgq_ebops`): the bits of each weight's integer
      *value* (sign included, 0 for a zero weight) times the input's full width (sign included),
      plus the full width of each non-zero bias. The two differ: qapbo counts sign bits and values
      (a weight 0.5 stored with 3 fraction bits is the integer 4: 4 bits; a zero weight 0 bits),
      HGQ2 counts configured widths without signs; neither counts accumulators.
    * ``bops``: ``hawks2021-perweight-v1`` (:func:`hgq_bops`).
    """
    if traced is None:
        traced = trace_hgq(model, x_calib)
    lo, hi = traced.comb.latency
    ebops, ebops_per = hgq_ebops(traced.layers)
    bops, bops_per = hgq_bops(traced.layers)
    return {
        "luts": float(traced.comb.cost), "luts_definition": DEFINITIONS["luts"],
        "latency": float(hi), "latency_min": float(lo), "latency_definition": DEFINITIONS["latency"],
        "ebops_hgq": float(traced.ebops_hgq), "ebops_hgq_definition": DEFINITIONS["ebops_hgq"],
        "ebops": ebops, "ebops_per_layer": ebops_per, "ebops_definition": DEFINITIONS["ebops"],
        "bops": bops, "bops_per_layer": bops_per, "bops_definition": DEFINITIONS["bops"],
        "cost_seconds": traced.trace_seconds, "calibration_rows": int(len(x_calib)),
    }


@dataclass(frozen=True)
class HgqSpent:
    """What one run of a workdir has trained so far (its last backup): the compute behind its checkpoints."""

    run: str
    epochs: int
    seconds: float
    cpu_seconds: float


def spent(workdir: str | os.PathLike, settings: HgqSettings) -> list[HgqSpent]:
    """Epochs, wall and CPU seconds of every run of ``settings`` in ``workdir``, as backed up (0 before the first)."""
    out = []
    for name, _ in settings.runs():
        path = Path(workdir) / name / "backup" / "backup.npz"
        meta: dict[str, Any] = {"epoch": 0, "state": {"seconds": 0.0, "cpu_seconds": 0.0}}
        if path.exists():
            with np.load(path) as z:
                meta = json.loads(str(z["__meta__"]))
        out.append(HgqSpent(name, int(meta["epoch"]), float(meta["state"]["seconds"]),
                            float(meta["state"]["cpu_seconds"])))
    return out


def clear_workdir(workdir: str | os.PathLike) -> None:
    """Delete an HGQ2 workdir (backups, fronts and the run identity)."""
    shutil.rmtree(workdir, ignore_errors=True)
