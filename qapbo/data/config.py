"""What jet data a study asks for: the feature and class names, the sources, and :class:`DataConfig`.

Kept free of numpy and scikit-learn so that the command line can offer the sources and validate a
study file before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from qapbo.errors import DataError

#: The 16 high-level features of the hls4ml jet-tagging task, in PROTOCOL order.
FEATURES: tuple[str, ...] = (
    "zlogz", "c1_b0_mmdt", "c1_b1_mmdt", "c1_b2_mmdt", "c2_b1_mmdt", "c2_b2_mmdt",
    "d2_b1_mmdt", "d2_b2_mmdt", "d2_a1_b1_mmdt", "d2_a1_b2_mmdt", "m2_b1_mmdt",
    "m2_b2_mmdt", "n2_b1_mmdt", "n2_b2_mmdt", "mass_mmdt", "multiplicity",
)

#: Jet classes: gluon, light quark, W, Z, top.
CLASSES: tuple[str, ...] = ("g", "q", "w", "z", "t")

SOURCES = ("synthetic-jets", "pythia-jets", "openml", "hdf5", "table")

GENERATED = ("synthetic-jets", "pythia-jets")  # sources whose size is n_rows

OPENML_NAME = "hls4ml_lhc_jets_hlf"

SYNTHETIC_VERSION = "synthetic-jets-v1"


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is split.

    ``path`` is the file or directory for ``hdf5`` and ``table``; ``data_home`` the OpenML cache.
    ``test_path`` (hdf5, table) gives a separate test set, as the Zenodo ``val`` archive was used
    in the reference; the validation split is then taken from ``path`` alone.
    ``max_rows`` keeps a stratified, seeded subsample (handy for quick studies on real data).
    ``pythia-jets`` makes (once, then reads from its cache) ``n_rows`` physics-generated jets for
    ``seed``: the cache lives under ``data_home`` (default ``$QAPBO_DATA_HOME`` or ~/.cache/qapbo);
    ``path`` may instead name a set made by ``qapbo data generate --out DIR``.
    """

    source: str = "synthetic-jets"
    path: str | None = None
    test_path: str | None = None
    data_home: str | None = None
    label_column: str = "class"
    n_rows: int = 100_000
    max_rows: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    folds: int = 1  # k > 1: k-fold cross-validation of the non-test rows; ``fold`` is validation
    fold: int = 0
    randomize_labels: float = 0.0  # share of training rows (train + validation) given a random label
    # pythia-jets generation options (qapbo.data.pythia.OPTIONS); None: the generator's default
    detector: str | None = None
    selection: str | None = None
    radius: float | None = None
    zlogz: str | None = None
    undefined: str | None = None

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise DataError(f"unknown data source {self.source!r}: use one of {', '.join(SOURCES)}")
        if self.source in ("hdf5", "table") and not self.path:
            raise DataError(f"data source {self.source!r} needs a path: pass --data-path FILE")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 < v < 0.5:
                raise DataError(f"{name} is {v}: use a fraction between 0 and 0.5")
        if self.source in GENERATED and self.n_rows < 100:
            raise DataError(f"n_rows is {self.n_rows}: ask for at least 100 {self.source}")
        if self.folds < 1 or not 0 <= self.fold < self.folds:
            raise DataError(f"fold {self.fold} of {self.folds} folds: use folds >= 1 and 0 <= fold < folds")
        if not 0.0 <= self.randomize_labels < 1.0:
            raise DataError(f"randomize_labels is {self.randomize_labels}: use a share in [0, 1)")
        given = [k for k in ("detector", "selection", "radius", "zlogz", "undefined") if getattr(self, k) is not None]
        if given and self.source != "pythia-jets":
            raise DataError(f"{', '.join(given)} only applies to pythia-jets (it sets how jets are generated); "
                            f"remove it for source {self.source!r}")
        if self.max_rows is not None and self.max_rows < 100:
            raise DataError(f"max_rows is {self.max_rows}: use at least 100 rows or leave it unset")
