"""Shell completion of option values: model aliases, sampler, preset and style names (read from the
data files, no torch import, so a TAB answers at once)."""

from __future__ import annotations


def _matching(names, incomplete: str) -> list[str]:
    return [name for name in names if name.lower().startswith(incomplete.lower())]


def models(incomplete: str) -> list[str]:
    from genimg.models.resolve import aliases

    return _matching(aliases(), incomplete)


def schedulers(incomplete: str) -> list[str]:
    from genimg.schedulers import schedulers as table

    return _matching(table(), incomplete)


def presets(incomplete: str) -> list[str]:
    from genimg.presets import load_presets

    return _matching(["auto", *load_presets()], incomplete)


def styles(incomplete: str) -> list[str]:
    from genimg.prompting.styles import load_styles

    # --style takes a comma-separated list: complete the last name.
    done, _, last = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    return [prefix + name for name in _matching(load_styles(), last)]
