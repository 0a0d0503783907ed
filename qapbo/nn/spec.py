"""What defines a network: :class:`ModelSpec` (sizes, per-layer bit widths or learned precision, BatchNorm mode), validated.

Free of torch so that study files and the command line can check a network before building one;
:mod:`qapbo.nn.models` builds it (a learned-precision spec as :class:`qapbo.nn.learned.LearnedTagger`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from qapbo.errors import SpecError

FLOAT_BITS = 32
MIN_BITS, MAX_BITS = 2, 16

BN_MODES = ("none", "affine", "no-affine", "no-stats")

#: ``fixed``: one Brevitas bit width per layer (:class:`qapbo.nn.models.JetTagger`); ``learned``: a trained
#: fixed-point format per weight, input feature and neuron under a ``beta * EBOPs`` penalty
#: (:class:`qapbo.nn.learned.LearnedTagger`).
PRECISIONS = ("fixed", "learned")
#: Initial fractional bits a learned-precision net may start from (HGQ2's example: 3).
MIN_INIT_BITS, MAX_INIT_BITS = 0, 16
#: The learned spec's defaults: initial fractional bits (HGQ2's example), and the Adam learning rate of the
#: trained bits (HGQ2's 5e-3; PROTOCOL's weight rate 1e-4 would move a bit by ~1e-4 a step).
DEFAULT_INIT_BITS = 3
DEFAULT_BITS_LR = 5e-3
_LEARNED_KEYS = ("precision", "init_bits", "beta", "bits_lr")


def _as_tuple(v: Any) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _bits_tuple(value: int | Sequence[int] | None, n: int, what: str, default: Sequence[int]) -> tuple[int, ...]:
    if value is None:
        return tuple(default)
    if isinstance(value, (int,)) and not isinstance(value, bool):
        out = (value,) * n
    else:
        out = tuple(value)
        if len(out) == 1:
            out = out * n
    if len(out) != n:
        raise SpecError(f"{what}: got {len(out)} values for {n} layers; give one value or one per layer")
    for i, b in enumerate(out):
        if isinstance(b, bool) or not isinstance(b, int) or not (b == FLOAT_BITS or MIN_BITS <= b <= MAX_BITS):
            raise SpecError(
                f"{what}: bit width {b!r} for layer {i + 1} is out of range; use an integer from "
                f"{MIN_BITS} to {MAX_BITS}, or {FLOAT_BITS} for float"
            )
    return out


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network: sizes, per-layer precision, BN mode.

    ``weight_bits`` has one entry per linear layer (hidden layers then output), ``act_bits`` one
    per hidden activation (default: the weight bits of the layer feeding it, as in PROTOCOL);
    a single int means "all layers". 32 is float. ``input_bits`` < 32 quantizes the input.

    ``precision = "learned"`` replaces the bit widths by trained formats (:mod:`qapbo.nn.learned`):
    every weight, bias, input feature and hidden neuron starts at ``init_bits`` fractional bits,
    training adds ``beta * EBOPs`` to the loss, and the bits train with Adam at ``bits_lr``. Such a
    net has no BatchNorm (``bn`` is ``"none"``) and takes no ``weight_bits``, ``act_bits`` or
    ``input_bits``.

    ``n_inputs`` and ``n_classes`` come from the data (:meth:`for_data`, or filled in by
    :func:`qapbo.train_and_measure`); a spec without them cannot be built, so a network for other
    data never silently gets the jets' 16 inputs and 5 classes.
    """

    n_inputs: int | None = None
    hidden: tuple[int, ...] = (64, 32, 32)
    n_classes: int | None = None
    weight_bits: int | tuple[int, ...] = FLOAT_BITS
    act_bits: int | tuple[int, ...] | None = None
    input_bits: int = FLOAT_BITS
    bn: str | None = None  # None: "affine" for fixed precision, "none" for learned
    precision: str = "fixed"
    init_bits: int = DEFAULT_INIT_BITS
    beta: float = 0.0
    bits_lr: float = DEFAULT_BITS_LR

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise SpecError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.bn is None:
            object.__setattr__(self, "bn", "none" if self.learned else "affine")
        if self.learned:
            self._check_learned()
        else:
            set_ = [k for k, d in (("init_bits", DEFAULT_INIT_BITS), ("beta", 0.0), ("bits_lr", DEFAULT_BITS_LR))
                    if getattr(self, k) != d]
            if set_:
                raise SpecError(f"{', '.join(set_)} only apply to precision \"learned\"; set precision = \"learned\" "
                                "or leave them out")
        hidden = tuple(self.hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise SpecError(f"hidden widths {list(hidden)} must be positive integers")
        for name, low in (("n_inputs", 1), ("n_classes", 2)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise SpecError(f"need at least 1 input and 2 classes, got {self.n_inputs} and {self.n_classes}")
        if self.bn not in BN_MODES:
            raise SpecError(f"unknown BN mode {self.bn!r}: use one of {', '.join(BN_MODES)}")
        wb = _bits_tuple(self.weight_bits, len(hidden) + 1, "weight bits", ())
        ab = _bits_tuple(self.act_bits, len(hidden), "activation bits", wb[: len(hidden)])
        (ib,) = _bits_tuple(self.input_bits, 1, "input bits", ())
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "weight_bits", wb)
        object.__setattr__(self, "act_bits", ab)
        object.__setattr__(self, "input_bits", ib)

    @property
    def learned(self) -> bool:
        """Whether every weight and activation has its own trained format (``precision = "learned"``)."""
        return self.precision == "learned"

    def _check_learned(self) -> None:
        given = [k for k in ("weight_bits", "act_bits", "input_bits")
                 if getattr(self, k) not in (FLOAT_BITS, None) and set(_as_tuple(getattr(self, k))) != {FLOAT_BITS}]
        if given:
            raise SpecError(f"precision \"learned\" learns every weight's and activation's bits: leave "
                            f"{', '.join(given)} unset")
        if self.bn != "none":
            raise SpecError(f"precision \"learned\" has no BatchNorm (its fixed-point formats are trained per neuron): "
                            f"leave bn unset or \"none\", not {self.bn!r}")
        b = self.init_bits
        if isinstance(b, bool) or not isinstance(b, int) or not MIN_INIT_BITS <= b <= MAX_INIT_BITS:
            raise SpecError(f"init_bits is {b!r}: use a whole number of fractional bits from {MIN_INIT_BITS} "
                            f"to {MAX_INIT_BITS} (HGQ2's example starts at {DEFAULT_INIT_BITS})")
        for name, v, low in (("beta", self.beta, "0 or more"), ("bits_lr", self.bits_lr, "a positive number")):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (v >= 0 if name == "beta" else v > 0)
            if not ok:
                raise SpecError(f"{name} is {v!r}: use {low}")
        object.__setattr__(self, "beta", float(self.beta))
        object.__setattr__(self, "bits_lr", float(self.bits_lr))

    @classmethod
    def for_data(cls, data: Any, **kwargs: Any) -> "ModelSpec":
        """A spec with the input and class counts of ``data`` (a :class:`qapbo.JetData`)."""
        return cls(n_inputs=data.n_features, n_classes=data.n_classes, **kwargs)

    def sized_for(self, n_inputs: int, n_classes: int) -> "ModelSpec":
        """This spec for data of ``n_inputs`` features and ``n_classes`` classes; refuses a mismatch."""
        have = (self.n_inputs or n_inputs, self.n_classes or n_classes)
        if have != (n_inputs, n_classes):
            raise SpecError(f"the model has {self.n_inputs} inputs and {self.n_classes} classes but the data has "
                            f"{n_inputs} features and {n_classes} classes; build the spec with "
                            "ModelSpec.for_data(data, ...) or leave n_inputs and n_classes unset")
        return replace(self, n_inputs=n_inputs, n_classes=n_classes)

    def check_sized(self) -> None:
        if self.n_inputs is None or self.n_classes is None:
            raise SpecError("the model spec has no input or class count; build it with ModelSpec.for_data(data, ...) "
                            "or give n_inputs and n_classes: qapbo does not guess the data's shape")

    @property
    def widths(self) -> tuple[int, ...]:
        self.check_sized()
        return (self.n_inputs, *self.hidden, self.n_classes)

    def describe(self) -> str:
        """Short human name, e.g. ``16-64-32-32-5 w6 a6 bn=affine`` or ``16-64-32-32-5 learned f3 beta=1e-05``."""
        if self.learned:
            sizes = (self.n_inputs or "?", *self.hidden, self.n_classes or "?")
            return f"{'-'.join(map(str, sizes))} learned f{self.init_bits} beta={self.beta:g}"
        wb = set(self.weight_bits)
        ab = set(self.act_bits)
        w = f"w{self.weight_bits[0]}" if len(wb) == 1 else "w" + "/".join(map(str, self.weight_bits))
        a = (f"a{self.act_bits[0]}" if len(ab) == 1 else "a" + "/".join(map(str, self.act_bits))) if ab else ""
        i = f" in{self.input_bits}" if self.input_bits != FLOAT_BITS else ""
        sizes = (self.n_inputs or "?", *self.hidden, self.n_classes or "?")
        return f"{'-'.join(map(str, sizes))} {w} {a}{i} bn={self.bn}".replace("  ", " ")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields. A fixed-precision spec leaves out the learned keys (records and checkpoints stay
        as they were); a learned one leaves out the bit widths it does not have."""
        d = asdict(self)
        drop = ("weight_bits", "act_bits", "input_bits") if self.learned else _LEARNED_KEYS
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if k not in drop}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        d = dict(d)
        for k in ("hidden", "weight_bits", "act_bits"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)
