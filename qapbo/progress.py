"""Progress output that follows the terminal: bars on a TTY, plain lines anywhere else.

Nested tqdm bars redraw with carriage returns and cursor-up sequences; in a log file (a batch
job, ``nohup``, CI) that is thousands of redraws. So ``auto`` draws bars only when stderr is a
terminal and otherwise writes one line per trial, level or epoch summary; ``bars``, ``lines`` and
``none`` force a mode (``--progress`` on the command line).
"""

from __future__ import annotations

import sys
from typing import IO, Any

MODES = ("auto", "bars", "lines", "none")
#: Epochs between two summary lines of ``qapbo train`` in ``lines`` mode.
EPOCH_SUMMARY_EVERY = 10


def resolve(mode: bool | str | None = "auto", stream: IO[str] | None = None) -> str:
    """``bars``, ``lines`` or ``none`` for ``mode``; ``auto`` (or True) asks whether ``stream`` is a TTY.

    ``False`` means ``lines``: what ``progress=False`` meant before there were modes.
    """
    if mode is None or mode is True:
        mode = "auto"
    elif mode is False:
        return "lines"
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    stream = stream if stream is not None else sys.stderr
    try:
        return "bars" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return "lines"


def bar(mode: str, **kwargs: Any):
    """A tqdm bar on stderr in ``bars`` mode, else a disabled one (same interface, no output)."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=mode != "bars", **kwargs)
