"""Multi-objective search of architecture and precision (maximize AUC, minimize BOPs).

Optuna does the heavy lifting: samplers, the RDB storage, heartbeats for trials whose process
died, retries of their parameters, artifacts for checkpoints. qapbo adds the objective (train
one network, optionally prune it to a target sparsity on the QAP schedule, measure it), the
study-file contract (a resumed study must have the same space and objectives), progress, and
early stopping of hopeless trials (:mod:`qapbo.study.early_stop`; they are stored PRUNED).

A trial stopped by Ctrl-C is stored FAIL by Optuna like any failure, and Optuna retries only the
trials of a process that died; so the objective marks it interrupted, and the next run queues its
parameters again with Optuna's own retry callback (:func:`requeue_interrupted`), as for a killed one.
"""

from __future__ import annotations

import copy
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from qapbo.cost.definitions import FLOPS_DEFINITION
from qapbo.cost.flops import training_flops
from qapbo.cost.measure import measure_costs
from qapbo.data.split import JetData, load_data
from qapbo.errors import QapboError, StudyFileError, TrainingError
from qapbo.nn.metrics import macro_auc
from qapbo.nn.models import build_model
from qapbo.progress import bar as progress_bar
from qapbo.progress import reporter
from qapbo.records import (
    ATTR_INTERRUPTED,
    MIN_AUC_CONSTRAINT,
    constraint_values,
    is_feasible,
    store_constraints,
    violations,
)
from qapbo.study.early_stop import EarlyStopper, nominal_bops
from qapbo.study.file import PROTOCOL_SCHEDULE, StudyFile
from qapbo.study.space import Candidate, SearchSettings, SearchSpace
from qapbo.study.storage import (
    artifact_dir,
    artifact_store,
    open_storage,
    open_study,
    redact,
    save_checkpoint,
    storage_url,
)
from qapbo.train.loop import rows_per_epoch
from qapbo.train.measure import train_and_measure
from qapbo.train.prune import initial_state_of, iterative_pruning

MAX_CONSECUTIVE_FAILURES = 10
#: Trial states the budget counts: architectures evaluated (a PRUNED trial was stopped early)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def make_sampler(name: str, seed: int, settings: SearchSettings,
                 space: SearchSpace | None = None) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``, seeded. Constraints reach it through the trials' stored constraints."""
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


class _Hopeless(Exception):
    """Raised from the epoch callback to end a trial that cannot reach the front."""


class Objective:
    """Train and measure one candidate; store its metrics and checkpoint on the trial."""

    def __init__(self, study: StudyFile, space: SearchSpace, data: JetData,
                 store: optuna.artifacts.FileSystemArtifactStore):
        self.study, self.space, self.data, self.store = study, space, data, store
        self.settings: SearchSettings = study.search
        self.xv = torch.from_numpy(data.x_val)
        s = self.settings
        self.stopper = EarlyStopper(s.costs, study.min_auc, s.early_stop_warmup,
                                    s.early_stop_startup_trials) if s.early_stop else None

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        cand = self.space.suggest(trial, self.data.n_features, self.data.n_classes)
        trial.set_user_attr("model_name", cand.spec.describe())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it, for debugging
        nominal = nominal_bops(cand.spec, cand.sparsity)
        trial.set_user_attr("nominal_bops", nominal)  # the cost known before training (qapbo.study.early_stop)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            rec, model = self._train(trial, cand, nominal)
        except _Hopeless as stop:
            curve = stop.args[1]
            # the contract of a stopped trial: what it cost, why it stopped; then Optuna stores it PRUNED
            for k, v in {"epochs": len(curve), "seconds": time.perf_counter() - t0,
                         "cpu_seconds": time.process_time() - c0, **self._flops(cand, len(curve)), "kind": "search",
                         "stop_reason": stop.args[0], "target_sparsity": cand.sparsity}.items():
                trial.set_user_attr(k, v)
            raise optuna.TrialPruned(stop.args[0]) from None
        except KeyboardInterrupt:  # Optuna stores the trial FAIL and re-raises; the next run queues it again
            trial.set_user_attr(ATTR_INTERRUPTED, True)
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C); its parameters run again on resume")
            raise
        except TrainingError as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        except Exception as exc:  # recorded, then re-raised: Optuna marks the trial FAIL
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            raise
        rec["target_sparsity"] = cand.sparsity
        rec |= self._flops(cand, rec["epochs"])
        rec["constraints"] = [c.violation(rec) for c in self.settings.constraints]
        # <= 0 is feasible; Optuna's samplers and best_trials, and optuna-dashboard, read them
        store_constraints(trial, violations(rec["auc"], self.study.min_auc,
                                            {str(c): v for c, v in zip(self.settings.constraints, rec["constraints"])}))
        rec["checkpoint"] = save_checkpoint(self.store, trial, model, {"study": trial.study.study_name,
                                                                          "trial": trial.number})
        rec["kind"] = "search"
        # the kept model's validation AUC: early stopping compares running trials with it (like with like)
        rec["val_auc"] = macro_auc(model.predict_proba(self.xv).numpy(), self.data.y_val)
        for k, v in rec.items():
            trial.set_user_attr(k, v)
        missing = [c for c in self.settings.costs if rec.get(c) is None]
        if missing:
            raise TrainingError(f"{', '.join(missing)} could not be measured: {rec.get('cost_note', 'see qapbo.cost.measure')}")
        return (rec["auc"], *(float(rec[c]) for c in self.settings.costs))

    def _flops(self, cand: Candidate, epochs: int) -> dict[str, Any]:
        """The trial's training FLOPs (:mod:`qapbo.cost.flops`): each epoch trains the training rows and
        evaluates the validation rows twice, for the loss and for the AUC early stopping reads."""
        spec = cand.spec.sized_for(self.data.n_features, self.data.n_classes)
        rows = rows_per_epoch(len(self.data.y_train), cand.train_config(self.study.train).batch_size)
        return {"flops": training_flops(spec, rows, 2 * len(self.data.y_val), epochs),
                "flops_definition": FLOPS_DEFINITION}

    def _train(self, trial: optuna.Trial, cand: Candidate, nominal: float) -> tuple[dict[str, Any], Any]:
        # Every trial derives its seeds from the study seed and its number: reproducible.
        seed = self.study.seed * 100_003 + trial.number
        config = replace(cand.train_config(self.study.train), seed=seed)
        history: list[float] = []
        last_write = [time.monotonic()]
        if self.stopper is not None:
            self.stopper.start_trial(trial.study)

        def report(_level: int, _log: Any, model: Any) -> None:
            # Optuna's trial.report is single-objective only: keep the curve as a user attribute,
            # one value per epoch, written at most every 2 s (each write is a storage transaction).
            history.append(macro_auc(model.predict_proba(self.xv).numpy(), self.data.y_val))
            if time.monotonic() - last_write[0] > 2.0:
                trial.set_user_attr("intermediate_val_auc", history)
                last_write[0] = time.monotonic()
            reason = self.stopper.check(history, nominal) if self.stopper is not None else None
            if reason is not None:
                raise _Hopeless(reason, history)

        try:
            return self._fit(cand, seed, config, report)
        finally:
            trial.set_user_attr("intermediate_val_auc", history)  # the whole curve, also for failed trials

    def _fit(self, cand: Candidate, seed: int, config: Any, report: Callable) -> tuple[dict[str, Any], Any]:
        if cand.sparsity <= 0.0:
            model = build_model(cand.spec, seed=seed)
            m = train_and_measure(self.data, cand.spec, config, model=model,
                                  callback=lambda log: report(0, log, model))
            return m.record, m.model
        model = build_model(cand.spec, seed=seed)
        initial = initial_state_of(model)
        levels = list(iterative_pruning(model, self.data, config, pruning_schedule(cand.sparsity), "ft", initial,
                                        on_epoch=lambda lvl, log: report(lvl, log, model), hw=False))
        rec = dict(levels[-1].measurement.record) | measure_costs(model)  # da4ml once, on the kept level
        # the trial's cost is every level's training, not the last level's alone
        rec["epochs"] = sum(lv.measurement.record["epochs"] for lv in levels)
        rec["seconds"] = sum(lv.measurement.record["seconds"] for lv in levels)
        rec["cpu_seconds"] = sum(lv.measurement.record["cpu_seconds"] for lv in levels)
        rec["pruning_levels"] = len(levels)
        return rec, model


@dataclass
class PreparedSearch:
    """Everything a search needs, validated, with its studies created in the storage."""

    studies: list[optuna.Study]
    spaces: list[SearchSpace]
    url: str
    data: JetData
    n_trials: int | None
    timeout: float | None


def prepare_search(study: StudyFile, storage: str | None = None, n_trials: int | None = None,
                   timeout: float | None = None, say: Callable[[str], None] | None = None) -> PreparedSearch:
    """Validate budget and data, open the storage, create or load (and check) every search study."""
    if study.search is None:
        raise StudyFileError(f"{study.path}: no [search] section; add one to run a search")
    s = study.search
    n_trials = n_trials if n_trials is not None else s.n_trials
    timeout = timeout if timeout is not None else s.timeout
    if n_trials is None and timeout is None:
        raise StudyFileError(f"{study.path}: [search] sets no budget; add n_trials (or timeout), "
                             "or pass --n-trials / --timeout")
    say = say or (lambda msg: print(msg, file=sys.stderr))
    url = storage_url(study, storage)
    data = load_data(study.data)  # bad data fails here, before the storage is touched
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=s.max_retry)
    rdb = open_storage(url, heartbeat_interval=s.heartbeat_interval, grace_period=s.grace_period,
                       heartbeat_stale_trial_callback=retry)
    studies, spaces = [], []
    for name, space in s.studies(study.name):
        ostudy = open_study(rdb, study, kind="search", sections=("data", "train", "search", "objectives"),
                            directions=s.directions, study_name=name, metric_names=("auc", *s.costs))
        requeue_interrupted(ostudy, retry)
        studies.append(ostudy)
        spaces.append(space)
    return PreparedSearch(studies, spaces, url, data, n_trials, timeout)


#: user attributes of an interrupted trial that its retry does not inherit (the retry records its own)
_NOT_INHERITED = (ATTR_INTERRUPTED, "fail_reason", "intermediate_val_auc")


def requeue_interrupted(ostudy: optuna.Study, retry: RetryHeartbeatStaleTrialCallback) -> list[int]:
    """Queue again (WAITING) the parameters of every interrupted trial that no trial retries yet; returns
    their numbers. ``retry`` is the callback the storage applies to killed trials, so both share
    Optuna's retry history (``failed_trial``, ``retry_history``) and the study's ``max_retry``.

    Run once per process before its trials; workers started together see the parent's retries.
    """
    trials = ostudy.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for t in trials:
        if t.state != TrialState.FAIL or not t.user_attrs.get(ATTR_INTERRUPTED) or t.number in retried:
            continue
        clean = copy.copy(t)
        clean.user_attrs = {k: v for k, v in t.user_attrs.items() if k not in _NOT_INHERITED}
        before = len(ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        retry(ostudy, clean)
        if len(ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,))) > before:  # max_retry allowing
            queued.append(t.number)
    return queued


def _queued_again(ostudy: optuna.Study) -> list[int]:
    """Numbers of the interrupted trials whose parameters wait to run again."""
    trials = ostudy.get_trials(deepcopy=False)
    interrupted = {t.number for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(ATTR_INTERRUPTED)}
    return sorted(h[-1] for t in trials if t.state == TrialState.WAITING
                  and (h := t.system_attrs.get("retry_history")) and h[-1] in interrupted)


def run_search(
    study: StudyFile,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
    worker: int = 0,
) -> list[optuna.Study]:
    """Run (or resume) every search study of ``study`` up to its budget of trials (COMPLETE or PRUNED).

    Several processes (or machines) may run this on the same storage at once: they share the
    budget, and trials of a process that died are reaped and retried.
    """
    mode, say = reporter(progress, log)
    run = prepare_search(study, storage, n_trials, timeout, say)
    s = study.search
    store = artifact_store(artifact_dir(study, run.url))
    for ostudy, space in zip(run.studies, run.spaces):
        complete, pruned = _count(ostudy, TrialState.COMPLETE), _count(ostudy, TrialState.PRUNED)
        done = complete + pruned
        again = _queued_again(ostudy)
        say(f"search {ostudy.study_name}: {complete} COMPLETE trial(s) stored in {redact(run.url)}"
            f"{f' and {pruned} stopped early (PRUNED)' if pruned else ''}"
            f"{f'; {len(again)} interrupted trial(s) ({_numbers(again)}) queued to run again with the same parameters' if again else ''}; budget "
            f"{run.n_trials if run.n_trials is not None else 'none'} trials"
            f"{f', {run.timeout:g} s' if run.timeout else ''}; sampler {s.sampler}"
            f"; data: {run.data.label} ({run.data.sizes})")
        if run.n_trials is not None and done >= run.n_trials:
            continue
        # Optuna does not store the sampler: rebuild it with the study's seed, advanced by the
        # number of trials already asked (a resumed study does not replay earlier proposals) and
        # by the worker index (workers starting together do not propose the same points).
        seed = study.seed + len(ostudy.trials) + 7919 * worker
        ostudy.sampler = make_sampler(s.sampler, seed, s, space)
        _optimize(ostudy, Objective(study, space, run.data, store), run.n_trials, run.timeout, mode, say)
    return run.studies


def _optimize(ostudy: optuna.Study, objective: Objective, n_trials: int | None, timeout: float | None,
              mode: str, say: Callable[[str], None]) -> None:
    """Run trials one ``optimize`` call at a time until the study holds ``n_trials`` finished ones.

    The budget counts architectures evaluated: COMPLETE and PRUNED (stopped early) trials; FAIL
    ones are retried and not counted. One trial per call lets every worker check the shared
    budget right before asking for a trial (COMPLETE + PRUNED + RUNNING anywhere), so workers
    sharing a study do not overshoot it, and lets a worker wait for trials RUNNING elsewhere: a live worker finishes them, a dead one's
    are reaped once their heartbeat is older than the grace period (then FAIL, parameters
    retried). Optuna's own ``optimize`` keeps the heartbeat thread and failure handling.
    """
    bar = progress_bar(mode, total=n_trials, initial=_count(ostudy, *COUNTED), desc=ostudy.study_name,
                       unit="trial")
    say_ = (lambda m: bar.write(m, file=sys.stderr)) if mode == "bars" else say
    failures = [0]
    deadline = time.monotonic() + timeout if timeout else None
    grace = objective.settings.grace_period

    def report(st: optuna.Study, ft: optuna.trial.FrozenTrial) -> None:
        if ft.state == TrialState.COMPLETE:
            failures[0] = 0
            bar.update(1)
            front = {t.number for t in st.best_trials}  # feasible trials only: constraints are stored
            params = " ".join(f"{k}={_fmt(v)}" for k, v in ft.params.items())
            where = "on the front" if ft.number in front else "dominated" if is_feasible(ft) else \
                f"infeasible: {_violated(ft)}"
            costs = "  ".join(f"{c} {v:,.0f}" for c, v in zip(objective.settings.costs, ft.values[1:]))
            say_(f"trial {ft.number:3d}  {params}  |  macro AUC (test) {ft.values[0]:.4f}  {costs}  |  "
                 f"{where} ({len(front)} on front)")
        elif ft.state == TrialState.PRUNED:  # stopped early: counted, and not a failure (it trained)
            failures[0] = 0
            bar.update(1)
            # the reason starts with its epoch: "trial 7  PRUNED at epoch 9: best validation AUC ..."
            say_(f"trial {ft.number:3d}  PRUNED at {ft.user_attrs.get('stop_reason', 'an unrecorded epoch')}")
        else:
            failures[0] += 1
            say_(f"trial {ft.number:3d}  {ft.state.name}: {ft.user_attrs.get('fail_reason', 'no reason recorded')}")

    waiting_said = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if failures[0] >= MAX_CONSECUTIVE_FAILURES:
                    say_(f"stopping: {failures[0]} trials failed in a row; see their fail_reason")
                    break
                trials = ostudy.get_trials(deepcopy=False, states=(*COUNTED, TrialState.RUNNING))
                running_trials = [t for t in trials if t.state == TrialState.RUNNING]
                if running_trials and _reap(ostudy, running_trials, say_, grace):
                    continue  # some were dead: count again
                running = len(running_trials)
                complete = len(trials) - running  # COMPLETE or PRUNED
                if n_trials is not None and complete >= n_trials:
                    break
                if n_trials is not None and complete + running >= n_trials:
                    if not waiting_said:
                        say_(f"{running} trial(s) RUNNING elsewhere fill the budget: waiting for them to finish, "
                             "or to be reaped if their process died")
                        waiting_said = True
                    time.sleep(1.0)
                    continue
                waiting_said = False
                ostudy.optimize(objective, n_trials=1, catch=(TrainingError,), callbacks=[report],
                                gc_after_trial=False)
    finally:
        bar.close()


def _reap(ostudy: optuna.Study, running: list[optuna.trial.FrozenTrial], say: Callable[[str], None],
          grace_period: float) -> int:
    """Mark trials whose process died FAIL (Optuna queues their parameters again) and say so.

    Optuna reaps a trial once its heartbeat is older than the grace period, but a process killed
    between creating a trial and its first heartbeat leaves a RUNNING trial with no heartbeat,
    which Optuna never reaps. Such a trial has no parameters either (the heartbeat starts before
    the objective suggests any), so a parameterless trial older than the grace period is dead.
    """
    before = _count(ostudy, TrialState.FAIL)
    optuna.storages.fail_stale_trials(ostudy)
    now = datetime.now()
    for t in running:
        if not t.params and t.datetime_start is not None and \
                (now - t.datetime_start).total_seconds() > grace_period:
            try:
                ostudy.tell(t.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):  # finished meanwhile
                pass
    reaped = _count(ostudy, TrialState.FAIL) - before
    if reaped:
        say(f"marked {reaped} dead trial(s) FAIL (no heartbeat within the grace period); "
            "their parameters are queued to run again")
    return reaped


def _count(ostudy: optuna.Study, *states: TrialState) -> int:
    return len(ostudy.get_trials(deepcopy=False, states=states))


def _violated(ft: optuna.trial.FrozenTrial) -> str:
    """Which constraints a trial breaks, e.g. ``AUC below min_auc``."""
    names = [("AUC below min_auc" if k == MIN_AUC_CONSTRAINT else k) for k, v in constraint_values(ft).items()
             if v > 0]
    return ", ".join(names)


def _numbers(ns: list[int]) -> str:
    return ("trial " if len(ns) == 1 else "trials ") + ", ".join(map(str, ns))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


