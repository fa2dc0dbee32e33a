"""The one exception type users see.

Raised deep in the library with a message that says what is wrong and how to fix it, rendered once
at the CLI edge as a single line on stderr. ``exit_code`` follows the shell convention: 2 for bad
input (usage), 1 for a failure at run time.
"""

from __future__ import annotations

USAGE = 2
RUNTIME = 1


class GenimgError(Exception):
    """An error meant for the user: ``str(err)`` is the whole message."""

    exit_code = RUNTIME

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(GenimgError):
    """The request itself is wrong (bad flag value, missing file, unknown name)."""

    exit_code = USAGE


class RunFailure(GenimgError):
    """The request was fine but running it failed (out of memory, NaN image, broken weights)."""

    exit_code = RUNTIME


class DiskFull(RunFailure):
    """No space left where genimg writes: a batch stops at once rather than fail image after image."""


class Interrupted(GenimgError):
    """Ctrl-C: the message says what was finished and what was not."""

    exit_code = 130


def is_out_of_memory(error: BaseException) -> bool:
    """A device out of memory: torch's OutOfMemoryError (CUDA), or the RuntimeError MPS raises. Such an
    error always takes the out-of-memory path (a smaller preset, --auto-fallback), whatever was loading."""
    return (any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__)
            or (isinstance(error, RuntimeError) and "out of memory" in str(error).lower()))


def weight_file_errors() -> tuple[type, ...]:
    """What loading a damaged, foreign or mismatched weights file raises: file and format errors, keys
    and shapes that do not fit (PyTorch's size mismatch is a RuntimeError), pickle refused by the
    weights-only loader. Catch these, after letting :func:`is_out_of_memory` errors through."""
    import pickle

    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError, SafetensorError)


def did_you_mean(name: str, choices) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
