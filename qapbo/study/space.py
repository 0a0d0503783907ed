"""Search spaces: architecture and precision dimensions, parsed from ``[search.space]``.

Every dimension is either fixed (a plain value) or searched (a table): ``{low, high, log}``
for ranges, ``{choices = [...]}`` for categories. Bit widths may be one for the whole network
or one per layer (``per_layer = true``). ``preset = "paper-bo"`` builds the space of the
paper's own Bayesian optimization: the three hidden widths only, at one fixed precision.

``precision = "learned"`` searches learned per-weight precision (:mod:`qapbo.nn.learned`) instead
of bit widths: its dimensions are ``beta`` (the EBOPs weight; default a log range
:data:`DEFAULT_BETA`), ``init_bits`` (initial fractional bits) and ``bits_lr`` (the bits' learning
rate), beside the widths and ``lr``. ``precision = {choices = ["fixed", "learned"]}`` lets the
sampler choose per trial: ``bits``, ``act_bits``, ``input_bits``, ``bn``, ``l1`` and ``sparsity``
then apply to the fixed trials and the learned ones to the learned trials (Optuna's conditional
parameters). A learned trial has no BatchNorm, no L1 and no magnitude pruning: its bits prune it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import optuna

from qapbo.errors import SpaceError
from qapbo.nn.spec import (
    BN_MODES,
    DEFAULT_BITS_LR,
    DEFAULT_INIT_BITS,
    FLOAT_BITS,
    MAX_BITS,
    MAX_INIT_BITS,
    MIN_BITS,
    MIN_INIT_BITS,
    PRECISIONS,
    ModelSpec,
)
from qapbo.train.config import TrainConfig

SAMPLERS = ("tpe", "nsga2", "gp", "random", "grid", "botorch")
#: costs beside AUC a search may minimize: every sampler above takes three objectives in Optuna 5
#: (GPSampler and BoTorchSampler included), none is offered more
MAX_COSTS = 2
PRESETS = ("paper-bo",)
PAPER_BO_PRECISIONS = (32, 12, 6, 4)
CONSTRAINT_METRICS = ("auc", "bops", "ebops", "luts", "latency", "accuracy", "sparsity")
#: ``beta`` of a learned-precision space when the file gives none: EBOPs of a 16-64-32-32-5 net are
#: ~1e4 at the start, so 1e-7 leaves the cross-entropy alone and 1e-4 weighs EBOPs like it
DEFAULT_BETA = {"low": 1e-7, "high": 1e-4, "log": True}
#: keys of a fixed-precision trial that a learned one does not have
FIXED_ONLY = ("bits", "act_bits", "input_bits", "bn", "l1", "sparsity")
LEARNED_ONLY = ("beta", "init_bits", "bits_lr")


@dataclass(frozen=True)
class Dim:
    """One dimension: fixed ``value``, an int/float range, or categorical ``choices``."""

    kind: str  # "fixed" | "int" | "float" | "choice"
    value: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    per_layer: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)
        return trial.suggest_categorical(name, list(self.choices))

    def values(self) -> list[Any]:
        """Every value the dimension can take (for ranges, its two ends)."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "choice":
            return list(self.choices)
        return [self.low, self.high]

    def canonical(self) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            d: dict[str, Any] = {"choices": list(self.choices)}
        else:
            d = {"low": self.low, "high": self.high, "log": self.log}
        if self.per_layer:
            d["per_layer"] = True
        return d


@dataclass(frozen=True)
class SearchSpace:
    n_layers: Dim
    widths: tuple[Dim, ...] | None  # per layer (fixes the depth), else ``width`` for all layers
    width: Dim | None
    bits: Dim
    act_bits: Dim | None  # None: same as the weight bits of the layer feeding the activation
    input_bits: Dim
    bn: Dim
    lr: Dim
    l1: Dim
    sparsity: Dim
    precision: Dim = Dim("fixed", value="fixed")
    beta: Dim = Dim("fixed", value=0.0)  # the learned dimensions: used by learned trials only
    init_bits: Dim = Dim("fixed", value=DEFAULT_INIT_BITS)
    bits_lr: Dim = Dim("fixed", value=DEFAULT_BITS_LR)

    @property
    def learned(self) -> bool:
        """Whether some trial of this space has learned precision."""
        return "learned" in self.precision.values()

    def canonical(self) -> dict[str, Any]:
        out = {k: getattr(self, k).canonical() for k in
               ("n_layers", "bits", "input_bits", "bn", "lr", "l1", "sparsity")}
        out["act_bits"] = "same" if self.act_bits is None else self.act_bits.canonical()
        if self.widths is not None:
            out["widths"] = [w.canonical() for w in self.widths]
        else:
            out["width"] = self.width.canonical()
        if self.learned:  # a fixed-precision space's canonical form (and so its stored studies) stays as it was
            out |= {k: getattr(self, k).canonical() for k in ("precision", *LEARNED_ONLY)}
        return out

    def suggest(self, trial: optuna.Trial, n_inputs: int, n_classes: int) -> "Candidate":
        """Ask ``trial`` for one point of the space."""
        if self.widths is not None:
            hidden = tuple(int(w.suggest(trial, f"width_{i + 1}")) for i, w in enumerate(self.widths))
        else:
            n = int(self.n_layers.suggest(trial, "n_layers"))
            hidden = tuple(int(self.width.suggest(trial, f"width_{i + 1}")) for i in range(n))
        n = len(hidden)
        if str(self.precision.suggest(trial, "precision")) == "learned":
            spec = ModelSpec(n_inputs=n_inputs, hidden=hidden, n_classes=n_classes, precision="learned",
                             beta=float(self.beta.suggest(trial, "beta")),
                             init_bits=int(self.init_bits.suggest(trial, "init_bits")),
                             bits_lr=float(self.bits_lr.suggest(trial, "bits_lr")))
            return Candidate(spec=spec, lr=float(self.lr.suggest(trial, "lr")), l1=0.0, sparsity=0.0)
        wb = _bits(self.bits, trial, "bits", n + 1)
        ab = None if self.act_bits is None else _bits(self.act_bits, trial, "act_bits", n)
        spec = ModelSpec(n_inputs=n_inputs, hidden=hidden, n_classes=n_classes, weight_bits=wb, act_bits=ab,
                         input_bits=int(self.input_bits.suggest(trial, "input_bits")),
                         bn=str(self.bn.suggest(trial, "bn")))
        return Candidate(spec=spec, lr=float(self.lr.suggest(trial, "lr")), l1=float(self.l1.suggest(trial, "l1")),
                         sparsity=float(self.sparsity.suggest(trial, "sparsity")))

    def grid(self) -> dict[str, list[Any]]:
        """Every searched parameter with its choices, for Optuna's GridSampler (ablations)."""
        out: dict[str, list[Any]] = {}
        if self.widths is None and self.n_layers.kind != "fixed":
            raise SpaceError("sampler 'grid' needs a fixed depth: give n_layers as a number or use widths")
        if self.precision.kind != "fixed":
            raise SpaceError("sampler 'grid' needs one precision (a learned trial has other parameters than a "
                             "fixed one): give precision as \"fixed\" or \"learned\", or use another sampler")
        n = self.n_layers.value if self.widths is None else len(self.widths)
        named = [(f"width_{i + 1}", w) for i, w in enumerate(self.widths or (self.width,) * n)]
        if self.learned:
            named += [(k, getattr(self, k)) for k in (*LEARNED_ONLY, "lr")]
        else:
            for name, dim, count in (("bits", self.bits, n + 1), ("act_bits", self.act_bits, n)):
                if dim is not None:
                    named += [(f"{name}_{i + 1}", dim) for i in range(count)] if dim.per_layer else [(name, dim)]
            named += [(k, getattr(self, k)) for k in ("input_bits", "bn", "lr", "l1", "sparsity")]
        for name, dim in named:
            if dim.kind in ("int", "float"):
                raise SpaceError(f"sampler 'grid' needs choices, not a range, for {name}: "
                                 f"write {{ choices = [...] }}")
            if dim.kind == "choice":
                out[name] = list(dim.choices)
        return out

    def fix_bits(self, bits: int) -> "SearchSpace":
        return replace(self, bits=Dim("fixed", value=bits), act_bits=None)


def _bits(dim: Dim, trial: optuna.Trial, name: str, n: int) -> int | tuple[int, ...]:
    if dim.per_layer:
        return tuple(int(dim.suggest(trial, f"{name}_{i + 1}")) for i in range(n))
    return int(dim.suggest(trial, name))


@dataclass(frozen=True)
class Candidate:
    spec: ModelSpec
    lr: float
    l1: float
    sparsity: float

    def train_config(self, base: TrainConfig) -> TrainConfig:
        return replace(base, lr=self.lr, l1=self.l1)


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # ">=" or "<="
    bound: float

    def violation(self, record: dict[str, Any]) -> float:
        """Optuna's convention: <= 0 is feasible."""
        v = float(record[self.metric])
        return self.bound - v if self.op == ">=" else v - self.bound

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class SearchSettings:
    sampler: str
    n_trials: int | None
    timeout: float | None
    preset: str | None
    precisions: tuple[int, ...] | None  # preset: one study per precision
    space: SearchSpace
    constraints: tuple[Constraint, ...]
    heartbeat_interval: int
    grace_period: int
    max_retry: int
    #: the costs minimized beside AUC (qapbo.cost.measure names), in objective order
    costs: tuple[str, ...] = ("bops",)
    #: stop hopeless trials (qapbo.study.early_stop) after ``early_stop_warmup`` epochs, once
    #: ``early_stop_startup_trials`` COMPLETE trials have learning curves
    early_stop: bool = True
    early_stop_warmup: int = 5
    early_stop_startup_trials: int = 4

    @property
    def directions(self) -> tuple[str, ...]:
        return ("maximize",) + ("minimize",) * len(self.costs)

    def studies(self, name: str) -> list[tuple[str, SearchSpace]]:
        """(Optuna study name, space) for each study this search runs."""
        if self.precisions:
            return [(f"{name}-search-{b}b", self.space.fix_bits(b)) for b in self.precisions]
        return [(f"{name}-search", self.space)]


def parse_search(s: dict[str, Any], objectives: dict[str, Any], train: TrainConfig, where: str) -> SearchSettings:
    """Validate ``[search]`` and ``[objectives]`` (already type-checked by the study-file reader)."""

    def fail(msg: str) -> None:
        raise SpaceError(f"{where}: [search] {msg}")

    if s["sampler"] not in SAMPLERS:
        fail(f"unknown sampler {s['sampler']!r}: use one of {', '.join(SAMPLERS)}")
    if s["n_trials"] is not None and s["n_trials"] < 1:
        fail(f"n_trials is {s['n_trials']}: use at least 1")
    if s["timeout"] is not None and not s["timeout"] > 0:
        fail(f"timeout is {s['timeout']}: use a positive number of seconds")
    if s["heartbeat_interval"] < 1 or s["grace_period"] <= s["heartbeat_interval"]:
        fail("heartbeat_interval must be >= 1 s and grace_period longer than it")
    if s["max_retry"] < 0:
        fail("max_retry must be 0 or more")
    if s["early_stop_warmup"] < 0:
        fail(f"early_stop_warmup is {s['early_stop_warmup']}: use 0 or more epochs")
    if s["early_stop_startup_trials"] < 1:
        fail(f"early_stop_startup_trials is {s['early_stop_startup_trials']}: use at least 1 completed trial")
    precisions = None
    if s["preset"] is not None:
        if s["preset"] not in PRESETS:
            fail(f"unknown preset {s['preset']!r}: use one of {', '.join(PRESETS)}")
        if s["space"] is not None:
            fail("preset and space exclude each other: the preset defines the space; remove one")
        precisions = tuple(s["precisions"] or PAPER_BO_PRECISIONS)
        if not precisions or any(isinstance(b, bool) or not isinstance(b, int) for b in precisions):
            fail(f"precisions {s['precisions']} must be a list of bit widths")
        _check_bits(precisions, "precisions", fail)
        space = paper_bo_space(train)
    else:
        if s["precisions"] is not None:
            fail("precisions only goes with a preset; in a space, search or fix 'bits' instead")
        space = parse_space(s["space"] or {}, train, fail)
    if s["sampler"] == "grid":
        try:
            grid = space.grid()
        except SpaceError as exc:
            fail(str(exc))
        size = math.prod(len(v) for v in grid.values())
        if s["n_trials"] is None:
            s = {**s, "n_trials": size}  # the whole grid, once
    from qapbo.cost.definitions import COSTS
    from qapbo.cost.measure import require_hw

    costs = tuple(c for c in COSTS if objectives.get(c) is not None)
    if objectives["auc"] != "maximize" or any(objectives[c] != "minimize" for c in costs):
        raise SpaceError(f"{where}: [objectives] qapbo searches auc = \"maximize\" and minimizes costs "
                         f"(bops = \"minimize\", or luts, ebops, latency); restrict the front with constraints instead")
    if len(costs) > MAX_COSTS:
        raise SpaceError(f"{where}: [objectives] {', '.join(costs)}: at most {MAX_COSTS} costs beside auc "
                         "(three objectives); keep one or two and put a bound on another as a constraint")
    constraints = tuple(_constraint(c, where) for c in objectives["constraints"])
    require_hw(costs + tuple(c.metric for c in constraints), f"{where}: [objectives] ")
    return SearchSettings(sampler=s["sampler"], n_trials=s["n_trials"], timeout=s["timeout"], preset=s["preset"],
                          precisions=precisions, space=space, constraints=constraints,
                          heartbeat_interval=s["heartbeat_interval"], grace_period=s["grace_period"],
                          max_retry=s["max_retry"], costs=costs, early_stop=s["early_stop"],
                          early_stop_warmup=s["early_stop_warmup"],
                          early_stop_startup_trials=s["early_stop_startup_trials"])


def paper_bo_space(train: TrainConfig) -> SearchSpace:
    """Hawks et al. 2021 BO: fc1 in [8, 128], fc2 and fc3 in [4, 64]; nothing else varies."""
    return SearchSpace(
        n_layers=Dim("fixed", value=3),
        widths=(Dim("int", low=8, high=128), Dim("int", low=4, high=64), Dim("int", low=4, high=64)),
        width=None, bits=Dim("fixed", value=FLOAT_BITS), act_bits=None, input_bits=Dim("fixed", value=FLOAT_BITS),
        bn=Dim("fixed", value="affine"), lr=Dim("fixed", value=train.lr), l1=Dim("fixed", value=train.l1),
        sparsity=Dim("fixed", value=0.0),
    )


_SPACE_KEYS = ("n_layers", "width", "widths", "bits", "act_bits", "input_bits", "bn", "lr", "l1", "sparsity",
               "precision", *LEARNED_ONLY)


def parse_space(d: dict[str, Any], train: TrainConfig, fail: Callable[[str], None]) -> SearchSpace:
    import difflib

    for key in d:
        if key not in _SPACE_KEYS:
            close = difflib.get_close_matches(key, _SPACE_KEYS, n=1)
            fail(f"unknown key '{key}' in [search.space]{f' (did you mean {close[0]!r}?)' if close else ''}; "
                 f"known keys: {', '.join(_SPACE_KEYS)}")
    if "widths" in d and ("width" in d or "n_layers" in d):
        fail("space: 'widths' (one range per layer) fixes the depth; drop 'width' and 'n_layers'")
    widths = width = None
    if "widths" in d:
        if not isinstance(d["widths"], list) or not d["widths"]:
            fail("space: widths must be a non-empty list, one width or range per hidden layer")
        widths = tuple(_dim(w, f"widths[{i}]", int, fail, positive=True) for i, w in enumerate(d["widths"]))
        n_layers = Dim("fixed", value=len(widths))
    else:
        n_layers = _dim(d.get("n_layers", 3), "n_layers", int, fail, positive=True)
        width = _dim(d.get("width", {"low": 4, "high": 128, "log": True}), "width", int, fail, positive=True)
    bits = _dim(d.get("bits", FLOAT_BITS), "bits", int, fail, layered=True)
    _check_bits(bits.values(), "bits", fail)
    act = d.get("act_bits", "same")
    act_bits = None
    if act != "same":
        act_bits = _dim(act, "act_bits", int, fail, layered=True)
        _check_bits(act_bits.values(), "act_bits", fail)
    input_bits = _dim(d.get("input_bits", FLOAT_BITS), "input_bits", int, fail)
    _check_bits(input_bits.values(), "input_bits", fail)
    bn = _dim(d.get("bn", "affine"), "bn", str, fail)
    bad = [v for v in bn.values() if v not in BN_MODES]
    if bad:
        fail(f"space: bn value(s) {bad} unknown; use {', '.join(BN_MODES)}")
    lr = _dim(d.get("lr", train.lr), "lr", float, fail, positive=True)
    l1 = _dim(d.get("l1", train.l1), "l1", float, fail)
    sparsity = _dim(d.get("sparsity", 0.0), "sparsity", float, fail)
    if any(v < 0 for v in l1.values()):
        fail("space: l1 must be >= 0")
    if any(not (0.0 <= v < 1.0) for v in sparsity.values()):
        fail("space: sparsity targets must lie in [0, 1)")
    precision, beta, init_bits, bits_lr = _precision_dims(d, fail)
    space = SearchSpace(n_layers=n_layers, widths=widths, width=width, bits=bits, act_bits=act_bits,
                        input_bits=input_bits, bn=bn, lr=lr, l1=l1, sparsity=sparsity, precision=precision,
                        beta=beta, init_bits=init_bits, bits_lr=bits_lr)
    fixed_part = (bits, input_bits, bn, l1, sparsity) if "fixed" in precision.values() else ()
    learned_part = (beta, init_bits, bits_lr) if space.learned else ()
    if all(dim.kind == "fixed" for dim in (n_layers, lr, precision, *fixed_part, *learned_part)) and \
            all(w.kind == "fixed" for w in (widths or (width,))) and \
            (act_bits is None or act_bits.kind == "fixed" or not fixed_part):
        fail("space: every dimension is fixed, so there is nothing to search; give at least one range or choices")
    return space


def _precision_dims(d: dict[str, Any], fail: Callable[[str], None]) -> tuple[Dim, Dim, Dim, Dim]:
    """``precision`` and the learned dimensions (``beta``, ``init_bits``, ``bits_lr``), checked against each other."""
    precision = _dim(d.get("precision", "fixed"), "precision", str, fail)
    bad = [v for v in precision.values() if v not in PRECISIONS]
    if bad:
        fail(f"space: precision value(s) {bad} unknown; use {', '.join(PRECISIONS)} or "
             "{ choices = [\"fixed\", \"learned\"] }")
    if "learned" not in precision.values():
        given = [k for k in LEARNED_ONLY if k in d]
        if given:
            fail(f"space: {', '.join(given)}: only for learned precision; add precision = \"learned\" (or "
                 "{ choices = [\"fixed\", \"learned\"] }), or remove them")
        return precision, Dim("fixed", value=0.0), Dim("fixed", value=DEFAULT_INIT_BITS), \
            Dim("fixed", value=DEFAULT_BITS_LR)
    if precision.values() == ["learned"]:
        dead = [k for k in FIXED_ONLY if k in d]
        if dead:
            fail(f"space: precision = \"learned\" learns every bit width and prunes by them, so {', '.join(dead)} "
                 "would be searched for nothing; remove them, or search precision = { choices = [\"fixed\", "
                 "\"learned\"] } to give fixed trials their own")
    beta = _dim(d.get("beta", DEFAULT_BETA), "beta", float, fail)
    if any(v < 0 for v in beta.values()):
        fail("space: beta must be >= 0 (the weight of EBOPs in the loss)")
    init_bits = _dim(d.get("init_bits", DEFAULT_INIT_BITS), "init_bits", int, fail)
    if any(not MIN_INIT_BITS <= v <= MAX_INIT_BITS for v in init_bits.values()):
        fail(f"space: init_bits must lie in [{MIN_INIT_BITS}, {MAX_INIT_BITS}] (initial fractional bits)")
    bits_lr = _dim(d.get("bits_lr", DEFAULT_BITS_LR), "bits_lr", float, fail, positive=True)
    return precision, beta, init_bits, bits_lr


def _check_bits(values: Sequence[Any], what: str, fail: Callable[[str], None]) -> None:
    for b in values:
        if isinstance(b, bool) or not isinstance(b, int) or not (b == FLOAT_BITS or MIN_BITS <= b <= MAX_BITS):
            fail(f"space: {what} value {b!r} is out of range; use integers from {MIN_BITS} to {MAX_BITS}, "
                 f"or {FLOAT_BITS} for float")


def _dim(v: Any, name: str, typ: type, fail: Callable[[str], None], positive: bool = False,
         layered: bool = False) -> Dim:
    def ok(x: Any) -> bool:
        if typ is float:
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        return isinstance(x, typ) and not isinstance(x, bool)

    if not isinstance(v, dict):
        if not ok(v):
            fail(f"space: {name} must be a {typ.__name__} or a table like {{low = .., high = ..}} or "
                 f"{{choices = [..]}}, got {v!r}")
        if positive and v <= 0:
            fail(f"space: {name} must be positive, got {v!r}")
        return Dim("fixed", value=typ(v) if typ is float else v)
    allowed = {"low", "high", "log", "choices"} | ({"per_layer"} if layered else set())
    extra = set(v) - allowed
    if extra:
        fail(f"space: unknown key(s) {sorted(extra)} in {name}; use {sorted(allowed)}")
    per_layer = bool(v.get("per_layer", False))
    if "choices" in v:
        if {"low", "high", "log"} & set(v):
            fail(f"space: {name} has both choices and a range; give one")
        ch = v["choices"]
        if not isinstance(ch, list) or not ch or not all(ok(c) for c in ch):
            fail(f"space: {name}.choices must be a non-empty list of {typ.__name__} values")
        if len(set(ch)) != len(ch):
            fail(f"space: {name}.choices {ch} has duplicates")
        return Dim("choice", choices=tuple(typ(c) if typ is float else c for c in ch), per_layer=per_layer)
    if "low" not in v or "high" not in v:
        fail(f"space: {name} needs low and high (or choices)")
    lo, hi = v["low"], v["high"]
    if typ is str or not (ok(lo) and ok(hi)):
        fail(f"space: {name} bounds must be {typ.__name__} values, got {lo!r} and {hi!r}")
    if lo >= hi:
        fail(f"space: {name} low ({lo}) must be below high ({hi})")
    log = bool(v.get("log", False))
    if (log or positive) and lo <= 0:
        fail(f"space: {name} low must be positive{' on a log scale' if log else ''}, got {lo}")
    return Dim("int" if typ is int else "float", low=lo, high=hi, log=log, per_layer=per_layer)


_CONSTRAINT = re.compile(r"^\s*(\w+)\s*(>=|<=)\s*([-+0-9.eE_]+)\s*$")


def _constraint(text: Any, where: str) -> Constraint:
    m = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if not m or m.group(1) not in CONSTRAINT_METRICS:
        raise SpaceError(f"{where}: [objectives] constraint {text!r} not understood; write e.g. \"auc >= 0.9\" "
                         f"or \"bops <= 1e6\" (metrics: {', '.join(CONSTRAINT_METRICS)})")
    try:
        bound = float(m.group(3))
    except ValueError:
        raise SpaceError(f"{where}: [objectives] constraint {text!r}: {m.group(3)!r} is not a number") from None
    return Constraint(m.group(1), m.group(2), bound)
