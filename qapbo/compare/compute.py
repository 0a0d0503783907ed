"""Studies compared at equal compute: the hypervolume each had reached when it had spent what the
cheaper one spent in total (training seconds, and apart, epochs), so a headline number never
favours the study that simply trained longer."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from qapbo.compare.fronts import hypervolume
from qapbo.compare.results import StudyResult, _spent
from qapbo.records import is_feasible


class HistoryStep(NamedTuple):
    """A study after one more finished trial (in trial-number order: QAP level by level)."""

    number: int  # trial number; -1 for the start (a refine study starts where its searches ended)
    epochs: int  # cumulative, a refine study's sources included
    seconds: float  # cumulative training seconds, likewise
    hypervolume: float  # of the front of the trials finished so far
    point: bool  # False: the trial added time but no point (stopped early, or without the compared cost)
    flops: float | None = None  # cumulative training FLOPs (qapbo.cost.flops), None when not all recorded


def hypervolume_history(r: StudyResult, ref: tuple[float, float]) -> list[HistoryStep]:
    """The hypervolume ``r`` had reached against the compute it had spent, one step per finished
    trial, after a first step at its starting compute (0, or a refine study's sources' total)."""
    out, pts, hv = [], [], 0.0
    for s in _spent(r):
        if s.point and is_feasible(s.trial):
            pts.append((s.trial.values[0], s.trial.values[1]))
            hv = hypervolume(pts, ref)
        out.append(HistoryStep(-1 if s.trial is None else s.trial.number, s.epochs, s.seconds, hv, s.point, s.flops))
    return out


def hypervolume_at(history: Sequence[HistoryStep], seconds: float | None = None,
                   epochs: int | None = None, flops: float | None = None) -> float:
    """The hypervolume of the trials finished within ``seconds`` (and/or ``epochs``, ``flops``) of compute."""
    hv = 0.0
    for h in history:  # cumulative compute only grows
        if (seconds is not None and h.seconds > seconds) or (epochs is not None and h.epochs > epochs) \
                or (flops is not None and (h.flops is None or h.flops > flops)):
            break
        hv = h.hypervolume
    return hv


def points_within(r: StudyResult, cpu_seconds: float | None = None, seconds: float | None = None,
                  epochs: int | None = None) -> list[tuple[float, float]]:
    """The feasible (AUC, cost) points ``r`` had stored when it had spent at most ``cpu_seconds`` of
    training CPU time (and/or wall ``seconds``, ``epochs``), in the order its trials finished: the
    front a study had reached at a budget (a study without CPU-seconds recorded has none within one)."""
    out = []
    for s in _spent(r):
        if (cpu_seconds is not None and (s.cpu_seconds is None or s.cpu_seconds > cpu_seconds)) \
                or (seconds is not None and s.seconds > seconds) or (epochs is not None and s.epochs > epochs):
            break
        if s.point and is_feasible(s.trial):
            out.append((s.trial.values[0], s.trial.values[1]))
    return out


def equal_compute(results: Sequence[StudyResult], ref: tuple[float, float]) -> list[dict[str, Any]]:
    """For every pair of studies, the hypervolume of each at the training seconds (and, apart, the
    epochs) the cheaper one spent in total: headline numbers that do not favour the study that
    simply trained longer. A refined study is not paired with a search it refines (it contains it), nor a
    replicate with another replicate (:meth:`StudyResult.pairs_with`)."""
    hist = {id(r): hypervolume_history(r, ref) for r in results}
    out = []
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            if a.name in b.refine_of or b.name in a.refine_of:
                continue  # a refined study contains its search: the pair would compare the pipeline with its own first half
            if not a.pairs_with(b):
                continue
            ha, hb = hist[id(a)], hist[id(b)]
            sec = min(ha[-1].seconds, hb[-1].seconds)
            ep = min(ha[-1].epochs, hb[-1].epochs)
            # FLOPs: the machine-independent unit, when both studies recorded them for every trial
            fl = None if ha[-1].flops is None or hb[-1].flops is None else min(ha[-1].flops, hb[-1].flops)
            out.append({"a": a.name, "b": b.name,
                        "cheaper": a.name if ha[-1].seconds <= hb[-1].seconds else b.name,
                        "budget_seconds": sec, "hv_a_at_seconds": hypervolume_at(ha, seconds=sec),
                        "hv_b_at_seconds": hypervolume_at(hb, seconds=sec),
                        "cheaper_in_epochs": a.name if ha[-1].epochs <= hb[-1].epochs else b.name,
                        "budget_epochs": ep, "hv_a_at_epochs": hypervolume_at(ha, epochs=ep),
                        "hv_b_at_epochs": hypervolume_at(hb, epochs=ep),
                        "cheaper_in_flops": None if fl is None else (a.name if ha[-1].flops <= hb[-1].flops else b.name),
                        "budget_flops": fl,
                        "hv_a_at_flops": None if fl is None else hypervolume_at(ha, flops=fl),
                        "hv_b_at_flops": None if fl is None else hypervolume_at(hb, flops=fl),
                        # a refined study has no front before its searches' total: "not yet", not hypervolume 0
                        "a_starts_at": {"seconds": a.source_seconds, "epochs": a.source_epochs,
                                        "flops": a.source_flops},
                        "b_starts_at": {"seconds": b.source_seconds, "epochs": b.source_epochs,
                                        "flops": b.source_flops}})
    return out
