"""Multi-objective search of architecture and precision (maximize AUC, minimize BOPs).

Optuna does the heavy lifting: samplers, the RDB storage, heartbeats for trials whose process
died, retries of their parameters, artifacts for checkpoints. qapbo adds the objective (train
one network, optionally prune it to a target sparsity on the QAP schedule, measure it), the
study-file contract (a resumed study must have the same space and objectives) and progress.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import replace
from typing import Any, Callable

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from .data import JetData, load_data
from .errors import QapboError, TrainingError
from .experiment import train_and_measure
from .metrics import macro_auc
from .models import build_model
from .prune import initial_state_of, iterative_pruning
from .space import Candidate, SearchSettings, SearchSpace
from .storage import artifact_dir, artifact_store, open_storage, open_study, redact, save_checkpoint, storage_url
from .studyfile import PROTOCOL_SCHEDULE, StudyFile, StudyFileError

DIRECTIONS = ("maximize", "minimize")  # AUC, BOPs
MAX_CONSECUTIVE_FAILURES = 10


def make_sampler(name: str, seed: int, settings: SearchSettings,
                 space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``, seeded. Constraints reach it through ``trial.set_constraint``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "nsga2":
            pop = min(50, max(8, (settings.n_trials or 100) // 5))  # the default 50 is random search below 50 trials
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=pop)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "grid":
            if space is None:
                raise QapboError("sampler 'grid' needs the search space")
            return optuna.samplers.GridSampler(space.grid(), seed=seed)
        if name == "botorch":
            try:
                from optuna_integration import BoTorchSampler
            except ImportError:
                raise QapboError("sampler 'botorch' needs the optional extra: pip install 'qapbo[botorch]' "
                                 "(optuna-integration and botorch); or use sampler = \"gp\"") from None
            return BoTorchSampler(seed=seed)
    raise QapboError(f"unknown sampler {name!r}")


def pruning_schedule(target: float) -> tuple[float, ...]:
    """The QAP schedule up to ``target``: PROTOCOL levels below it, then the target itself."""
    if target <= 0.0:
        return (0.0,)
    return tuple(v for v in PROTOCOL_SCHEDULE if v < target) + (target,)


class Objective:
    """Train and measure one candidate; store its metrics and checkpoint on the trial."""

    def __init__(self, study: StudyFile, space: SearchSpace, data: JetData,
                 store: optuna.artifacts.FileSystemArtifactStore):
        self.study, self.space, self.data, self.store = study, space, data, store
        self.settings: SearchSettings = study.search
        self.xv = torch.from_numpy(data.x_val)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        cand = self.space.suggest(trial, self.data.n_features, self.data.n_classes)
        trial.set_user_attr("model_name", cand.spec.describe())
        try:
            rec, model = self._train(trial, cand)
        except TrainingError as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        except Exception as exc:  # recorded, then re-raised: Optuna marks the trial FAIL
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            raise
        rec["target_sparsity"] = cand.sparsity
        rec["constraints"] = [c.violation(rec) for c in self.settings.constraints]
        for c, v in zip(self.settings.constraints, rec["constraints"]):
            trial.set_constraint(str(c), v)  # <= 0 is feasible; samplers and best_trials read it
        rec["checkpoint"] = save_checkpoint(self.store, trial, model, {"study": trial.study.study_name,
                                                                          "trial": trial.number})
        rec["kind"] = "search"
        for k, v in rec.items():
            trial.set_user_attr(k, v)
        return rec["auc"], rec["bops"]

    def _train(self, trial: optuna.Trial, cand: Candidate) -> tuple[dict[str, Any], Any]:
        # Every trial derives its seeds from the study seed and its number: reproducible.
        seed = self.study.seed * 100_003 + trial.number
        config = replace(cand.train_config(self.study.train), seed=seed)
        history: list[float] = []

        def report(_level: int, _log: Any, model: Any) -> None:
            # Optuna's trial.report is single-objective only: keep the curve as a user attribute.
            history.append(macro_auc(model.predict_proba(self.xv).numpy(), self.data.y_val))
            trial.set_user_attr("intermediate_val_auc", history)

        if cand.sparsity <= 0.0:
            model = build_model(cand.spec, seed=seed)
            m = train_and_measure(self.data, cand.spec, config, model=model,
                                  callback=lambda log: report(0, log, model))
            return m.record, m.model
        model = build_model(cand.spec, seed=seed)
        initial = initial_state_of(model)
        last = None
        for last in iterative_pruning(model, self.data, config, pruning_schedule(cand.sparsity), "ft", initial,
                                      on_epoch=lambda lvl, log: report(lvl, log, model)):
            pass
        rec = last.measurement.record
        return rec, model


def run_search(
    study: StudyFile,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[optuna.Study]:
    """Run (or resume) every search study of ``study`` up to its budget of COMPLETE trials."""
    if study.search is None:
        raise StudyFileError(f"{study.path}: no [search] section; add one to run a search")
    s = study.search
    n_trials = n_trials if n_trials is not None else s.n_trials
    timeout = timeout if timeout is not None else s.timeout
    if n_trials is None and timeout is None:
        raise StudyFileError(f"{study.path}: [search] sets no budget; add n_trials (or timeout), "
                             "or pass --n-trials / --timeout")
    say = log or (lambda msg: print(msg, file=sys.stderr))
    url = storage_url(study, storage)
    data = load_data(study.data)  # bad data fails here, before the storage is touched
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=s.max_retry)
    rdb = open_storage(url, heartbeat_interval=s.heartbeat_interval, grace_period=s.grace_period,
                       heartbeat_stale_trial_callback=retry)
    store = artifact_store(artifact_dir(study, url))
    out = []
    for name, space in s.studies(study.name):
        ostudy = open_study(rdb, study, kind="search", sections=("data", "train", "search", "objectives"),
                            directions=DIRECTIONS, study_name=name)
        out.append(ostudy)
        _reap_dead_trials(ostudy, s, say)
        done = _count(ostudy, TrialState.COMPLETE)
        say(f"search {name}: {done} COMPLETE trial(s) stored in {redact(url)}; budget "
            f"{n_trials if n_trials is not None else 'none'} trials"
            f"{f', {timeout:g} s' if timeout else ''}; sampler {s.sampler}"
            f"{'; data: ' + data.label if data.synthetic else ''}")
        if n_trials is not None and done >= n_trials:
            continue
        # Optuna does not store the sampler: rebuild it with the study's seed, advanced by the
        # number of trials already asked so a resumed study does not replay earlier proposals.
        ostudy.sampler = make_sampler(s.sampler, study.seed + len(ostudy.trials), s, space)
        _optimize(ostudy, Objective(study, space, data, store), n_trials, timeout, progress, say)
    return out


def _optimize(ostudy: optuna.Study, objective: Objective, n_trials: int | None, timeout: float | None,
              progress: bool, say: Callable[[str], None]) -> None:
    from tqdm import tqdm

    done = _count(ostudy, TrialState.COMPLETE)
    bar = tqdm(total=n_trials, initial=done, desc=ostudy.study_name, unit="trial", file=sys.stderr,
               disable=not progress)
    failures = [0]

    def stop_at_budget(st: optuna.Study, ft: optuna.trial.FrozenTrial) -> None:
        if ft.state == TrialState.COMPLETE:
            failures[0] = 0
            bar.update(1)
            front = {t.number for t in st.best_trials}
            params = " ".join(f"{k}={_fmt(v)}" for k, v in ft.params.items())
            msg = (f"trial {ft.number:3d}  {params}  |  AUC {ft.values[0]:.4f}  BOPs {ft.values[1]:,.0f}  |  "
                   f"{'on the front' if ft.number in front else 'dominated'} ({len(front)} on front)")
        else:
            failures[0] += 1
            msg = f"trial {ft.number:3d}  {ft.state.name}: {ft.user_attrs.get('fail_reason', 'no reason recorded')}"
        (bar.write(msg, file=sys.stderr) if progress else say(msg))
        if n_trials is not None and _count(st, TrialState.COMPLETE) >= n_trials:
            st.stop()
        if failures[0] >= MAX_CONSECUTIVE_FAILURES:
            say(f"stopping: {failures[0]} trials failed in a row; see their fail_reason")
            st.stop()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ostudy.optimize(objective, n_trials=None if timeout else _remaining(ostudy, n_trials),
                            timeout=timeout, catch=(TrainingError,), callbacks=[stop_at_budget],
                            gc_after_trial=False)
    finally:
        bar.close()


def _remaining(ostudy: optuna.Study, n_trials: int | None) -> int | None:
    # An upper bound for optimize(); stop_at_budget ends it once n_trials are COMPLETE.
    if n_trials is None:
        return None
    return max(0, n_trials - _count(ostudy, TrialState.COMPLETE)) + MAX_CONSECUTIVE_FAILURES * n_trials


def _reap_dead_trials(ostudy: optuna.Study, s: SearchSettings, say: Callable[[str], None]) -> None:
    """Mark trials whose process died (no heartbeat for the grace period) FAIL; Optuna retries them.

    Optuna only reaps a trial once its heartbeat is older than the grace period, and a trial
    still RUNNING may belong to a live worker. So wait, at most one grace period, for each
    RUNNING trial to either go stale (reaped here) or keep beating (left alone).
    """
    running = _count(ostudy, TrialState.RUNNING)
    if not running:
        return
    say(f"{running} trial(s) RUNNING in {ostudy.study_name}: waiting up to {s.grace_period + s.heartbeat_interval} s "
        "to tell a dead process (reaped, its parameters retried) from a live worker")
    deadline = time.monotonic() + s.grace_period + s.heartbeat_interval
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while True:
            optuna.storages.fail_stale_trials(ostudy)
            if not _count(ostudy, TrialState.RUNNING) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    reaped = running - _count(ostudy, TrialState.RUNNING)
    if reaped:
        say(f"marked {reaped} dead trial(s) FAIL; their parameters are queued to run again")


def _count(ostudy: optuna.Study, state: TrialState) -> int:
    return len(ostudy.get_trials(deepcopy=False, states=(state,)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


