"""Per-user locations: genimg's config and cache folders, where each platform keeps them (platformdirs:
~/.config/genimg and ~/.cache/genimg on Linux, ~/Library/… on macOS, %APPDATA% on Windows), or
wherever GENIMG_CONFIG_DIR / GENIMG_CACHE_DIR say."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    if "GENIMG_CONFIG_DIR" in os.environ:
        return Path(os.environ["GENIMG_CONFIG_DIR"])
    import platformdirs

    return Path(platformdirs.user_config_dir("genimg", appauthor=False))


def cache_dir() -> Path:
    if "GENIMG_CACHE_DIR" in os.environ:
        return Path(os.environ["GENIMG_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("genimg", appauthor=False))
