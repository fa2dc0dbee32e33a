"""Ctrl-C for long work: a first press asks to stop at the next safe point (after the current image, the
current training step), so what is finished is kept and said; a second one stops at once."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
import sys
import threading
import time

_ACTIVE_FLAGS = [0]  # StopFlags in force: while one is, the first Ctrl-C is a request, not a stop


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
            _ACTIVE_FLAGS[0] += 1
        except ValueError:  # not the main thread: no signal handling, Ctrl-C works as usual
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            _ACTIVE_FLAGS[0] -= 1


@contextmanager
def stops_by_itself():
    """Work that stops on Ctrl-C its own way (a server shutting down): the watchdog acts on a second press."""
    _ACTIVE_FLAGS[0] += 1
    try:
        yield
    finally:
        _ACTIVE_FLAGS[0] -= 1


def stop_promptly_on_ctrl_c(grace: float = 3.0) -> None:
    """Make Ctrl-C stop the process even inside one long torch call (a step at a size the machine can
    hardly hold runs minutes in C, where Python runs no signal handler). The C-level handler writes each
    signal to a pipe whatever the main thread is doing; a thread reads it, and if the process has not
    stopped on its own ``grace`` seconds after the Ctrl-C that means "stop" (the first, or the second
    while a :class:`StopFlag` is asking to finish the current image or step), exits with 130. Every file
    genimg writes is written whole or not at all, so stopping there leaves nothing half-written."""
    if threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()
    try:
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (OSError, ValueError, AttributeError):  # Windows wants a socket here: Ctrl-C works as Python's own
        os.close(read)
        os.close(write)
        return

    def watch():
        presses = 0
        while True:
            data = os.read(read, 64)
            presses += data.count(bytes([signal.SIGINT]))
            if presses and presses >= 1 + (_ACTIVE_FLAGS[0] > 0):
                time.sleep(grace)
                sys.stderr.write("genimg: interrupted inside a long step: stopped there; every file already "
                                 "written is complete, nothing is half-written\n")
                sys.stderr.flush()
                os._exit(130)

    threading.Thread(target=watch, name="genimg-ctrl-c", daemon=True).start()


class FinishEarly(Exception):
    """Raised by a progress callback at a denoising step: the images are finished as far as they got — the
    remaining steps skipped, the latents decoded — and nothing more is made (A1111's interrupt)."""
