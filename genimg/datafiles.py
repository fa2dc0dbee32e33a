"""Where genimg's own data files live, in a wheel and in a source checkout.

The wheel carries the top-level ``presets/`` and ``prompts/`` folders inside the package
(``genimg/presets``); an editable install or a plain checkout finds them beside the package.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder of user-editable data called ``name`` (``presets`` or ``prompts``)."""
    packaged = PACKAGE_DIR / name
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parent / name


@lru_cache(maxsize=None)
def load_toml(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def read_toml(path: Path) -> dict:
    """Parse a TOML file the user gave (not cached: the user may edit it between calls); a file that is
    not valid TOML is a one-line error naming the file and the line."""
    from genimg.errors import UsageError

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML: {e}; fix or remove the file") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


TOMLDecodeError = tomllib.TOMLDecodeError
