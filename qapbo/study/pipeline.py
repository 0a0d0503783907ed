"""The main job as a library call: a study file's [search], [refine], [qap], [hgq] and [learned] sections, then the comparison.

``qapbo run`` and the notebooks call :func:`run_pipeline`; ``qapbo search``/``refine``/``qap`` call
:func:`run_section`, the one place that decides between this process and worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna

from qapbo.compare.report import Comparison, compare_stored
from qapbo.errors import QapboError
from qapbo.study.file import StudyFile
from qapbo.study.storage import open_storage, storage_url

#: The sections a study file can run, in the order the pipeline runs them (refine needs the search).
SECTIONS = ("search", "refine", "qap", "hgq", "learned")


def run_section(
    section: str,
    study: StudyFile,
    storage: str | None = None,
    workers: int = 1,
    progress: bool | str = "auto",
    n_trials: int | None = None,
    timeout: float | None = None,
    synthetic: bool = False,
    rows: int | None = None,
    worker: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[optuna.Study]:
    """Run (or resume) one section of ``study`` in this process or with ``workers`` processes.

    Workers re-read the study file, so they need ``synthetic`` and ``rows`` as it was loaded with.
    ``n_trials``/``timeout`` override a search's budget; ``worker`` tells one search process from
    another on a shared storage (so that they never replay each other's proposals).
    """
    if section not in SECTIONS:
        raise QapboError(f"unknown section {section!r}: use one of {', '.join(SECTIONS)}")
    if timeout is not None and timeout <= 0:
        raise QapboError(f"--timeout {timeout:g}: use a positive number of seconds")
    if section == "search":
        if workers > 1:
            from qapbo.study.workers import run_workers

            return run_workers(study, workers, storage=storage, n_trials=n_trials, timeout=timeout,
                               synthetic=synthetic, rows=rows, progress=progress, log=log)
        from qapbo.study.search import run_search

        return run_search(study, storage=storage, n_trials=n_trials, timeout=timeout, progress=progress,
                          worker=worker, log=log)
    if section == "hgq":  # one process: JAX's XLA already spreads a training over the cores
        from qapbo.study.hgq import run_hgq

        return [run_hgq(study, storage=storage, progress=progress, log=log)]
    if section == "learned":  # one run per seed, trained in this process
        from qapbo.study.learned import run_learned

        return [run_learned(study, storage=storage, progress=progress, log=log)]
    if workers > 1:
        from qapbo.study.workers import run_chain_workers

        return [run_chain_workers(study, workers, section, storage=storage, synthetic=synthetic, rows=rows,
                                  progress=progress, log=log)]
    if section == "refine":
        from qapbo.study.refine import run_refine

        return [run_refine(study, storage=storage, progress=progress, log=log)]
    from qapbo.study.qap import run_qap

    return [run_qap(study, storage=storage, progress=progress, log=log)]


@dataclass
class PipelineResult:
    """What a whole run left behind: its studies, their comparison and the figures drawn from it."""

    url: str
    study_names: list[str]
    comparison: Comparison
    figures: list[Path]
    out: Path


def figure_dir(study: StudyFile) -> Path:
    """Where a study file's comparison figures go unless told otherwise: ``runs/NAME-compare``."""
    return Path("runs") / f"{study.name}-compare"


def run_pipeline(
    study: StudyFile,
    storage: str | None = None,
    workers: int = 1,
    progress: bool | str = "auto",
    synthetic: bool = False,
    rows: int | None = None,
    out: str | Path | None = None,
    cost: str = "bops",
    log: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run (or resume) every section of ``study`` in order (for each of its replicates), then compare
    its studies and draw the figures into ``out`` (default :func:`figure_dir`). A finished run only
    compares and redraws."""
    from qapbo.compare.figures import plot_all

    if study.hgq is not None:  # say so before hours of search and QAP, not after them
        from qapbo.errors import HgqError
        from qapbo.train.hgq import require_hgq

        try:
            require_hgq()
        except HgqError as exc:
            raise HgqError(f"{exc}; or remove the [hgq] section of {study.path} to run without the HGQ2 "
                           "contender") from None
    from qapbo.progress import reporter

    say = reporter(progress, log)[1]
    names: list[str] = []
    for replica in study.replicas():  # replicates one after another, each with every worker
        if study.replicates > 1:
            say(f"replicate {replica.replicate + 1}/{study.replicates}: {replica.name} (training and sampler seed "
                f"{replica.seed}, the data split of seed {replica.data.seed})")
        for section in SECTIONS:
            if getattr(replica, section) is not None:
                names += [s.study_name for s in run_section(section, replica, storage=storage, workers=workers,
                                                            progress=progress, synthetic=synthetic, rows=rows,
                                                            log=log)]
    url = storage_url(study, storage)
    cmp = compare_stored(open_storage(url, read_only=True), names, cost=cost)
    folder = Path(out) if out is not None else figure_dir(study)
    return PipelineResult(url, names, cmp, plot_all(cmp, folder), folder)
