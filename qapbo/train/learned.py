"""The learned-precision chain: one :class:`~qapbo.nn.learned.LearnedTagger` trained under a beta ramp, keeping its own Pareto checkpoints.

qapbo's counterpart of the HGQ2 contender's run (:mod:`qapbo.train.hgq`), so that qapbo's learned
precision can be compared with HGQ2 run for run: per seed, one training whose EBOPs weight beta
follows a log ramp ``beta0`` -> ``beta1`` over all epochs (HGQ2's ``PieceWiseSchedule`` ``'log'``
piece; :func:`qapbo.nn.learned.log_ramp`), or one run per fixed beta. After every epoch the net's
ranges are calibrated on the training rows (as :func:`qapbo.train.loop.train` does: the net judged
is the one that would be built), its validation macro AUC and its EBOPs measured, and the state is
kept on the run's front by HGQ2's own rule (:func:`qapbo.train.front.front_after`, on validation
AUC against EBOPs). Unlike :func:`qapbo.train.loop.train` there is no early stopping and no
restored best state: the front is the result.

Workdir layout (one per seed): ``run.json`` (the arguments' identity: settings, seed, threads, data
fingerprint; another call's arguments are refused) and per run (``ramp`` or ``beta=<b>``)
``state.pt`` (model and Adam state, the epoch, the front's records, the seconds spent) and
``front/epoch-NNNN.pt`` (one kept checkpoint each: spec and state dict, what
:func:`qapbo.study.storage.load_checkpoint` reads).

Resuming: ``state.pt`` is replaced atomically (write, fsync, rename) every ``backup_every`` epochs;
a front file is written before the state that names it and deleted only after a state that no
longer does, so a kill at any moment (SIGKILL included) leaves a consistent workdir, and the same
call continues from the last saved epoch. Nothing in an epoch is random but its batch order, drawn
from ``(seed, epoch)`` alone, and the state holds every parameter, range and Adam moment, so a
resumed run ends with the same checkpoints as an uninterrupted one (same epochs, bit-identical
weights and metrics) on the same machine, torch version and thread count (``tests/test_learned_chain.py``
kills one). Not reproducible: the seconds (each process's are its own).

FLOPs (:func:`epoch_flops`): an epoch trains the training rows (forward and backward) and runs
forward over the training rows once more (the calibration) and over the validation rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from qapbo.data.split import JetData
from qapbo.errors import TrainingError
from qapbo.nn.learned import LearnedTagger, log_ramp, train_epoch
from qapbo.nn.models import build_model
from qapbo.nn.spec import ModelSpec
from qapbo.train.config import LearnedSettings
from qapbo.train.front import RunEpoch, front_after

STATE_VERSION = 1


@dataclass(frozen=True)
class LearnedCheckpoint:
    """One Pareto checkpoint of a chain run: its file, when it was saved (``epochs``, 1-based, and the
    run's wall and CPU seconds up to then, summed across resumes), its beta and what the front judged
    it on (validation macro AUC, accuracy, cross-entropy; EBOPs of the calibrated net)."""

    path: str
    run: str
    seed: int
    epochs: int
    seconds: float
    cpu_seconds: float
    beta: float
    val_auc: float
    val_accuracy: float
    val_loss: float
    ebops: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


LearnedEpoch = RunEpoch  # the record both one-run methods report (qapbo.train.front)


@dataclass(frozen=True)
class Spent:
    """What one run of a workdir has trained so far (its saved state): the compute behind its checkpoints."""

    run: str
    epochs: int
    seconds: float
    cpu_seconds: float


def chain_spec(settings: LearnedSettings, n_features: int, n_classes: int) -> ModelSpec:
    """The net every run of ``settings`` trains (``beta`` 0: the chain sets beta per epoch)."""
    return ModelSpec(n_inputs=n_features, hidden=settings.hidden, n_classes=n_classes, precision="learned",
                     init_bits=settings.init_bits, bits_lr=settings.bits_lr)


def epoch_flops(data: JetData, settings: LearnedSettings) -> int:
    """Training FLOPs of one chain epoch by :mod:`qapbo.cost.flops`' rule (module docstring)."""
    from qapbo.cost.flops import epoch_flops as flops

    spec = chain_spec(settings, data.n_features, data.n_classes)
    n = len(data.x_train)
    return flops(spec, n - 1 if n % settings.batch_size == 1 else n, n + len(data.x_val))


def run_beta(settings: LearnedSettings, fixed: float | None, epoch: int) -> float:
    """Beta of 1-based ``epoch`` of a run: ``fixed``, or the log ramp where HGQ2's ``BetaScheduler`` puts
    it (its schedule's value at the epoch's 0-based index)."""
    return fixed if fixed is not None else log_ramp(epoch - 1, settings.epochs, settings.beta0, settings.beta1)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The batch order of one epoch, from ``(seed, epoch)`` alone (a resumed process draws the same)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]) >> 1)


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name("tmp-" + path.name)
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def train_chain(data: JetData, settings: LearnedSettings, workdir: str | os.PathLike, seed: int, threads: int = 1,
                progress: Callable[[LearnedEpoch], None] | None = None) -> list[LearnedCheckpoint]:
    """Train every run of ``settings`` for one ``seed`` (the ramp, or one per fixed beta) on ``data``'s
    training rows and return the checkpoints of their final fronts, run by run in epoch order.

    Calling again with the same arguments resumes an interrupted run from its last saved state, or
    returns a finished run's checkpoints without training; a workdir holding another call's run is
    refused. Raises :class:`TrainingError` on a non-finite loss.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    identity = {"settings": settings.to_dict(), "seed": int(seed), "threads": int(threads),
                "data": _fingerprint(data.x_train, data.y_train, data.x_val, data.y_val),
                "torch": torch.__version__, "state_version": STATE_VERSION}
    ident = workdir / "run.json"
    if ident.exists():
        held = json.loads(ident.read_text())
        if held != identity:
            diff = sorted(k for k in identity if held.get(k) != identity[k])
            raise TrainingError(f"workdir {workdir} holds a learned-precision chain with other {', '.join(diff)}: "
                                "use another workdir or delete this one")
    else:
        tmp = ident.with_name("tmp-run.json")
        tmp.write_text(json.dumps(identity, indent=1))
        os.replace(tmp, ident)
    torch.set_num_threads(threads)
    out: list[LearnedCheckpoint] = []
    for name, fixed in settings.runs():
        out += _train_run(data, settings, workdir / name, name, fixed, int(seed), progress)
    return out


def _train_run(data: JetData, settings: LearnedSettings, rundir: Path, name: str, fixed: float | None, seed: int,
               progress: Callable[[LearnedEpoch], None] | None) -> list[LearnedCheckpoint]:
    front_dir = rundir / "front"
    front_dir.mkdir(parents=True, exist_ok=True)
    spec = chain_spec(settings, data.n_features, data.n_classes)
    model = build_model(spec, seed=seed)
    assert isinstance(model, LearnedTagger)
    opt = torch.optim.Adam(model.param_groups(settings.lr, settings.bits_lr))
    state_path = rundir / "state.pt"
    done, front, seconds, cpu = 0, [], 0.0, 0.0
    if state_path.exists():
        st = torch.load(state_path, weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        done, front = int(st["epoch"]), json.loads(st["front"])
        seconds, cpu = float(st["seconds"]), float(st["cpu_seconds"])
    _collect_garbage(front_dir, front)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xv, yv = torch.from_numpy(data.x_val), data.y_val
    from qapbo.train.hgq import logit_metrics

    for epoch in range(done + 1, settings.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        beta = run_beta(settings, fixed, epoch)
        loss, _ = train_epoch(model, opt, x, y, beta, settings.batch_size, _epoch_generator(seed, epoch))
        model.calibrate(x)
        model.eval()
        with torch.no_grad():
            m = logit_metrics(model(xv).double().numpy(), yv)
            ebops = float(model.ebops())
        if not (np.isfinite(loss) and np.isfinite(m["loss"])):
            raise TrainingError(f"chain {name} loss became {loss} at epoch {epoch}; lower lr or bits_lr")
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        rec = {"file": f"epoch-{epoch:04d}.pt", "epochs": epoch, "seconds": seconds, "cpu_seconds": cpu,
               "beta": beta, "val_auc": m["auc"], "val_accuracy": m["accuracy"], "val_loss": m["loss"],
               "ebops": ebops}
        kept = front_after(front, rec)
        if kept is not None:  # the file first: a saved state never names a missing one
            _save_atomic({"spec": model.spec.to_dict() | {"beta": beta}, "state_dict": model.state_dict()},
                         front_dir / rec["file"])
            front = kept + [rec]
        if epoch % settings.backup_every == 0 or epoch == settings.epochs:
            _save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                          "front": json.dumps(front), "seconds": seconds, "cpu_seconds": cpu}, state_path)
            _collect_garbage(front_dir, front)
        if progress is not None:
            progress(LearnedEpoch(name, epoch, settings.epochs, loss, m["auc"], ebops, beta, seconds, len(front)))
    return [LearnedCheckpoint(path=str(front_dir / r["file"]), run=name, seed=seed, epochs=r["epochs"],
                              seconds=r["seconds"], cpu_seconds=r["cpu_seconds"], beta=r["beta"], val_auc=r["val_auc"],
                              val_accuracy=r["val_accuracy"], val_loss=r["val_loss"], ebops=r["ebops"])
            for r in sorted(front, key=lambda r: r["epochs"])]


def _collect_garbage(front_dir: Path, front: list[dict[str, Any]]) -> None:
    """Delete front files the saved state does not name (kept after it, or dropped since)."""
    keep = {r["file"] for r in front}
    for p in front_dir.iterdir():
        if p.name not in keep:
            p.unlink()


def load_front_checkpoint(path: str | os.PathLike) -> LearnedTagger:
    """The net of a front file (calibrated on the training rows at its epoch), in eval mode."""
    payload = torch.load(path, weights_only=True)
    model = build_model(ModelSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def spent(workdir: str | os.PathLike, settings: LearnedSettings) -> list[Spent]:
    """Epochs, wall and CPU seconds of every run of ``settings`` in ``workdir``, as saved (0 before the first save)."""
    out = []
    for name, _ in settings.runs():
        path = Path(workdir) / name / "state.pt"
        if path.exists():
            st = torch.load(path, weights_only=True)
            out.append(Spent(name, int(st["epoch"]), float(st["seconds"]), float(st["cpu_seconds"])))
        else:
            out.append(Spent(name, 0, 0.0, 0.0))
    return out
