"""Per-user locations: genimg's config and cache folders (XDG on Linux, overridable by env)."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    if "GENIMG_CONFIG_DIR" in os.environ:
        return Path(os.environ["GENIMG_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "genimg"


def cache_dir() -> Path:
    if "GENIMG_CACHE_DIR" in os.environ:
        return Path(os.environ["GENIMG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genimg"
