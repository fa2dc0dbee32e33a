"""Wildcards and combinatorial prompts through dynamicprompts: ``{red|green}`` and ``__colors__``.

``__name__`` reads ``name.txt`` (one entry a line) from the user's folder (``~/.config/genimg/wildcards``),
then the ``prompts/`` folder shipped with genimg (styles, subjects, negative-prompt templates).
"""

from __future__ import annotations

from pathlib import Path

from genimg.errors import UsageError


def default_dirs() -> list[Path]:
    from genimg.datafiles import data_dir
    from genimg.paths import config_dir

    return [config_dir() / "wildcards", data_dir("prompts")]


def has_syntax(prompt: str) -> bool:
    return "{" in prompt or "__" in prompt


def expand(prompt: str, combinatorial: bool, repeat: int, seed: int, wildcard_dirs=(), where: str = "") -> list[str]:
    """The prompts one row stands for: every combination, or ``repeat`` random picks fixed by ``seed``."""
    if not has_syntax(prompt):
        return [prompt] * max(1, repeat)
    try:
        from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
        from dynamicprompts.wildcards import WildcardManager
    except ImportError:
        raise UsageError("wildcards need dynamicprompts: pip install dynamicprompts") from None
    manager = WildcardManager(_merged_dir(list(wildcard_dirs) or default_dirs()))
    try:
        if combinatorial:
            prompts = CombinatorialPromptGenerator(manager).generate(prompt, max_prompts=10_000)
            prompts = [p for p in prompts for _ in range(max(1, repeat))]
        else:
            prompts = RandomPromptGenerator(manager, seed=seed).generate(prompt, num_images=max(1, repeat))
    except Exception as e:  # dynamicprompts raises plain exceptions for bad syntax
        raise UsageError(f"{where}: cannot expand {prompt!r}: {e}") from None
    missing = [p for p in prompts if "__" in p]
    if missing:
        raise UsageError(f"{where}: unknown wildcard in {prompt!r}; wildcard files live in "
                         f"{', '.join(str(d) for d in (wildcard_dirs or default_dirs()))}")
    return [str(p) for p in prompts]


def _merged_dir(dirs: list[Path]) -> Path:
    """dynamicprompts reads one folder: the first that exists among ours (user's first)."""
    existing = [d for d in dirs if d.is_dir()]
    if len(existing) <= 1:
        return existing[0] if existing else dirs[-1]
    import tempfile

    merged = Path(tempfile.mkdtemp(prefix="genimg-wildcards-"))
    for folder in reversed(existing):  # the user's files, copied last, win
        for path in folder.rglob("*.txt"):
            target = merged / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return merged
