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
