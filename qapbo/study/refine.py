"""Refining the search's front: quantization-aware pruning started from each front member.

The search hands its Pareto set over: each chosen member is reloaded from its stored checkpoint
and pruned further along ``[refine] schedule``, fine-tuning the survivors at the member's own
precision, learning rate and L1 (FT only: a member's initial weights are not stored, so there is
nothing for a lottery-ticket rewind to go back to). Results go to a third study in the same
storage, ``NAME-refine`` (``qapbo_kind`` "refine"), stored like QAP levels: one COMPLETE trial per
(member, level), written in a single ``add_trial`` once the level is trained and its checkpoint
uploaded, so a killed run leaves no partial trial and a rerun continues each member from its last
finished level. Level 0 is the member itself, measured again from its checkpoint (no training).

The chosen members are frozen on the refine study when it is created: a search that has grown
since does not change what a resumed refine run works on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from qapbo.compare.fronts import best_trials_of
from qapbo.cost.measure import require_hw
from qapbo.data.split import JetData, load_data
from qapbo.errors import NoSearchError, QapboError, StorageError, StudyFileError
from qapbo.progress import LevelBars, reporter
from qapbo.records import ATTR_REFINE_OF
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
    stored_changes,
)
from qapbo.train.loop import EpochLog
from qapbo.train.measure import measure, versions
from qapbo.train.prune import iterative_pruning, rising_beta

#: study user attributes of a refine study
ATTR_MEMBERS = "qapbo_refine_members"  # the chosen members, frozen at creation: [{study, number}]
#: the parts of the study file that define a search's and a refine study's results (as qapbo.study.search
#: stores them; a change refuses a resume)
SEARCH_SECTIONS = ("data", "train", "search", "objectives")
SECTIONS = (*SEARCH_SECTIONS, "refine")


def refine_study_name(study: StudyFile) -> str:
    return study.refine_study_name


def label(study_name: str, number: int) -> str:
    """How a member is named in trials and logs: ``<search study>#<trial number>``."""
    return f"{study_name}#{number}"


def spread(points: Sequence[Sequence[float]], k: int) -> list[int]:
    """Indices of the ``k`` points spread best along a front of (AUC, cost, ...) points.

    Both ends first (the best AUC, then the lowest first cost), then greedily the point farthest
    from those already chosen, in (AUC, log10 cost...) with each axis scaled to the front's range
    so AUC and orders of magnitude of cost weigh alike. Ties go to the earlier point: the result
    depends only on the points and their order. Returned in the input order.
    """
    n = len(points)
    if k >= n:
        return list(range(n))
    coords = [[p[0], *(math.log10(max(c, 1e-300)) for c in p[1:])] for p in points]
    lows = [min(c[d] for c in coords) for d in range(len(coords[0]))]
    spans = [(max(c[d] for c in coords) - lows[d]) or 1.0 for d in range(len(coords[0]))]
    norm = [[(c[d] - lows[d]) / spans[d] for d in range(len(c))] for c in coords]
    best_auc = min(range(n), key=lambda i: (-points[i][0], *points[i][1:]))
    cheapest = min(range(n), key=lambda i: (*points[i][1:], -points[i][0]))
    chosen = [best_auc] + ([cheapest] if cheapest != best_auc and k > 1 else [])
    dist = [min(math.dist(norm[i], norm[j]) for j in chosen) for i in range(n)]
    while len(chosen) < k:
        far = max((i for i in range(n) if i not in chosen), key=lambda i: (dist[i], -i))
        chosen.append(far)
        dist = [min(dist[i], math.dist(norm[i], norm[far])) for i in range(n)]
    return sorted(chosen)


def member_sparsity(t: FrozenTrial) -> float:
    """The pruned fraction the search took the member to (its target; the measured one as a fallback)."""
    return float(t.user_attrs.get("target_sparsity", t.user_attrs.get("sparsity", 0.0)))


def is_learned(member: FrozenTrial) -> bool:
    return member.user_attrs.get("model", {}).get("precision") == "learned"


def levels_for(study: StudyFile, member: FrozenTrial) -> tuple[float, ...]:
    """The member's chain: its own sparsity, then every scheduled fraction strictly above it.

    A learned-precision member prunes itself (a weight at 0 bits is zero), so its chain is one of
    rising EBOPs weight instead: its own ``beta``, then that times each ``[refine] betas`` factor.
    """
    if is_learned(member):
        own = float(member.user_attrs["model"]["beta"])
        return (own, *(own * f for f in study.refine.betas))
    own = member_sparsity(member)
    return (own, *(f for f in study.refine.schedule if f > own + 1e-9))


@dataclass
class SearchFront:
    """The search studies of a study file, their COMPLETE trials and their (union) front."""

    names: list[str]  # search studies holding COMPLETE trials, in the file's order
    front: list[tuple[str, FrozenTrial]]  # (study name, trial), sorted by first cost then AUC
    trials: dict[tuple[str, int], FrozenTrial]  # every COMPLETE trial by (study, number)


def search_front(study: StudyFile, storage: optuna.storages.BaseStorage) -> SearchFront:
    """The front of the file's search, taken by Optuna over the union of its studies' trials.

    Optuna's ``best_trials`` keeps feasible trials only (constraints are stored on each trial),
    in the search's own objectives; several studies (a preset) are pooled on an in-memory study.
    """
    s = study.search
    names, pooled = [], []
    for name, _ in s.studies(study.name):
        try:
            ostudy = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue
        changes = stored_changes(ostudy, study, SEARCH_SECTIONS)
        if changes:
            raise StudyFileError(f"study file {study.path} changed since search study {name!r} started: "
                                 + "; ".join(changes) + ". Refine starts from that search's front: restore the "
                                 "original settings, or give the study a new name and search again")
        done = ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if done:
            names.append(name)
            pooled += [(name, t) for t in done]
    if not pooled:
        raise NoSearchError(f"no COMPLETE search trials of {study.path} in this storage: run "
                            f"`qapbo search {study.path}` first (refine starts from the search's front)")
    front = [pooled[t.number] for t in best_trials_of([t for _, t in pooled], s.directions)]
    front.sort(key=lambda m: (*m[1].values[1:], -m[1].values[0], m[0], m[1].number))
    return SearchFront(names, front, {(n, t.number): t for n, t in pooled})


def choose_members(study: StudyFile, front: SearchFront) -> list[tuple[str, FrozenTrial]]:
    """All the front, or the ``[refine] members`` spread best along it."""
    k = study.refine.members
    if k is None:
        return list(front.front)
    return [front.front[i] for i in spread([t.values for _, t in front.front], k)]


@dataclass
class PreparedRefine:
    """A refine study opened (members frozen, file checked) with its data and search trials loaded."""

    url: str
    study: optuna.Study
    data: JetData
    members: list[tuple[str, FrozenTrial]]  # frozen at creation, in front order
    chains: dict[str, tuple[float, ...]]  # by member label: its sparsity, then the levels it is taken to
    done: dict[tuple[str, int], FrozenTrial]  # COMPLETE refine trials by (member label, level)
    front_changed: bool  # the members the search's front gives today differ from the frozen ones

    @property
    def total(self) -> int:
        return sum(len(c) for c in self.chains.values())

    def todo(self) -> list[int]:
        """Members with levels left, most levels left first."""
        left = [len(self.chains[label(n, t.number)]) - sum(m == label(n, t.number) for m, _ in self.done)
                for n, t in self.members]
        return sorted((i for i, k in enumerate(left) if k), key=lambda i: (-left[i], i))


def prepare_refine(study: StudyFile, storage: str | None = None) -> PreparedRefine:
    """Check everything, then open (or create) the refine study; nothing is written before the checks.

    Data first (bad data fails before the storage is touched), then the search's front read
    without writing, then the refine study, whose members are frozen on creation.
    """
    if study.refine is None:
        raise StudyFileError(f"{study.path}: no [refine] section; add one (e.g. members = 4) to refine the "
                             "search's front with quantization-aware pruning")
    require_hw(study.search.costs, f"{study.path}: [objectives] ")
    url = storage_url(study, storage)
    data = load_data(study.data)
    try:
        reader = open_storage(url, read_only=True)
    except StorageError as exc:
        if url.startswith("sqlite:///") and "does not exist" in str(exc):
            raise NoSearchError(f"no storage at {redact(url)} yet: run `qapbo search {study.path}` first "
                                "(refine starts from the search's front)") from None
        raise
    front = search_front(study, reader)
    reader.remove_session()
    ostudy = open_study(open_storage(url), study, kind="refine", sections=SECTIONS,
                        directions=study.search.directions, study_name=refine_study_name(study))
    today = choose_members(study, front)
    frozen = ostudy.user_attrs.get(ATTR_MEMBERS)
    if frozen is None:  # a new study: freeze the members (order: front order)
        frozen = [{"study": n, "number": t.number} for n, t in today]
        ostudy.set_user_attr(ATTR_REFINE_OF, front.names)
        ostudy.set_user_attr(ATTR_MEMBERS, frozen)
    try:
        members = [(m["study"], front.trials[(m["study"], m["number"])]) for m in frozen]
    except KeyError as exc:
        raise StudyFileError(f"member {label(*exc.args[0])} of {ostudy.study_name!r} is no longer a COMPLETE "
                             "search trial in this storage; the search was written by something else; "
                             "use a new study name") from None
    changed = [(m["study"], m["number"]) for m in frozen] != [(n, t.number) for n, t in today]
    done = {(t.params["member"], t.params["level"]): t
            for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    chains = {label(n, t.number): levels_for(study, t) for n, t in members}
    return PreparedRefine(url, ostudy, data, members, chains, done, changed)


def run_refine(
    study: StudyFile,
    storage: str | None = None,
    progress: bool | str = True,
    log: Callable[[str], None] | None = None,
    chains: Iterable[int] | None = None,
) -> optuna.Study:
    """Run (or resume) the refinement of the search's front; returns the refine study.

    ``progress``: ``"bars"``, ``"lines"`` (one line per level), ``"none"`` or ``"auto"``.
    ``chains`` (indices into the members) restricts the run to those members, as workers take them
    from a shared queue (:func:`qapbo.study.workers.run_chain_workers`).
    """
    mode, say = reporter(progress, log)
    prep = prepare_refine(study, storage)
    labels = [label(n, t.number) for n, t in prep.members]
    dists = {"member": CategoricalDistribution(labels),
             "level": IntDistribution(0, max(len(c) for c in prep.chains.values()) - 1)}
    say(f"refine {study.name}: {len(prep.members)} member(s) of the front of {', '.join(prep.study.user_attrs[ATTR_REFINE_OF])}"
        f" ({', '.join(labels)}); {len(prep.done)}/{prep.total} levels already stored in {redact(prep.url)} "
        f"(study {prep.study.study_name}); data: {prep.data.label} ({prep.data.sizes})")
    if prep.front_changed:
        say("the search's front has changed since this refine study started; refining the members chosen "
            "then (a new front needs a new study name)")
    store = artifact_store(artifact_dir(study, prep.url))
    bars = LevelBars(prep.total, len(prep.done), study.train.epochs, enabled=mode == "bars")
    levels = LevelStore(prep.study, dists, "refine", tuple(study.search.costs), study.min_auc, bars, say,
                        study.search.constraints)  # judged as the search was
    try:
        for i in range(len(prep.members)) if chains is None else chains:
            _run_member(prep, store, study, prep.members[i], levels)
    finally:
        bars.close()
    return prep.study


def member_seed(study: StudyFile, search_study: str, number: int) -> int:
    """The training seed of a member, from the study seed and the member's identity (not its position
    among the chosen: the same member trains alike whichever ``members`` picked it); level ``l`` adds ``l``."""
    index = [n for n, _ in study.search.studies(study.name)].index(search_study)
    return study.seed * 100_003 + 1_009 * (number + 1) + 10_000_019 * index


def _run_member(prep: PreparedRefine, store, study: StudyFile, member: tuple[str, FrozenTrial],
                levels: LevelStore) -> None:
    name, src = member
    tag = label(name, src.number)
    learned = is_learned(src)
    chain = prep.chains[tag]
    stored = sorted(lvl for (m, lvl) in prep.done if m == tag)
    if len(stored) == len(chain):
        return
    check_contiguous(stored, f"member {tag}")
    bits = src.user_attrs.get("model", {}).get("weight_bits")
    desc = f"{tag} ({src.user_attrs.get('model_name', '?')})"
    ostudy = prep.study

    def store_level(level: int, rec: dict, ckpt: str) -> None:
        target = {"target_beta": chain[level]} if learned else {"target_sparsity": chain[level]}
        levels.add({"member": tag, "level": level}, rec, ckpt, desc, member=tag, **target)

    # level 0 is the member's own checkpoint; later levels each have their own
    last = src if len(stored) <= 1 else prep.done[(tag, stored[-1])]
    model, _ = load_checkpoint(store, last.user_attrs["checkpoint"])
    if not stored:  # level 0: the member as the search left it, measured again
        rec = measure(model, prep.data) | {"epochs": 0, "seconds": 0.0, "versions": versions(),
                                           "train_config": src.user_attrs.get("train_config")}
        if not math.isclose(rec["auc"], src.user_attrs["auc"], rel_tol=0.0, abs_tol=1e-9):
            raise QapboError(f"checkpoint {src.user_attrs['checkpoint']} of {tag} measures test AUC "
                             f"{rec['auc']:.6f}, but the search stored {src.user_attrs['auc']:.6f}: the data or "
                             "the checkpoint is not the one the search used; check [data] and the artifact directory")
        store_level(0, rec, src.user_attrs["checkpoint"])
        stored = [0]
        if len(chain) == 1:
            return
    tc = src.user_attrs["train_config"]  # the member's own lr and L1; the study's budget
    config = replace(study.train, lr=float(tc["lr"]), l1=float(tc["l1"]), seed=member_seed(study, name, src.number))
    def on_epoch(lvl: int, log: EpochLog) -> None:
        levels.bars.epoch(f"{tag} level {lvl}/{len(chain) - 1}", log)

    steps = (rising_beta(model, prep.data, config, chain, len(stored), on_epoch) if learned else
             iterative_pruning(model, prep.data, config, chain, "ft", {}, start_level=len(stored), on_epoch=on_epoch))
    for res in steps:
        rec = res.measurement.record
        meta = {"study": ostudy.study_name, "member": tag, "level": res.level, "bits": bits}
        store_level(res.level, rec, save_checkpoint(store, ostudy, res.measurement.model, meta))

