"""Several worker processes sharing one study on one machine (search: also many machines via an RDB).

Each worker is a fresh process (``spawn``: no forked torch or SQLite state) that parses the study
file itself and runs :func:`qapbo.study.search.run_search` or :func:`qapbo.study.qap.run_qap` against the
shared storage with one torch thread, so N workers use N cores without oversubscribing them. The
studies are created once, here, before any worker starts: two processes creating the same fresh
SQLite study at the same moment can fail on a UNIQUE constraint.

Search workers share the trial budget through the storage. QAP workers take whole chains (one
precision and mode: its levels must run in order) from a queue, longest first, so no chain is
trained twice and the last one to finish is a short one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from typing import Callable

import optuna
from optuna.trial import TrialState

from qapbo.errors import QapboError
from qapbo.progress import bar as progress_bar
from qapbo.progress import resolve
from qapbo.study.file import StudyFile, load_study_file
from qapbo.study.search import prepare_search
from qapbo.study.storage import redact


def _as_worker(path: str | tuple, synthetic: bool, rows: int | None, worker: int,
               run: Callable[[StudyFile, Callable[[str], None]], object]) -> None:
    """What every worker process does around its job: quiet libraries, re-read the file, exit 130 or 2."""
    import warnings

    warnings.filterwarnings("ignore", module="brevitas")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    path, replicates, replicate = path if isinstance(path, tuple) else (path, None, 0)
    study = load_study_file(path, synthetic=synthetic, rows=rows, replicates=replicates).replica(replicate)
    try:
        run(study, lambda msg: print(f"[worker {worker}] {msg}", file=sys.stderr, flush=True))
    except KeyboardInterrupt:  # search: Optuna has marked the running trial FAIL; QAP: levels are stored whole
        sys.exit(130)
    except QapboError as exc:
        print(f"[worker {worker}] error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _where(study: StudyFile) -> tuple[str, int, int]:
    """What a worker needs to load the same study file (and replicate) as its parent."""
    return study.path, study.replicates, study.replicate


def _search_worker(path: str | tuple, synthetic: bool, rows: int | None, storage: str, n_trials: int | None,
                   timeout: float | None, worker: int, lines: str = "lines") -> None:
    from qapbo.study.search import run_search

    _as_worker(path, synthetic, rows, worker, lambda study, log: run_search(
        study, storage=storage, n_trials=n_trials, timeout=timeout, progress=lines, worker=worker, log=log))


def run_workers(
    study: StudyFile,
    workers: int,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    synthetic: bool = False,
    rows: int | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
) -> list[optuna.Study]:
    """Run ``study``'s search with ``workers`` processes; returns its studies when all are done."""
    _check(study, workers, log)
    say = log or (lambda msg: print(msg, file=sys.stderr))
    prepared = prepare_search(study, storage, n_trials, timeout, say)
    studies, url, budget = prepared.studies, prepared.url, prepared.n_trials
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_search_worker, name=f"qapbo-worker-{i}",
                         args=(_where(study), synthetic, rows, url, n_trials, timeout, i, _child(progress)))
             for i in range(workers)]
    say(f"starting {workers} workers on {redact(url)}")
    total = None if budget is None else budget * len(studies)
    _run(procs, studies, total, "trials (all workers)", progress)
    return [optuna.load_study(study_name=s.study_name, storage=url) for s in studies]


def _chain_worker(path: str | tuple, synthetic: bool, rows: int | None, storage: str, queue, worker: int,
                  lines: str, kind: str) -> None:
    from qapbo.study.qap import run_qap
    from qapbo.study.refine import run_refine

    run = {"qap": run_qap, "refine": run_refine}[kind]
    _as_worker(path, synthetic, rows, worker, lambda study, log: run(
        study, storage=storage, progress=lines, chains=iter(queue.get, None), log=log))


def run_chain_workers(
    study: StudyFile,
    workers: int,
    kind: str = "qap",
    storage: str | None = None,
    synthetic: bool = False,
    rows: int | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
) -> optuna.Study:
    """Run (or resume) ``study``'s QAP chains or refine members (``kind``) with ``workers`` processes,
    each taking whole chains from a shared queue; returns the study when done.

    Every level trains from its own seed, so the stored trials equal those of a one-process run.
    """
    from qapbo.study.qap import prepare_qap
    from qapbo.study.refine import prepare_refine

    _check(study, workers, log)
    say = log or (lambda msg: print(msg, file=sys.stderr))
    prep = {"qap": prepare_qap, "refine": prepare_refine}[kind](study, storage)
    todo = prep.todo()
    say(f"{kind} {study.name}: {len(prep.done)}/{prep.total} levels already stored in {redact(prep.url)}; "
        f"{len(todo)} chain(s) to run on {workers} workers")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for i in [*todo, *[None] * workers]:
        queue.put(i)
    queue.cancel_join_thread()  # chains left after a Ctrl-C must not hold up our exit
    procs = [ctx.Process(target=_chain_worker, name=f"qapbo-{kind}-worker-{i}",
                         args=(_where(study), synthetic, rows, prep.url, queue, i, _child(progress), kind))
             for i in range(workers)]
    _run(procs, [prep.study], prep.total, "levels (all workers)", progress)
    return optuna.load_study(study_name=prep.study.study_name, storage=prep.url)


def _check(study: StudyFile, workers: int, log: Callable[[str], None] | None) -> None:
    say = log or (lambda msg: print(msg, file=sys.stderr))
    if workers < 1:
        raise QapboError(f"--workers {workers}: use 1 or more")
    if study.path == "<memory>":
        raise QapboError("workers re-read the study file: pass a study loaded from a file")
    if study.train.threads * workers > (os.cpu_count() or 1):
        say(f"note: {workers} workers x {study.train.threads} torch threads exceed the "
            f"{os.cpu_count()} cores; expect them to slow each other down")


def _child(progress: bool | str) -> str:
    """Workers write lines (one per trial or level) under the parent's bar; ``none`` silences them too."""
    return "none" if resolve(progress) == "none" else "lines"


def _run(procs: list, studies: list[optuna.Study], total: int | None, desc: str, progress: bool | str) -> None:
    """Start ``procs``, show the finished trials of ``studies`` until they end; raise if any failed."""
    for p in procs:
        p.start()
    try:
        _watch(procs, studies, total, desc, progress)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    failed = [p for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise QapboError(f"{len(failed)} of {len(procs)} workers failed (exit codes "
                         f"{', '.join(str(p.exitcode) for p in failed)}); see their messages above")


def _stop(procs: list) -> None:
    """After a Ctrl-C: let every worker stop cleanly (search workers mark their trial FAIL)."""
    deadline = time.time() + 2  # a Ctrl-C in the terminal reached them too: do not interrupt their cleanup
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.time()))
    for p in procs:  # only the parent was signalled (e.g. `kill -INT` by a scheduler): pass it on
        if p.is_alive():
            os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
            p.join()


def _watch(procs: list, studies: list[optuna.Study], total: int | None, desc: str, progress: bool | str) -> None:
    bar = progress_bar(resolve(progress), total=total, desc=desc, unit="trial")
    try:
        while any(p.is_alive() for p in procs):
            # a search budget counts PRUNED (stopped early) trials too; QAP levels are never PRUNED
            done = sum(len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
                       for s in studies)
            bar.n = done
            bar.refresh()
            time.sleep(1.0)
        for p in procs:
            p.join()
    finally:
        bar.close()
