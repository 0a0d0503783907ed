"""User-facing errors.

Every problem a user can fix (bad data, a bad option, a bit width out of range) raises
:class:`QapboError` (one subclass per layer, all here, so any module can raise any of them without
importing the layer that defines it) with one sentence naming the problem and the fix. The CLI turns it into a
one-line message and exit status 2; the library never prints or exits itself.
"""

from __future__ import annotations


class QapboError(Exception):
    """A problem in the user's input, with a message that says how to fix it."""


class DataError(QapboError):
    """The data could not be read or is not fit for training."""


class SpecError(QapboError):
    """A model or training specification is invalid."""


class TrainingError(Exception):
    """Training produced a non-finite loss; the run (or trial) failed, it has no valid result."""


class StudyFileError(QapboError):
    """The study file is malformed or inconsistent."""


class SpaceError(StudyFileError):
    """The search space or objectives are invalid."""


class StorageError(QapboError):
    """The storage cannot be opened or written."""


class NoSearchError(QapboError):
    """The search whose front is to be refined has no stored results yet."""


class NoResultsError(QapboError):
    """The storage holds no finished trials to compare."""


class CostError(QapboError):
    """A cost cannot be measured as asked (e.g. its extra is missing)."""


class FixedPointError(QapboError):
    """A trained network has no exact fixed-point form at the asked precision (e.g. a float layer)."""


class ExportError(QapboError):
    """A stored trial cannot be exported as asked, or its export would not reproduce it."""


class Hls4mlError(QapboError):
    """hls4ml (or what it needs: g++, da4ml) is missing, or its conversion cannot be configured."""


class HgqError(QapboError):
    """HGQ2 cannot run as asked: its extra is missing, keras has another backend, or a workdir clashes."""


class HgqSettingsError(HgqError, SpecError):
    """An HGQ2 setting is invalid."""
