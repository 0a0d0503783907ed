"""QAP runs: the baseline front, stored and resumable.

One Optuna study per QAP run (directions: maximize AUC, minimize BOPs) and one COMPLETE trial
per (seed, precision, mode, level), written in a single ``add_trial`` once the level is trained
and its checkpoint uploaded, so a run killed at any moment leaves no partial trial; rerunning
continues each chain from its last finished level's checkpoint. Chains do not depend on each
other, so :func:`qapbo.study.workers.run_qap_workers` trains several at once in separate processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution

from qapbo.data.split import JetData, load_data
from qapbo.errors import StudyFileError
from qapbo.nn.models import build_model
from qapbo.progress import LevelBars, reporter
from qapbo.records import DIRECTIONS
from qapbo.study.chain import LevelStore, check_contiguous
from qapbo.study.file import StudyFile
from qapbo.study.storage import (
    artifact_dir,
    artifact_store,
    load_checkpoint,
    open_storage,
    open_study,
    redact,
    save_checkpoint,
    storage_url,
)
from qapbo.train.prune import initial_state_of, iterative_pruning


def qap_study_name(study: StudyFile) -> str:
    return study.qap_study_name


def qap_chains(study: StudyFile) -> list[dict]:
    """Every chain of levels the [qap] section asks for, in run order: one dict of trial tags each."""
    q = study.qap
    return [{"seed": seed, "fold": fold, "randomized": randomized, "precision": bits, "mode": mode}
            for fold, randomized, _ in study.data_variants()
            for seed in q.seeds for bits in q.precisions for mode in q.modes]


@dataclass
class PreparedQap:
    """A QAP study opened (and checked against the study file) with its data loaded."""

    url: str
    study: optuna.Study
    chains: list[dict]
    data: dict[tuple[int, float], JetData]  # by (fold, randomized share)
    done: dict[tuple, optuna.trial.FrozenTrial]  # COMPLETE trials by KEY
    n_levels: int

    @property
    def total(self) -> int:
        return len(self.chains) * self.n_levels

    def remaining(self, chain: dict) -> int:
        return sum(_key({**chain, "level": lvl}) not in self.done for lvl in range(self.n_levels))

    def todo(self) -> list[int]:
        """Chains with levels left, longest first: LT retrains every level from the initial weights."""
        return sorted((i for i, c in enumerate(self.chains) if self.remaining(c)),
                      key=lambda i: (self.chains[i]["mode"] != "lt", -self.remaining(self.chains[i]), i))


def prepare_qap(study: StudyFile, storage: str | None = None) -> PreparedQap:
    """Load every data variant (bad data fails before the storage is touched), then open the study."""
    if study.qap is None:
        raise StudyFileError(f"{study.path}: no [qap] section; add one to run quantization-aware pruning")
    url = storage_url(study, storage)
    data = {(k, r): load_data(cfg) for k, r, cfg in study.data_variants()}
    ostudy = open_study(open_storage(url), study, kind="qap", sections=("data", "train", "qap"),
                        directions=DIRECTIONS, study_name=qap_study_name(study))
    done = {_key(t.params): t for t in ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    return PreparedQap(url, ostudy, qap_chains(study), data, done, len(study.qap.schedule))


def run_qap(
    study: StudyFile,
    storage: str | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
    chains: Iterable[int] | None = None,
) -> optuna.Study:
    """Run (or resume) the QAP part of ``study``; returns the Optuna study holding its trials.

    ``progress``: ``"bars"``, ``"lines"`` (one line per level), ``"none"`` or ``"auto"`` (bars
    only when stderr is a terminal); True means auto, False lines.

    ``chains`` (indices into :func:`qap_chains`) restricts the run to those chains, taken in that
    order as they come: parallel workers pass the contents of a shared queue, so no two of them
    ever train the same chain.
    """
    mode, say = reporter(progress, log)
    prep = prepare_qap(study, storage)
    q = study.qap
    store = artifact_store(artifact_dir(study, prep.url))
    dists = {
        "seed": CategoricalDistribution(list(q.seeds)),
        "fold": IntDistribution(0, study.data.folds - 1),
        "randomized": CategoricalDistribution(list(study.randomizations)),
        "precision": CategoricalDistribution(list(q.precisions)),
        "mode": CategoricalDistribution(list(q.modes)),
        "level": IntDistribution(0, len(q.schedule) - 1),
    }
    first = next(iter(prep.data.values()))
    say(f"qap {study.name}: {len(prep.done)}/{prep.total} levels already stored in {redact(prep.url)} "
        f"(study {prep.study.study_name}); data: {first.label} ({first.sizes})")

    bars = LevelBars(prep.total, len(prep.done), study.train.epochs, enabled=mode == "bars")
    levels = LevelStore(prep.study, dists, "qap", ("bops",), study.min_auc, bars, say)
    try:
        for i in range(len(prep.chains)) if chains is None else chains:
            chain = prep.chains[i]
            data = prep.data[(chain["fold"], chain["randomized"])]
            _run_chain(store, data, study, chain, prep.done, levels)
    finally:
        bars.close()
    return prep.study


KEY = ("seed", "fold", "randomized", "precision", "mode", "level")


def _key(params: dict) -> tuple:
    return tuple(params[k] for k in KEY)


def _run_chain(store, data: JetData, study: StudyFile, chain: dict, done: dict, levels: LevelStore) -> None:
    q = study.qap
    seed, bits, mode = chain["seed"], chain["precision"], chain["mode"]
    stored = [lvl for lvl in range(len(q.schedule)) if _key({**chain, "level": lvl}) in done]
    if len(stored) == len(q.schedule):
        return
    check_contiguous(stored, f"{bits}-bit {mode} seed {seed}")
    spec = q.spec(bits, data.n_features, data.n_classes)
    model = build_model(spec, seed=seed)
    initial = initial_state_of(model)  # LT rewinds to this; rebuilt identically from the seed
    if stored:
        model, _ = load_checkpoint(store, done[_key({**chain, "level": stored[-1]})].user_attrs["checkpoint"])
    config = replace(study.train, seed=seed)
    tag = f"{'float' if bits == 32 else f'{bits}-bit'} {mode.upper()} seed {seed}"
    if study.data.folds > 1:
        tag += f" fold {chain['fold']}"
    if len(study.randomizations) > 1 or chain["randomized"]:
        tag += f" random labels {chain['randomized']:.0%}"
    n = len(q.schedule)
    for res in iterative_pruning(
        model, data, config, q.schedule, mode, initial, start_level=len(stored),
        on_epoch=lambda lvl, log: levels.bars.epoch(f"{tag} level {lvl}/{n - 1}", log),
    ):
        params = {**chain, "level": res.level}
        ckpt = save_checkpoint(store, levels.study, res.measurement.model, {"study": levels.study.study_name, **params})
        levels.add(params, res.measurement.record, ckpt, tag, target_sparsity=res.target)
