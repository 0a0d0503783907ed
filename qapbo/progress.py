"""Progress output that follows the terminal: bars on a TTY, plain lines anywhere else.

Nested tqdm bars redraw with carriage returns and cursor-up sequences; in a log file (a batch
job, ``nohup``, CI) that is thousands of redraws. So ``auto`` draws bars only when stderr is a
terminal and otherwise writes one line per trial, level or epoch summary; ``bars``, ``lines`` and
``none`` force a mode (``--progress`` on the command line).
"""

from __future__ import annotations

import sys
from typing import IO, Any, Callable

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


def reporter(progress: bool | str, log: Callable[[str], None] | None) -> tuple[str, Callable[[str], None]]:
    """The progress mode and the line writer of a run: ``log`` (default: stderr), silent in ``none``.

    One rule for every command: ``progress`` as :func:`qapbo.progress.resolve` reads it.
    """
    mode = resolve(progress)
    if mode == "none":
        return mode, lambda msg: None
    return mode, log or (lambda msg: print(msg, file=sys.stderr, flush=True))


def bar(mode: str, **kwargs: Any):
    """A tqdm bar on stderr in ``bars`` mode, else a disabled one (same interface, no output)."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=mode != "bars", **kwargs)


class LevelBars:
    """Progress of QAP-like runs: a bar over levels and one over the epochs of the current level (stderr)."""

    def __init__(self, total: int, done: int, epochs: int, enabled: bool):
        self.enabled = enabled
        self.levels = self.epochs = None
        self.max_epochs = epochs
        if enabled:
            from tqdm import tqdm

            self._tqdm = tqdm
            self.levels = tqdm(total=total, initial=done, desc="levels", unit="level", file=sys.stderr, position=0)

    def epoch(self, desc: str, log) -> None:
        if not self.enabled:
            return
        if self.epochs is None or self.epochs.desc != desc:
            if self.epochs is not None:
                self.epochs.close()
            self.epochs = self._tqdm(total=self.max_epochs, desc=desc, unit="epoch", file=sys.stderr,
                                     position=1, leave=False)
        self.epochs.update(1)
        self.epochs.set_postfix(val_loss=f"{log.val_loss:.4f}")

    def level_done(self, msg: str, say) -> None:
        if self.enabled:
            if self.epochs is not None:
                self.epochs.close()
                self.epochs = None
            self.levels.update(1)
            self._tqdm.write(msg, file=sys.stderr)
        else:
            say(msg)

    def close(self) -> None:
        for bar in (self.epochs, self.levels):
            if bar is not None:
                bar.close()
