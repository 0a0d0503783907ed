"""User-facing errors.

Every problem a user can fix (bad data, a bad option, a bit width out of range) raises
:class:`QapboError` with one sentence naming the problem and the fix. The CLI turns it into a
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
