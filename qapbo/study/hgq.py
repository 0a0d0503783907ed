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
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from qapbo.cost.definitions import FLOPS_DEFINITION
from qapbo.data.split import JetData, load_data
from qapbo.errors import StudyFileError
from qapbo.progress import bar, reporter
from qapbo.records import ATTR_RUN_TAIL, DIRECTIONS, constraint_attrs, violations
from qapbo.study.file import StudyFile
from qapbo.study.storage import artifact_dir, artifact_store, open_storage, open_study, redact, storage_url

SECTIONS = ("data", "hgq")
COST = "luts"  # the study's second objective: what HGQ2 is costed in on hardware (every cost is recorded)
KEY = ("seed", "run", "epoch")
TAIL = ATTR_RUN_TAIL  # the PRUNED trial holding the epochs after a seed's last checkpoint
MIMETYPE = "application/x-keras"  # a .keras file (a zip archive) of HGQ2 layers
LINES_EVERY = 50  # epochs between two progress lines in ``lines`` mode


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
    done: dict[tuple, FrozenTrial]  # COMPLETE trials by KEY
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
    trials = ostudy.get_trials(deepcopy=False)
    done = {tuple(t.params[k] for k in KEY): t for t in trials if t.state == TrialState.COMPLETE}
    finished = {int(t.params["seed"]) for t in trials if t.state == TrialState.PRUNED and t.user_attrs.get(TAIL)}
    return PreparedHgq(url, ostudy, data, done, finished)


def run_hgq(
    study: StudyFile,
    storage: str | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the [hgq] section of ``study``; returns the Optuna study holding its checkpoints.

    ``progress`` as for :func:`qapbo.study.qap.run_qap`: a bar over each run's epochs, or a line
    every :data:`LINES_EVERY` epochs and one per stored checkpoint. Ctrl-C raises
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
        with _EpochProgress(mode, say, h.epochs, f"hgq seed {seed}") as on_epoch:
            checkpoints = train_hgq(prep.data.x_train, prep.data.y_train, prep.data.x_val, prep.data.y_val, h,
                                    workdir, seed, progress=on_epoch)
        _store_seed(prep, store, study, seed, workdir, checkpoints, dists, say)
    return prep.study


class _EpochProgress:
    """A bar over a run's epochs (``bars``) or a line every :data:`LINES_EVERY` epochs (``lines``)."""

    def __init__(self, mode: str, say: Callable[[str], None], epochs: int, tag: str):
        self.mode, self.say, self.epochs, self.tag, self.bar, self.run = mode, say, epochs, tag, None, None

    def __enter__(self) -> "_EpochProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, e: Any) -> None:
        if self.mode == "bars":
            if self.run != e.run:
                if self.bar is not None:
                    self.bar.close()
                self.bar = bar(self.mode, total=e.epochs, initial=e.epoch - 1, desc=f"{self.tag} {e.run}",
                               unit="epoch", leave=False)
                self.run = e.run
            self.bar.update(1)
            self.bar.set_postfix(val_auc=f"{e.val_auc:.4f}", ebops=f"{e.ebops:,.0f}", front=e.front)
        elif e.epoch % LINES_EVERY == 0 or e.epoch == e.epochs:
            self.say(f"{self.tag} {e.run} epoch {e.epoch}/{e.epochs}: beta {e.beta:.3g}  validation AUC "
                     f"{e.val_auc:.4f}  EBOPs {e.ebops:,.0f}  {e.front} on the front  {e.seconds:.0f} s")


def _store_seed(prep: PreparedHgq, store: Any, study: StudyFile, seed: int, workdir: Path, checkpoints: list,
                dists: dict, say: Callable[[str], None]) -> None:
    """Store a finished seed: every checkpoint not yet stored, then the tail that marks the seed done."""
    from qapbo.train.hgq import spent

    runs = spent(workdir, study.hgq)
    offset, total = {}, (0, 0.0, 0.0)
    for r in runs:  # fixed betas run one after another: a run's compute starts where the last one ended
        offset[r.run] = total
        total = (total[0] + r.epochs, total[1] + r.seconds, total[2] + r.cpu_seconds)
    order = {r.run: i for i, r in enumerate(runs)}
    prev = (0, 0.0, 0.0)
    for c in sorted(checkpoints, key=lambda c: (order[c.run], c.epochs)):
        o = offset[c.run]
        at = (o[0] + c.epochs, o[1] + c.seconds, o[2] + c.cpu_seconds)
        if (seed, c.run, c.epochs) not in prep.done:
            _store_checkpoint(prep, store, study, c, at, prev, dists, say)
        prev = at
    tail = optuna.trial.create_trial(
        params={"seed": seed, "run": runs[-1].run, "epoch": study.hgq.epochs}, distributions=dists,
        user_attrs={"kind": "hgq", TAIL: True, "epochs": total[0] - prev[0], "seconds": total[1] - prev[1],
                    "flops": (total[0] - prev[0]) * epoch_flops(prep.data, study.hgq.hidden),
                    "flops_definition": FLOPS_DEFINITION,
                    "cpu_seconds": total[2] - prev[2], "run_epochs": total[0], "run_seconds": total[1],
                    "run_cpu_seconds": total[2], "synthetic": prep.data.synthetic, "data_note": prep.data.label},
        state=TrialState.PRUNED)
    prep.study.add_trial(tail)
    say(f"hgq seed {seed}: {len(checkpoints)} checkpoints on its front; {total[0]} epochs in {total[1]:.0f} s "
        f"({total[2]:.0f} CPU s) of training")


def _store_checkpoint(prep: PreparedHgq, store: Any, study: StudyFile, c: Any, at: tuple, prev: tuple,
                      dists: dict, say: Callable[[str], None]) -> FrozenTrial:
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
        "kind": "hgq",
        "model_name": f"HGQ2 {data.n_features}-{'-'.join(map(str, study.hgq.hidden))}-{data.n_classes} "
                      "(per-weight bits)",
        "sparsity": float(sum((x == 0).sum() for x in w) / sum(x.size for x in w)),
        "sparsity_per_layer": [float((x == 0).mean()) for x in w],
        "weight_bits_mean": float(nonzero.mean()) if nonzero.size else 0.0,
        "data": data.describe(), "data_fingerprint": data.fingerprint, "synthetic": data.synthetic,
        "data_note": data.label,
        "epochs": at[0] - prev[0], "seconds": at[1] - prev[1], "cpu_seconds": at[2] - prev[2],
        "flops": (at[0] - prev[0]) * epoch_flops(data, study.hgq.hidden), "flops_definition": FLOPS_DEFINITION,
        "run_epochs": at[0], "run_seconds": at[1], "run_cpu_seconds": at[2],
        "beta": c.beta, "val_auc": c.val_auc, "val_accuracy": c.val_accuracy, "ebops_train": c.ebops_train,
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
    values = [rec["auc"], float(rec[COST])]
    trial = optuna.trial.create_trial(
        params={"seed": c.seed, "run": c.run, "epoch": c.epochs}, distributions=dists, values=values,
        user_attrs=rec, state=TrialState.COMPLETE, system_attrs=constraint_attrs(violations(rec["auc"], study.min_auc)))
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=max(rec["seconds"], 0.0))
    prep.study.add_trial(trial)
    below = "  (below min_auc: infeasible, on no front)" if rec["auc"] < study.min_auc else ""
    exact = "" if rec["logic_same_class"] == rec["logic_rows"] else \
        f"  da4ml logic differs on {rec['logic_rows'] - rec['logic_same_class']} test rows"
    say(f"hgq seed {c.seed} {c.run} epoch {c.epochs:4d} (beta {c.beta:.3g}): macro AUC (test) {rec['auc']:.4f}  LUTs "
        f"{rec['luts']:,.0f}  BOPs {rec['bops']:,.0f}  EBOPs {rec['ebops']:,.0f}  {rec['sparsity']:.0%} zero weights  "
        f"acc {rec['accuracy']:.4f}{below}{exact}")
    return trial


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
