"""Several worker processes sharing one search study (one machine; many machines via a shared RDB).

Each worker is a fresh process (``spawn``: no forked torch or SQLite state) that parses the study
file itself and runs :func:`qapbo.search.run_search` against the shared storage with one torch
thread, so N workers use N cores without oversubscribing them. The studies are created once, here,
before any worker starts: two processes creating the same fresh SQLite study at the same moment
can fail on a UNIQUE constraint.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from typing import Callable

import optuna
from optuna.trial import TrialState

from .errors import QapboError
from .search import prepare_search
from .storage import redact
from .studyfile import StudyFile, load_study_file


def _worker_main(path: str, synthetic: bool, rows: int | None, storage: str, n_trials: int | None,
                 timeout: float | None, worker: int) -> None:
    import warnings

    from .search import run_search

    warnings.filterwarnings("ignore", module="brevitas")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = load_study_file(path, synthetic=synthetic, rows=rows)
    try:
        run_search(study, storage=storage, n_trials=n_trials, timeout=timeout, progress=False, worker=worker,
                   log=lambda msg: print(f"[worker {worker}] {msg}", file=sys.stderr, flush=True))
    except KeyboardInterrupt:  # Optuna has marked the running trial FAIL; leave quietly
        sys.exit(130)
    except QapboError as exc:
        print(f"[worker {worker}] error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def run_workers(
    study: StudyFile,
    workers: int,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    synthetic: bool = False,
    rows: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[optuna.Study]:
    """Run ``study``'s search with ``workers`` processes; returns its studies when all are done."""
    if workers < 1:
        raise QapboError(f"--workers {workers}: use 1 or more")
    if study.path == "<memory>":
        raise QapboError("workers re-read the study file: pass a study loaded from a file")
    say = log or (lambda msg: print(msg, file=sys.stderr))
    prepared = prepare_search(study, storage, n_trials, timeout, say)
    studies, url, budget = prepared.studies, prepared.url, prepared.n_trials
    if study.train.threads * workers > (os.cpu_count() or 1):
        say(f"note: {workers} workers x {study.train.threads} torch threads exceed the "
            f"{os.cpu_count()} cores; expect them to slow each other down")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, name=f"qapbo-worker-{i}",
                         args=(study.path, synthetic, rows, url, n_trials, timeout, i))
             for i in range(workers)]
    say(f"starting {workers} workers on {redact(url)}")
    for p in procs:
        p.start()
    try:
        _watch(procs, studies, budget, progress)
    except KeyboardInterrupt:
        for p in procs:  # they got the Ctrl-C too; give them time to mark their trials FAIL
            p.join(timeout=30)
        raise
    failed = [p for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise QapboError(f"{len(failed)} of {workers} workers failed (exit codes "
                         f"{', '.join(str(p.exitcode) for p in failed)}); see their messages above")
    return [optuna.load_study(study_name=s.study_name, storage=url) for s in studies]


def _watch(procs: list, studies: list[optuna.Study], budget: int | None, progress: bool) -> None:
    from tqdm import tqdm

    total = None if budget is None else budget * len(studies)
    bar = tqdm(total=total, desc="trials (all workers)", unit="trial", file=sys.stderr, disable=not progress)
    try:
        while any(p.is_alive() for p in procs):
            done = sum(len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) for s in studies)
            bar.n = done
            bar.refresh()
            time.sleep(1.0)
        for p in procs:
            p.join()
    finally:
        bar.close()
