"""The HGQ2 contender as a study: a study file's ``[hgq]`` section, stored as ``NAME-hgq`` (kind "hgq").

Per seed, one HGQ2 training (:func:`qapbo.train.hgq.train_hgq`: a beta ramp, or one run per fixed
beta) on the study's own split of its data traces a front of checkpoints, which HGQ2's
``ParetoFront`` callback keeps on (validation AUC, EBOPs). Once a seed's training is done, each
checkpoint of that final front is calibrated (HGQ2's ``trace_minmax`` on the training rows, as its
documentation requires before deployment), costed through da4ml's HGQ2 path, measured on the test
rows (the macro one-vs-rest AUC every study reports), checked against da4ml's traced logic on every
test row, uploaded (the calibrated ``.keras`` file) and stored as one COMPLETE trial in a single
``add_trial``, so a killed run leaves no partial trial.

Compute. A checkpoint's ``epochs``, ``seconds`` and ``cpu_seconds`` are what its seed trained since
the previous stored checkpoint (its ``epoch`` parameter and ``run_seconds`` are the totals at which
it was saved), so summed in trial order they give the study's history, as for QAP levels; the
epochs trained after the last checkpoint are one PRUNED trial (``run_tail``), so the study's total
is the whole training. Only the final front is stored: a checkpoint ``ParetoFront`` dropped later
(dominated on validation by a later one) is not, so at budgets below the whole run the history
holds fewer points than the run had then.

Resuming. The training state lives in ``<artifacts>/hgq/<study>/seed-<s>`` (Keras' backup and
restore; see :mod:`qapbo.train.hgq` for what is bit-identical after a kill); a rerun continues the
training, skips checkpoints already stored and stores the rest. A seed is done once its tail is stored.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial

from qapbo.data.split import JetData, load_data
from qapbo.errors import StudyFileError
from qapbo.progress import reporter
from qapbo.records import DIRECTIONS
from qapbo.study.file import StudyFile
from qapbo.study.runfront import EpochProgress, RunFront, data_attrs, store_front, stored
from qapbo.study.storage import artifact_dir, artifact_store, open_storage, open_study, redact, storage_url

SECTIONS = ("data", "hgq")
COST = "luts"  # the study's second objective: what HGQ2 is costed in on hardware (every cost is recorded)
MIMETYPE = "application/x-keras"  # a .keras file (a zip archive) of HGQ2 layers


def epoch_flops(data: JetData, hidden: tuple[int, ...]) -> int:
    """Training FLOPs of one HGQ2 epoch by qapbo's rule (:mod:`qapbo.cost.flops`: HGQ2's quantizers,
    like qapbo's, are not counted): every training row forward and backward, every validation row
    forward (HGQ2's front is judged on validation AUC each epoch)."""
    from qapbo.cost.flops import BACKWARD_FACTOR, forward_flops

    f = forward_flops([data.n_features, *hidden, data.n_classes], bn="none")
    return (1 + BACKWARD_FACTOR) * f * len(data.x_train) + f * len(data.x_val)


def hgq_workdir(study: StudyFile, url: str, seed: int) -> Path:
    """Where one seed's HGQ2 training state lives: beside the study's checkpoints."""
    return artifact_dir(study, url) / "hgq" / study.hgq_study_name / f"seed-{seed}"


@dataclass
class PreparedHgq:
    """An HGQ2 study opened (and checked against the study file) with its data loaded."""

    url: str
    study: optuna.Study
    data: JetData
    done: dict[tuple, FrozenTrial]  # COMPLETE trials by qapbo.study.runfront.KEY
    finished: set[int]  # seeds whose tail is stored

    def todo(self, seeds: tuple[int, ...]) -> list[int]:
        return [s for s in seeds if s not in self.finished]


def prepare_hgq(study: StudyFile, storage: str | None = None) -> PreparedHgq:
    """Check the extra and load the data (both fail before the storage is touched), then open the study."""
    from qapbo.train.hgq import require_hgq

    if study.hgq is None:
        raise StudyFileError(f"{study.path}: no [hgq] section; add one to train the HGQ2 contender")
    require_hgq()
    url = storage_url(study, storage)
    data = load_data(study.data)
    ostudy = open_study(open_storage(url), study, kind="hgq", sections=SECTIONS, directions=DIRECTIONS,
                        study_name=study.hgq_study_name, metric_names=("auc", COST))
    done, finished = stored(ostudy)
    return PreparedHgq(url, ostudy, data, done, finished)


def run_hgq(
    study: StudyFile,
    storage: str | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the [hgq] section of ``study``; returns the Optuna study holding its checkpoints.

    ``progress`` as for :func:`qapbo.study.qap.run_qap`: a bar over each run's epochs, or a line
    every :data:`qapbo.study.runfront.LINES_EVERY` epochs and one per stored checkpoint. Ctrl-C raises
    :class:`qapbo.train.hgq.HgqInterrupted` (a ``KeyboardInterrupt``) with the state saved.
    """
    from qapbo.train.hgq import train_hgq

    mode, say = reporter(progress, log)
    prep = prepare_hgq(study, storage)
    h = study.hgq
    store = artifact_store(artifact_dir(study, prep.url))
    runs = [name for name, _ in h.runs()]
    dists = {"seed": CategoricalDistribution(list(h.seeds)), "run": CategoricalDistribution(runs),
             "epoch": IntDistribution(1, h.epochs)}
    schedule = f"betas {', '.join(f'{b:g}' for b in h.betas)}" if h.betas else f"beta ramp {h.beta0:g} -> {h.beta1:g}"
    say(f"hgq {study.name}: {len(prep.finished)}/{len(h.seeds)} seeds already stored in {redact(prep.url)} "
        f"(study {prep.study.study_name}); HGQ2 {prep.data.n_features}-{'-'.join(map(str, h.hidden))}-"
        f"{prep.data.n_classes}, {h.epochs} epochs per run, {schedule}; data: {prep.data.label} ({prep.data.sizes})")
    for seed in prep.todo(h.seeds):
        workdir = hgq_workdir(study, prep.url, seed)
        with EpochProgress(mode, say, h.epochs, f"hgq seed {seed}") as on_epoch:
            checkpoints = train_hgq(prep.data.x_train, prep.data.y_train, prep.data.x_val, prep.data.y_val, h,
                                    workdir, seed, progress=on_epoch)
        _store_seed(prep, store, study, seed, workdir, checkpoints, dists, say)
    return prep.study


def _store_seed(prep: PreparedHgq, store: Any, study: StudyFile, seed: int, workdir: Path, checkpoints: list,
                dists: dict, say: Callable[[str], None]) -> None:
    """Store a finished seed: every checkpoint not yet stored, then the tail that marks the seed done."""
    from qapbo.train.hgq import spent

    front = RunFront(prep.study, "hgq", "hgq", COST, dists, prep.data, epoch_flops(prep.data, study.hgq.hidden),
                     study.min_auc)
    store_front(front, seed, spent(workdir, study.hgq), checkpoints, prep.done,
                lambda c: _measure_checkpoint(prep, store, study, c), study.hgq.epochs, say)


def _measure_checkpoint(prep: PreparedHgq, store: Any, study: StudyFile, c: Any) -> dict[str, Any]:
    """A checkpoint calibrated, costed through da4ml's HGQ2 path, measured on the test rows, checked
    against da4ml's logic on every test row and uploaded: its record (without the compute)."""
    from qapbo.train import hgq

    data = prep.data
    model = hgq.load_checkpoint(c.path)
    traced = hgq.trace_hgq(model, data.x_train)  # calibrates the model in place: what is stored is what is costed
    costs = hgq.hgq_costs(model, data.x_train, traced)
    logits = hgq.keras_logits(model, data.x_test)
    logic = hgq.logic_logits(traced, data.x_test)
    metrics = hgq.test_metrics(logits, data.y_test, data.class_names)
    w = [r["w"] for r in traced.layers]
    nonzero = np.concatenate([r["w_width"][r["w"] != 0].ravel() for r in traced.layers])
    rec: dict[str, Any] = {
        **metrics, **costs,
        "model_name": f"HGQ2 {data.n_features}-{'-'.join(map(str, study.hgq.hidden))}-{data.n_classes} "
                      "(per-weight bits)",
        "sparsity": float(sum((x == 0).sum() for x in w) / sum(x.size for x in w)),
        "sparsity_per_layer": [float((x == 0).mean()) for x in w],
        "weight_bits_mean": float(nonzero.mean()) if nonzero.size else 0.0,
        **data_attrs(data),
        "ebops_train": c.ebops_train,
        "logic_rows": int(len(data.x_test)), "logic_same_class": int((logic.argmax(1) == logits.argmax(1)).sum()),
        "logic_max_abs_diff": float(np.abs(logic - logits).max()),
    }
    fd, tmp = tempfile.mkstemp(suffix=".keras", prefix="qapbo-hgq-")
    os.close(fd)
    os.unlink(tmp)  # keras writes the file itself
    try:
        model.save(tmp)
        rec["checkpoint"] = optuna.artifacts.upload_artifact(artifact_store=store, file_path=tmp,
                                                             study_or_trial=prep.study, mimetype=MIMETYPE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return rec


def load_stored_model(study: StudyFile, url: str, trial: FrozenTrial):
    """The calibrated Keras model a stored hgq trial holds (downloaded from the artifact store)."""
    from qapbo.errors import StorageError
    from qapbo.train.hgq import load_checkpoint

    store = artifact_store(artifact_dir(study, url), create=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        try:
            optuna.artifacts.download_artifact(artifact_store=store, file_path=str(path),
                                               artifact_id=trial.user_attrs["checkpoint"])
        except Exception as exc:
            raise StorageError(f"cannot load checkpoint {trial.user_attrs['checkpoint']} ({type(exc).__name__}: "
                               f"{exc}); is the artifact directory beside the database complete?") from None
        return load_checkpoint(path)
