"""The learned-precision chain as a study: a study file's ``[learned]`` section, stored as ``NAME-learned`` (kind "learned").

qapbo's own counterpart of the HGQ2 contender (:mod:`qapbo.study.hgq`), stored in the same
vocabulary so that the comparison reads the two alike: per seed, one training of a
:class:`~qapbo.nn.learned.LearnedTagger` under a beta ramp (or one run per fixed beta) on the
study's own split (:func:`qapbo.train.learned.train_chain`) keeps a front of checkpoints on
(validation AUC, EBOPs); once the seed's training is done, each checkpoint of that final front is
measured on the test rows (the macro one-vs-rest AUC every study reports), costed (``ebops``,
``bops`` and, with ``qapbo[hw]``, da4ml's ``luts`` and ``latency``: :func:`qapbo.cost.learned.learned_costs`),
checked against da4ml's traced logic on every test row, uploaded (spec and state dict, as every
qapbo checkpoint: :func:`qapbo.study.storage.load_checkpoint` reloads it) and stored as one COMPLETE
trial; the epochs after the last checkpoint are one PRUNED ``run_tail`` trial
(:mod:`qapbo.study.runfront`, shared with HGQ2). The study's second objective is ``luts`` (``ebops``
without da4ml; every cost is recorded either way).

Resuming: the training state lives in ``<artifacts>/learned/<study>/seed-<s>``; a rerun continues
the training, skips checkpoints already stored and stores the rest. A seed is done once its tail is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial

from qapbo.data.split import JetData, load_data
from qapbo.errors import StudyFileError
from qapbo.records import DIRECTIONS
from qapbo.study.file import StudyFile
from qapbo.study.runfront import EpochProgress, RunFront, store_front, stored
from qapbo.study.storage import (
    artifact_dir,
    artifact_store,
    open_storage,
    open_study,
    redact,
    save_checkpoint,
    storage_url,
)

SECTIONS = ("data", "learned")


def cost_objective() -> str:
    """The study's second objective: da4ml's ``luts`` when ``qapbo[hw]`` is installed, else ``ebops``."""
    from qapbo.cost.measure import hw_available

    return "luts" if hw_available() else "ebops"


def learned_workdir(study: StudyFile, url: str, seed: int) -> Path:
    """Where one seed's chain state lives: beside the study's checkpoints."""
    return artifact_dir(study, url) / "learned" / study.learned_study_name / f"seed-{seed}"


@dataclass
class PreparedLearned:
    """A learned-chain study opened (and checked against the study file) with its data loaded."""

    url: str
    study: optuna.Study
    data: JetData
    done: dict[tuple, FrozenTrial]  # COMPLETE trials by qapbo.study.runfront.KEY
    finished: set[int]  # seeds whose tail is stored
    cost: str


def prepare_learned(study: StudyFile, storage: str | None = None) -> PreparedLearned:
    """Load the data (which fails before the storage is touched), then open the study."""
    if study.learned is None:
        raise StudyFileError(f"{study.path}: no [learned] section; add one to train the learned-precision chain")
    url = storage_url(study, storage)
    data = load_data(study.data)
    cost = cost_objective()
    ostudy = open_study(open_storage(url), study, kind="learned", sections=SECTIONS, directions=DIRECTIONS,
                        study_name=study.learned_study_name, metric_names=("auc", cost))
    done, finished = stored(ostudy)
    return PreparedLearned(url, ostudy, data, done, finished, cost)


def run_learned(
    study: StudyFile,
    storage: str | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the [learned] section of ``study``; returns the Optuna study holding its checkpoints.

    ``progress`` as for :func:`qapbo.study.hgq.run_hgq`. One torch thread per the file's ``[train]
    threads`` (results are reproducible for a given thread count).
    """
    from qapbo.progress import reporter
    from qapbo.train.learned import epoch_flops, spent, train_chain

    mode, say = reporter(progress, log)
    prep = prepare_learned(study, storage)
    s = study.learned
    store = artifact_store(artifact_dir(study, prep.url))
    dists = {"seed": CategoricalDistribution(list(s.seeds)), "run": CategoricalDistribution([n for n, _ in s.runs()]),
             "epoch": IntDistribution(1, s.epochs)}
    schedule = f"betas {', '.join(f'{b:g}' for b in s.betas)}" if s.betas else f"beta ramp {s.beta0:g} -> {s.beta1:g}"
    say(f"learned {study.name}: {len(prep.finished)}/{len(s.seeds)} seeds already stored in {redact(prep.url)} "
        f"(study {prep.study.study_name}); learned precision {prep.data.n_features}-{'-'.join(map(str, s.hidden))}-"
        f"{prep.data.n_classes}, {s.epochs} epochs per run, {schedule}, lr {s.lr:g}, bits lr {s.bits_lr:g}, "
        f"init bits {s.init_bits}; data: {prep.data.label} ({prep.data.sizes})")
    front = RunFront(prep.study, "learned", "learned", prep.cost, dists, prep.data, epoch_flops(prep.data, s),
                     study.min_auc)
    for seed in (x for x in s.seeds if x not in prep.finished):
        workdir = learned_workdir(study, prep.url, seed)
        with EpochProgress(mode, say, s.epochs, f"learned seed {seed}") as on_epoch:
            checkpoints = train_chain(prep.data, s, workdir, seed, threads=study.train.threads, progress=on_epoch)
        store_front(front, seed, spent(workdir, s), checkpoints, prep.done,
                    lambda c: measure_checkpoint(prep, store, c), s.epochs, say)
    return prep.study


def measure_checkpoint(prep: PreparedLearned, store: Any, c: Any) -> dict[str, Any]:
    """A front checkpoint measured on the test rows (every metric and cost, as
    :func:`qapbo.train.measure.measure` records a trained net), checked against da4ml's traced logic on
    every test row when da4ml is installed, and uploaded: its record (without the compute)."""
    import torch

    from qapbo.cost import learned as cl
    from qapbo.train.learned import load_front_checkpoint
    from qapbo.train.measure import measure, versions

    data = prep.data
    model = load_front_checkpoint(c.path)
    rec = measure(model, data)
    rec["versions"] = versions()
    rec["ebops_front"] = c.ebops  # the EBOPs the front judged it on: the same net, so the same number
    if "luts" in rec:
        layers = model.fixed_point_layers()
        logic = cl.run_logic(cl.trace(layers), cl.input_values(model, data.x_test))
        with torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(data.x_test, np.float32))).double().numpy()
        rec |= {"logic_rows": int(len(data.x_test)), "logic_same_class": int((logic.argmax(1) == logits.argmax(1)).sum()),
                "logic_max_abs_diff": float(np.abs(logic - logits).max())}
    rec["checkpoint"] = save_checkpoint(store, prep.study, model, {"seed": c.seed, "run": c.run, "epoch": c.epochs,
                                                                   "beta": c.beta})
    return rec
