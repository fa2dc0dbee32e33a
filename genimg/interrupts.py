"""Ctrl-C for long work: a first press asks to stop at the next safe point (after the current image, the
current training step), so what is finished is kept and said; a second one stops at once."""

from __future__ import annotations

import signal


class StopFlag:
    """The first Ctrl-C asks to stop after the current images; a second one stops at once."""

    def __init__(self):
        self.stop = False
        self._previous = None

    def __enter__(self):
        def on_sigint(signum, frame):
            if self.stop:
                raise KeyboardInterrupt
            self.stop = True

        try:
            self._previous = signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread: no signal handling, Ctrl-C works as usual
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
