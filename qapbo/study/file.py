"""Study files: TOML descriptions of a search, its refinement and a QAP baseline, validated at load.

A study file is the unit users version and rerun. Everything in it is checked before any
storage is touched, with errors that name the file, the key and the fix. Its canonical form
(defaults filled in) is stored with the study, so a resumed run can refuse a file that changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from qapbo.data.config import DataConfig
from qapbo.errors import QapboError, StudyFileError
from qapbo.nn.spec import BN_MODES, ModelSpec
from qapbo.records import DEFAULT_MIN_AUC
from qapbo.study.space import SearchSettings, parse_search
from qapbo.train.config import LearnedSettings, TrainConfig
from qapbo.train.hgq import HgqSettings

#: PROTOCOL's cumulative pruned fractions: 0, 10, ..., 90, 96.66, 98.88 %.
PROTOCOL_SCHEDULE: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9666, 0.9888)
PROTOCOL_PRECISIONS: tuple[int, ...] = (32, 12, 8, 6, 4)
QAP_MODES = ("ft", "lt")


# key: (python types accepted, default). A default of REQUIRED means the key must be given.
REQUIRED = object()
_TOP = {"name": (str, REQUIRED), "seed": (int, 0), "storage": (str, None), "artifacts": (str, None),
        "description": (str, ""), "replicates": (int, 1)}
#: Replicate k of a study file trains (and samples) with its seeds shifted by this much times k, on the
#: data split of the file's own seed; its studies are named NAME-rK-... (replicate 0 keeps NAME-...).
REPLICATE_SEED_STEP = 1000
MAX_REPLICATES = 100
_DATA = {k: (t, getattr(DataConfig, k)) for k, t in (  # DataConfig's defaults
    ("source", str), ("path", str), ("test_path", str), ("data_home", str), ("label_column", str), ("n_rows", int),
    ("max_rows", int), ("val_fraction", float), ("test_fraction", float), ("folds", int), ("randomize_labels", object),
    # pythia-jets generation options (qapbo.data.pythia.OPTIONS); unset: the generator's defaults
    ("detector", str), ("selection", str), ("radius", float), ("zlogz", str), ("undefined", str))}
_JET_OPTIONS = ("detector", "selection", "radius", "zlogz", "undefined")  # qapbo.data.pythia.OPTIONS
_TRAIN = {k: (type(v), v) for k, v in asdict(TrainConfig()).items() if k != "seed"}  # the library's defaults
_QAP = {"hidden": (list, [64, 32, 32]), "bn": (str, "affine"), "input_bits": (int, 32),
        "precisions": (list, list(PROTOCOL_PRECISIONS)), "modes": (list, list(QAP_MODES)),
        "schedule": (list, list(PROTOCOL_SCHEDULE)), "seeds": (list, None)}
_SEARCH = {"sampler": (str, "tpe"), "n_trials": (int, None), "timeout": (float, None), "preset": (str, None),
           "precisions": (list, None), "space": (dict, None), "heartbeat_interval": (int, 10),
           "grace_period": (int, 30), "max_retry": (int, 2),
           **{k: (type(getattr(SearchSettings, k)), getattr(SearchSettings, k))  # early stopping's own defaults
              for k in ("early_stop", "early_stop_warmup", "early_stop_startup_trials")}}
_COST_KEYS = ("bops", "ebops", "luts", "latency")  # qapbo.cost.measure.COSTS
_OBJECTIVES = {"auc": (str, "maximize"), "bops": (str, None), "ebops": (str, None), "luts": (str, None),
               "latency": (str, None), "constraints": (list, []),
               "min_auc": (float, DEFAULT_MIN_AUC)}
#: [refine] (qapbo.study.refine): which front members, and the cumulative pruned fractions to take them to.
#: Fine-tune only: a member's initial weights are not stored, so a lottery-ticket rewind is impossible.
_REFINE = {"members": (object, "all"), "schedule": (list, list(PROTOCOL_SCHEDULE[1:])), "betas": (list, None)}


def _run_schema(defaults: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """The schema of a one-run section ([hgq], [learned]) from its settings' defaults: lists stay lists,
    ``betas`` (default None) is a list, numbers given as integers are floats, ``seeds`` default to the file's."""
    return {f: ((list if isinstance(v, list) or f in ("betas", "seeds") else float if isinstance(v, float) else type(v)), v)
            for f, v in defaults.items()} | {"seeds": (list, None)}


#: [hgq] (qapbo.study.hgq): HGQ2's settings, defaults from :class:`qapbo.train.hgq.HgqSettings`; seeds
#: default to the file's seed.
_HGQ = _run_schema(HgqSettings().to_dict())
#: [learned] (qapbo.study.learned): the learned-precision chain, defaults from
#: :class:`qapbo.train.config.LearnedSettings` (HGQ2's net and ramp); seeds default to the file's seed.
_LEARNED = _run_schema(LearnedSettings().to_dict())
SECTIONS = {"data": _DATA, "train": _TRAIN, "qap": _QAP, "search": _SEARCH, "objectives": _OBJECTIVES,
            "refine": _REFINE, "hgq": _HGQ, "learned": _LEARNED}
#: Search keys that only set the budget, liveness checks or compute (early stopping): changing them,
#: or a study stored before they existed, keeps a study resumable.
SEARCH_BUDGET_KEYS = ("n_trials", "timeout", "heartbeat_interval", "grace_period", "max_retry", "early_stop",
                      "early_stop_warmup", "early_stop_startup_trials")


@dataclass(frozen=True)
class QapSettings:
    hidden: tuple[int, ...]
    bn: str
    input_bits: int
    precisions: tuple[int, ...]
    modes: tuple[str, ...]
    schedule: tuple[float, ...]
    seeds: tuple[int, ...]

    def spec(self, bits: int, n_inputs: int, n_classes: int) -> ModelSpec:
        return ModelSpec(n_inputs=n_inputs, hidden=self.hidden, n_classes=n_classes, weight_bits=bits,
                         input_bits=self.input_bits, bn=self.bn)


@dataclass(frozen=True)
class RefineSettings:
    """``[refine]``: QAP (fine-tune) from the search's front members; see :mod:`qapbo.study.refine`."""

    members: int | None  # the k members spread best along the front; None: all of it
    schedule: tuple[float, ...]  # cumulative pruned fractions; each member gets those above its own
    # a learned-precision member (it prunes itself) is fine-tuned under a rising beta instead: its
    # own beta times each factor, level by level
    betas: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0)


@dataclass(frozen=True)
class StudyFile:
    """A parsed, validated study file."""

    name: str
    seed: int
    storage: str | None
    artifacts: str | None
    description: str
    data: DataConfig
    train: TrainConfig
    qap: QapSettings | None
    search: SearchSettings | None = None  # when the file has a [search] section
    refine: RefineSettings | None = None
    hgq: HgqSettings | None = None  # when the file has an [hgq] section (the HGQ2 contender)
    learned: LearnedSettings | None = None  # when the file has a [learned] section (the learned-precision chain)
    path: str = "<memory>"
    canonical: dict[str, Any] = field(default_factory=dict, repr=False)
    text: str = field(default="", repr=False)
    #: networks with a lower test AUC are infeasible (an Optuna constraint): never on a front
    min_auc: float = DEFAULT_MIN_AUC
    replicates: int = 1  # how many replicates the file asks for (``replicates = N``)
    replicate: int = 0  # which one this is (:meth:`replica`)
    base_name: str = ""  # the file's own name, before a replicate's ``-rK``
    synthetic: bool = False  # as it was loaded (:meth:`replica` loads the others the same way)
    rows: int | None = None

    @property
    def config_hash(self) -> str:
        return config_hash(self.canonical)

    @property
    def randomizations(self) -> tuple[float, ...]:
        r = self.canonical["data"]["randomize_labels"]
        return tuple(r) if isinstance(r, list) else (r,)

    @property
    def qap_study_name(self) -> str:
        return f"{self.name}-qap"

    @property
    def refine_study_name(self) -> str:
        return f"{self.name}-refine"

    def replica(self, k: int) -> "StudyFile":
        """Replicate ``k`` of this file (0 is the file itself): the same data split, seeds shifted by
        ``REPLICATE_SEED_STEP * k``, studies named ``NAME-rK-...``."""
        if k == self.replicate:
            return self
        return parse_study(self.text, self.path, synthetic=self.synthetic, rows=self.rows, replicate=k,
                           replicates=self.replicates)

    def replicas(self) -> list["StudyFile"]:
        """Every replicate the file asks for, in order."""
        return [self.replica(k) for k in range(self.replicates)]

    @property
    def hgq_study_name(self) -> str:
        return f"{self.name}-hgq"

    @property
    def learned_study_name(self) -> str:
        return f"{self.name}-learned"

    def study_names(self) -> list[str]:
        """Every Optuna study this file runs, in the order ``qapbo run`` runs them."""
        names = [n for n, _ in self.search.studies(self.name)] if self.search is not None else []
        if self.search is not None and self.refine is not None:
            names.append(self.refine_study_name)
        if self.qap is not None:
            names.append(self.qap_study_name)
        if self.hgq is not None:
            names.append(self.hgq_study_name)
        if self.learned is not None:
            names.append(self.learned_study_name)
        return names

    def all_study_names(self) -> list[str]:
        """:meth:`study_names` of every replicate, replicate by replicate."""
        return [n for r in self.replicas() for n in r.study_names()]

    def data_variants(self) -> list[tuple[int, float, DataConfig]]:
        """(fold, randomized share, data config) for every data variant the file asks for."""
        return [(k, r, replace(self.data, fold=k, randomize_labels=r))
                for r in self.randomizations for k in range(self.data.folds)]

    def section(self, *names: str) -> dict[str, Any]:
        """The canonical parts that define a run's results (used to detect a changed file).

        Budget keys of [search] are left out: extending a search is not changing it.
        """
        out = {k: self.canonical[k] for k in ("seed", "replicate", *names) if k in self.canonical}
        if "search" in out:
            out["search"] = {k: v for k, v in out["search"].items() if k not in SEARCH_BUDGET_KEYS}
        return out


def config_hash(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]


def load_study_file(path: str | Path, synthetic: bool = False, rows: int | None = None,
                    replicates: int | None = None) -> StudyFile:
    """Read and validate a study file; every problem raises :class:`StudyFileError`.

    ``synthetic=True`` swaps the file's data for the synthetic jets (``rows`` of them, default the
    file's ``n_rows``) and suffixes the study name with ``-synthetic``, so results on synthetic data
    never share a study with results on the real data.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise StudyFileError(f"{p}: no such study file; check the path (study files live in studies/)") from None
    except OSError as exc:
        raise StudyFileError(f"{p}: cannot read the study file ({exc.strerror})") from None
    return parse_study(text, str(p), synthetic=synthetic, rows=rows, replicates=replicates)


def parse_study(text: str, where: str = "<memory>", synthetic: bool = False, rows: int | None = None,
                replicate: int = 0, replicates: int | None = None) -> StudyFile:
    """Parse and validate study-file ``text`` (see :func:`load_study_file`); ``replicate`` k > 0 gives
    that replicate (:meth:`StudyFile.replica`), ``replicates`` overrides the file's count."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{where}: not valid TOML ({exc}); fix the syntax at that line") from None
    if synthetic:
        d = raw.get("data", {}) if isinstance(raw.get("data"), dict) else {}
        keep = {k: d[k] for k in ("val_fraction", "test_fraction", "folds", "randomize_labels") if k in d}
        raw["data"] = {"source": "synthetic-jets", "n_rows": rows or d.get("n_rows", 100_000), **keep}
        if isinstance(raw.get("name"), str):
            raw["name"] = f"{raw['name']}-synthetic"
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in raw.items() if isinstance(v, dict)}
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        name = sorted(unknown)[0]
        raise StudyFileError(f"{where}: unknown section [{name}]{_suggest(name, SECTIONS)}; "
                             f"known sections: {', '.join(f'[{s}]' for s in SECTIONS)}")
    canonical: dict[str, Any] = _check(top, _TOP, where, "top level")
    for sec, schema in SECTIONS.items():
        if sec in sections or sec in ("data", "train") or (sec == "objectives" and "search" in sections):
            canonical[sec] = _check(sections.get(sec, {}), schema, where, f"[{sec}]")
    _settle_jet_options(canonical["data"], where)
    if "refine" in canonical and "search" not in canonical:
        raise StudyFileError(f"{where}: [refine] refines the members of the search's front; add a [search] "
                             "section (or remove [refine])")
    min_auc = canonical.get("objectives", {}).get("min_auc", DEFAULT_MIN_AUC)
    if "objectives" in canonical:
        obj = canonical["objectives"]
        for k in _COST_KEYS[1:]:
            if obj[k] is None:
                del obj[k]  # absent costs stay out of the canonical form (older studies keep their hash)
        if obj["bops"] is None:
            if any(k in obj for k in _COST_KEYS[1:]):
                del obj["bops"]
            else:
                obj["bops"] = "minimize"  # no cost named: PROTOCOL's BOPs
    if "objectives" in canonical and "search" not in canonical:
        search_only = [k for k in ("auc", *_COST_KEYS, "constraints") if k in sections["objectives"]]
        if search_only:
            raise StudyFileError(f"{where}: [objectives] {', '.join(search_only)} only applies to a [search] "
                                 "section; add one or keep only min_auc")
        del canonical["objectives"]  # min_auc alone: it is stored with the [qap] settings below
    if not (math.isfinite(min_auc) and 0.0 <= min_auc < 1.0):
        raise StudyFileError(f"{where}: [objectives] min_auc {min_auc} must lie in [0, 1); the default "
                             f"{DEFAULT_MIN_AUC} keeps chance-level (AUC 0.5) networks off the fronts")
    name = canonical["name"]
    if not name or any(c in name for c in "/\\:") or name.strip() != name:
        raise StudyFileError(f"{where}: name {name!r} must be non-empty, without slashes, colons or spaces "
                             "at either end (it names the study and its files)")
    if replicates is not None:
        canonical["replicates"] = replicates
    n_rep = canonical["replicates"]
    if not 1 <= n_rep <= MAX_REPLICATES:
        raise StudyFileError(f"{where}: replicates = {n_rep}: use 1 (one run per method) to {MAX_REPLICATES}; 5 or "
                             "more give a verdict with a confidence interval")
    if not 0 <= replicate < n_rep:
        raise StudyFileError(f"{where}: replicate {replicate} does not exist: the file asks for {n_rep}")
    data_seed = canonical["seed"]
    shift = REPLICATE_SEED_STEP * replicate
    if replicate:  # the same split, other training and sampler seeds, studies of their own
        canonical["replicate"] = {"of": name, "index": replicate, "data_seed": data_seed}
        canonical["seed"] = data_seed + shift
        name = canonical["name"] = f"{name}-r{replicate}"
        for sec in ("qap", "hgq", "learned"):
            if isinstance(canonical.get(sec), dict) and canonical[sec].get("seeds") is not None:
                canonical[sec]["seeds"] = [v + shift if isinstance(v, int) and not isinstance(v, bool) else v
                                           for v in canonical[sec]["seeds"]]
    seed = canonical["seed"]
    d = dict(canonical["data"])
    shares = d["randomize_labels"]
    share_list = shares if isinstance(shares, list) else [shares]
    if not share_list or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in share_list):
        raise StudyFileError(f"{where}: [data] randomize_labels must be a share like 0.5 or a list like "
                             f"[0.0, 0.5, 0.75, 0.9], got {shares!r}")
    if len(set(share_list)) != len(share_list):
        raise StudyFileError(f"{where}: [data] randomize_labels {shares} has duplicates")
    d["randomize_labels"] = float(share_list[0])
    canonical["data"]["randomize_labels"] = [float(v) for v in share_list] if isinstance(shares, list) \
        else float(shares)
    for v in share_list:
        if not 0.0 <= v < 1.0:
            raise StudyFileError(f"{where}: [data] randomize_labels {v} must lie in [0, 1)")
    data = DataConfig(seed=data_seed, **d)
    try:
        data.validate()
        train = TrainConfig(seed=seed, **canonical["train"])
    except QapboError as exc:
        raise StudyFileError(f"{where}: {exc}") from None
    qap = None
    if "qap" in canonical:
        qap = _qap_settings(canonical["qap"], seed, where)
        canonical["qap"]["seeds"] = list(qap.seeds)
        canonical["qap"]["min_auc"] = min_auc  # QAP levels below it are stored infeasible
    search = None
    if "search" in canonical:
        if data.folds > 1 or len(share_list) > 1:
            raise StudyFileError(f"{where}: a [search] runs on one data split; set folds = 1 and a single "
                                 "randomize_labels value (cross-validation and label sweeps are for [qap])")
        search = parse_search(canonical["search"], canonical["objectives"], train, where)
        canonical["search"]["space"] = search.space.canonical()
    refine = None
    if "refine" in canonical:
        refine = _refine_settings(canonical["refine"], where)
        canonical["refine"]["schedule"] = list(refine.schedule)
        if canonical["refine"]["betas"] is None:
            del canonical["refine"]["betas"]  # unset: out of the canonical form (older studies keep their hash)
    hgq = None
    if "hgq" in canonical:
        if data.folds > 1 or len(share_list) > 1:
            raise StudyFileError(f"{where}: [hgq] trains on one data split; set folds = 1 and a single "
                                 "randomize_labels value")
        hgq = _hgq_settings(canonical["hgq"], seed, where)
        canonical["hgq"] = hgq.to_dict() | {"min_auc": min_auc}  # checkpoints below it are stored infeasible
    learned = None
    if "learned" in canonical:
        if data.folds > 1 or len(share_list) > 1:
            raise StudyFileError(f"{where}: [learned] trains on one data split; set folds = 1 and a single "
                                 "randomize_labels value")
        learned = _learned_settings(canonical["learned"], seed, where)
        canonical["learned"] = learned.to_dict() | {"min_auc": min_auc}  # checkpoints below it are stored infeasible
    if qap is None and search is None and hgq is None and learned is None:
        raise StudyFileError(f"{where}: nothing to run; add a [search], [qap], [hgq] or [learned] section")
    return StudyFile(name=name, seed=seed, storage=canonical["storage"], artifacts=canonical["artifacts"],
                     description=canonical["description"], data=data, train=train, qap=qap, search=search,
                     refine=refine, hgq=hgq, learned=learned, path=where, canonical=canonical, text=text, min_auc=min_auc,
                     replicates=n_rep, replicate=replicate, base_name=canonical.get("replicate", {}).get("of", name),
                     synthetic=synthetic, rows=rows)


def _settle_jet_options(data: dict[str, Any], where: str) -> None:
    """pythia-jets options as the set is made (written or default), so that a stored study notices a
    changed default (:func:`qapbo.study.storage.stored_changes`); other sources leave unset ones out."""
    given = {k: data.pop(k) for k in _JET_OPTIONS}
    if data["source"] != "pythia-jets":
        data.update({k: v for k, v in given.items() if v is not None})  # DataConfig.validate refuses them
        return
    from qapbo.data.pythia import effective_options

    try:
        data.update(effective_options(given))
    except QapboError as exc:
        raise StudyFileError(f"{where}: [data] {exc}") from None


def _hgq_settings(h: dict[str, Any], seed: int, where: str) -> HgqSettings:
    """HgqSettings validate themselves; their messages start with "hgq <key> is ..."."""
    from qapbo.errors import HgqSettingsError

    h = {**h, "seeds": h["seeds"] if h["seeds"] is not None else [seed]}
    try:
        return HgqSettings.from_dict(h)
    except HgqSettingsError as exc:
        raise StudyFileError(f"{where}: [hgq] {str(exc).removeprefix('hgq ')}") from None


def _learned_settings(d: dict[str, Any], seed: int, where: str) -> LearnedSettings:
    """LearnedSettings validate themselves; their messages start with "learned <key> is ..."."""
    d = {**d, "seeds": d["seeds"] if d["seeds"] is not None else [seed]}
    try:
        return LearnedSettings.from_dict(d)
    except QapboError as exc:
        raise StudyFileError(f"{where}: [learned] {str(exc).removeprefix('learned ')}") from None


def _qap_settings(q: dict[str, Any], seed: int, where: str) -> QapSettings:
    def fail(msg: str) -> None:
        raise StudyFileError(f"{where}: [qap] {msg}")

    hidden = _int_list(q["hidden"], "hidden", where)
    precisions = _int_list(q["precisions"], "precisions", where)
    if not precisions:
        fail("precisions is empty: list at least one bit width, e.g. precisions = [32, 6]")
    if len(set(precisions)) != len(precisions):
        fail(f"precisions {precisions} has duplicates")
    modes = q["modes"]
    if not modes or any(m not in QAP_MODES for m in modes) or len(set(modes)) != len(modes):
        fail(f"modes {modes} must be a non-empty list of distinct values from {list(QAP_MODES)}")
    schedule = q["schedule"]
    if not schedule or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in schedule):
        fail("schedule must be a non-empty list of cumulative pruned fractions, e.g. [0.0, 0.5, 0.9]")
    schedule = [float(v) for v in schedule]
    if schedule[0] != 0.0:
        fail(f"schedule must start at 0.0 (the unpruned network), got {schedule[0]}")
    if any(not (0.0 <= v < 1.0) or not math.isfinite(v) for v in schedule):
        fail("schedule fractions must lie in [0, 1)")
    if any(b <= a for a, b in zip(schedule, schedule[1:])):
        fail(f"schedule {schedule} must increase strictly (cumulative fractions)")
    seeds = _int_list(q["seeds"], "seeds", where) if q["seeds"] is not None else (seed,)
    if q["bn"] not in BN_MODES:
        fail(f"bn {q['bn']!r} is not one of {', '.join(BN_MODES)}")
    try:
        for b in precisions:
            ModelSpec(hidden=hidden, weight_bits=b, input_bits=q["input_bits"], bn=q["bn"])
    except QapboError as exc:
        fail(str(exc))
    return QapSettings(hidden=hidden, bn=q["bn"], input_bits=q["input_bits"], precisions=precisions,
                       modes=tuple(modes), schedule=tuple(schedule), seeds=seeds)


def _refine_settings(r: dict[str, Any], where: str) -> RefineSettings:
    def fail(msg: str) -> None:
        raise StudyFileError(f"{where}: [refine] {msg}")

    members = r["members"]
    if members != "all" and (isinstance(members, bool) or not isinstance(members, int) or members < 1):
        fail(f"members must be \"all\" (the whole front) or a number of members of at least 1, got {members!r}")
    schedule = r["schedule"]
    if not schedule or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in schedule):
        fail("schedule must be a non-empty list of cumulative pruned fractions, e.g. [0.5, 0.8, 0.9]")
    schedule = [float(v) for v in schedule]
    if any(not 0.0 < v < 1.0 for v in schedule):  # NaN fails too
        fail(f"schedule {schedule}: fractions must lie in (0, 1); level 0 is the member itself")
    if any(b <= a for a, b in zip(schedule, schedule[1:])):
        fail(f"schedule {schedule} must increase strictly (cumulative fractions)")
    betas = r["betas"]
    if betas is None:
        return RefineSettings(members=None if members == "all" else members, schedule=tuple(schedule))
    if not betas or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in betas):
        fail("betas must be a non-empty list of factors of a learned member's own beta, e.g. [3, 10, 30]")
    betas = [float(v) for v in betas]
    if any(not (math.isfinite(v) and v > 1.0) for v in betas) or any(b <= a for a, b in zip(betas, betas[1:])):
        fail(f"betas {betas}: factors must be above 1 and increase strictly (each level raises the member's "
             "own beta further)")
    return RefineSettings(members=None if members == "all" else members, schedule=tuple(schedule),
                          betas=tuple(betas))


def _int_list(v: Any, key: str, where: str) -> tuple[int, ...]:
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
        raise StudyFileError(f"{where}: {key} must be a list of integers, got {v!r}")
    return tuple(v)


def _check(given: dict[str, Any], schema: dict[str, tuple[type, Any]], where: str, sec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in given:
        if key not in schema:
            raise StudyFileError(f"{where}: unknown key '{key}' in {sec}{_suggest(key, schema)}; "
                                 f"known keys: {', '.join(schema)}")
    for key, (typ, default) in schema.items():
        if key not in given:
            if default is REQUIRED:
                raise StudyFileError(f"{where}: missing key '{key}' in {sec}; add e.g. {key} = \"my-study\"")
            out[key] = list(default) if isinstance(default, list) else default
            continue
        v = given[key]
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if not ok:
            raise StudyFileError(f"{where}: {sec} key '{key}' must be {_type_name(typ)}, "
                                 f"got {type(v).__name__} {v!r}")
        out[key] = v
    return out


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", list: "a list", bool: "true or false"}[t]


def _suggest(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human list of differences between two canonical configs, e.g. ``qap.precisions: [32] -> [6]``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += describe_changes(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: {json.dumps(a)} -> {json.dumps(b)}")
    return out
