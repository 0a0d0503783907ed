"""The training budget and hyper-parameters, defaults and validation in one place.

The command line and study files take their defaults from :class:`TrainConfig`; it is free of torch
so that reading a study file imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from qapbo.errors import SpecError


@dataclass(frozen=True)
class TrainConfig:
    """Training budget and hyper-parameters; defaults are PROTOCOL's."""

    epochs: int = 250
    lr: float = 1e-4
    batch_size: int = 1024
    l1: float = 1e-4
    patience: int = 10
    seed: int = 0
    threads: int = 1  # one thread is as fast as two for these nets, and leaves a core to a 2nd worker

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "a positive number"),
            ("batch_size", self.batch_size >= 2, "at least 2 (BatchNorm needs two rows)"),
            ("l1", self.l1 >= 0, "zero or positive"),
            ("patience", self.patience >= 1, "at least 1"),
            ("threads", self.threads >= 1, "at least 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise SpecError(f"{name} is {getattr(self, name)!r}: use {want}")

    def to_dict(self) -> dict:
        return asdict(self)


#: Adam's rates of the learned-precision chain (``[learned]``): the weights at HGQ2's 5e-3 (on the
#: quickstart's validation front the chain then needs half the EBOPs of 1e-3 at validation AUC 0.85),
#: the bits at 2e-2 (README, "Learned per-weight precision": HGQ2's 5e-3 moves the bits too slowly).
LEARNED_LR = 5e-3
LEARNED_BITS_LR = 2e-2


@dataclass(frozen=True)
class LearnedSettings:
    """What one learned-precision chain trains (``[learned]``, :mod:`qapbo.study.learned`).

    The counterpart of :class:`qapbo.train.hgq.HgqSettings` for qapbo's own learned precision
    (:class:`qapbo.nn.learned.LearnedTagger`): the same net (``hidden``), epochs and beta schedule
    (a log ramp ``beta0`` -> ``beta1`` over all epochs, or one run per fixed beta in ``betas``), with
    qapbo's knobs: ``init_bits`` (every format's initial fractional bits), ``lr`` (the weights),
    ``bits_lr`` (the bits) and ``batch_size``. ``backup_every``: epochs between two saved states
    (a kill loses at most this many). Torch-free, so that reading a study file imports nothing heavy.
    """

    hidden: tuple[int, ...] = (64, 32, 32)
    epochs: int = 800
    batch_size: int = 1024
    lr: float = LEARNED_LR
    bits_lr: float = LEARNED_BITS_LR
    init_bits: int = 3
    beta0: float = 5e-7
    beta1: float = 1e-3
    betas: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    backup_every: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden", "betas", "seeds"):  # lists from TOML become tuples: the object hashes
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))

        def whole(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not self.hidden or not all(whole(h) and h >= 1 for h in self.hidden):
            raise SpecError(f"learned hidden is {self.hidden!r}: give one or more layer widths >= 1, e.g. [64, 32, 32]")
        for name in ("epochs", "backup_every"):
            if not whole(getattr(self, name)) or getattr(self, name) < 1:
                raise SpecError(f"learned {name} is {getattr(self, name)!r}: use a whole number >= 1")
        if not whole(self.batch_size) or self.batch_size < 2:
            raise SpecError(f"learned batch_size is {self.batch_size!r}: use a whole number >= 2")
        from qapbo.nn.spec import MAX_INIT_BITS, MIN_INIT_BITS

        if not whole(self.init_bits) or not MIN_INIT_BITS <= self.init_bits <= MAX_INIT_BITS:
            raise SpecError(f"learned init_bits is {self.init_bits!r}: use a whole number of fractional bits "
                            f"from {MIN_INIT_BITS} to {MAX_INIT_BITS}")
        for name in ("lr", "bits_lr"):
            if not number(getattr(self, name)) or not getattr(self, name) > 0:
                raise SpecError(f"learned {name} is {getattr(self, name)!r}: use a learning rate > 0, e.g. 1e-3")
        if self.betas is not None and not self.betas:
            raise SpecError("learned betas is empty: give one or more fixed betas > 0, or leave betas out for the "
                            "beta0-beta1 ramp")
        what = "beta0 and beta1" if self.betas is None else "betas"
        for b in (self.beta0, self.beta1) if self.betas is None else self.betas:
            if not number(b) or b <= 0:
                raise SpecError(f"learned {what} hold {b!r}: every beta must be > 0 (the EBOPs penalty weight, "
                                "e.g. 1e-5)")
        if not self.seeds or not all(whole(s) and s >= 0 for s in self.seeds):
            raise SpecError(f"learned seeds is {self.seeds!r}: give one or more whole numbers >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError(f"learned seeds {list(self.seeds)} repeat a seed: give each seed once")

    @classmethod
    def from_dict(cls, d: dict) -> "LearnedSettings":
        """Settings from a mapping (a study file's ``[learned]`` table); an unknown key is an error."""
        known = [f for f in cls.__dataclass_fields__]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise SpecError(f"unknown learned setting{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}: use {', '.join(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def runs(self) -> list[tuple[str, float | None]]:
        """(name, fixed beta or None for the ramp) of every run one seed makes, as HGQ2's runs are named."""
        if self.betas is None:
            return [("ramp", None)]
        return [(f"beta={b:g}", float(b)) for b in self.betas]
