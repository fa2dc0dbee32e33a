"""Wildcards and combinatorial prompts through dynamicprompts: ``{red|green}`` and ``__colors__``.

``__name__`` reads ``name.txt`` (one entry a line) from the user's folder (``~/.config/genimg/wildcards``),
then the ``prompts/`` folder shipped with genimg (styles, subjects, negative-prompt templates).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from genimg.errors import UsageError


def default_dirs() -> list[Path]:
    from genimg.datafiles import data_dir
    from genimg.paths import config_dir

    return [config_dir() / "wildcards", data_dir("prompts")]


def has_syntax(prompt: str) -> bool:
    return "{" in prompt or "__" in prompt


class Wildcards:
    """Expands prompts over the wildcard folders; a context manager, because dynamicprompts reads one
    folder and several are merged into a temporary one, removed when the batch is planned."""

    def __init__(self, dirs=()):
        self.dirs = list(dirs) or default_dirs()
        self._manager = None
        self._merged: Path | None = None

    def __enter__(self) -> "Wildcards":
        return self

    def __exit__(self, *exc) -> None:
        if self._merged is not None:
            shutil.rmtree(self._merged, ignore_errors=True)
            self._merged = None

    def expand(self, prompt: str, combinatorial: bool, repeat: int, seed: int, where: str = "") -> list[str]:
        """The prompts one row stands for: every combination, or ``repeat`` random picks fixed by ``seed``."""
        if not has_syntax(prompt):
            return [prompt] * max(1, repeat)
        try:
            from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
        except ImportError:
            raise UsageError("wildcards need dynamicprompts: pip install dynamicprompts") from None
        import logging

        logging.getLogger("dynamicprompts").setLevel(logging.ERROR)  # its own warning would come before ours
        manager = self._wildcard_manager()
        try:
            if combinatorial:
                prompts = CombinatorialPromptGenerator(manager).generate(prompt, max_prompts=10_000)
                prompts = [p for p in prompts for _ in range(max(1, repeat))]
            else:
                prompts = RandomPromptGenerator(manager, seed=seed).generate(prompt, num_images=max(1, repeat))
        except Exception as e:  # dynamicprompts raises plain exceptions for bad syntax
            raise UsageError(f"{where}: cannot expand {prompt!r}: {e}") from None
        if any("__" in p for p in prompts):
            raise UsageError(f"{where}: unknown wildcard in {prompt!r}; wildcard files live in "
                             f"{', '.join(str(d) for d in self.dirs)}")
        return [str(p) for p in prompts]

    def _wildcard_manager(self):
        from dynamicprompts.wildcards import WildcardManager

        if self._manager is None:
            self._manager = WildcardManager(self._folder())
        return self._manager

    def _folder(self) -> Path:
        """dynamicprompts reads one folder: ours merged into one (the user's files win) when there are several."""
        existing = [d for d in self.dirs if d.is_dir()]
        if len(existing) <= 1:
            return existing[0] if existing else self.dirs[-1]
        import tempfile

        self._merged = Path(tempfile.mkdtemp(prefix="genimg-wildcards-"))
        for folder in reversed(existing):  # the user's files, copied last, win
            for path in folder.rglob("*.txt"):
                target = self._merged / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        return self._merged
