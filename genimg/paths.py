"""Per-user locations: genimg's config, cache and data folders, where each platform keeps them
(platformdirs: ~/.config/genimg, ~/.cache/genimg and ~/.local/share/genimg on Linux, ~/Library/… on
macOS, %APPDATA% on Windows), or wherever GENIMG_CONFIG_DIR / GENIMG_CACHE_DIR / GENIMG_DATA_DIR say."""

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


def state_dir() -> Path:
    """Where a running `genimg serve` leaves its address for the CLI to find (GENIMG_STATE_DIR overrides)."""
    if "GENIMG_STATE_DIR" in os.environ:
        return Path(os.environ["GENIMG_STATE_DIR"])
    import platformdirs

    return Path(platformdirs.user_state_dir("genimg", appauthor=False))


def data_dir() -> Path:
    """Where downloaded single-file checkpoints go (`genimg models download URL`)."""
    if "GENIMG_DATA_DIR" in os.environ:
        return Path(os.environ["GENIMG_DATA_DIR"])
    import platformdirs

    return Path(platformdirs.user_data_dir("genimg", appauthor=False))
