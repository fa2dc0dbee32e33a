"""Named styles in A1111's ``styles.csv`` format: ``name,prompt,negative_prompt``, the prompt holding a
``{prompt}`` placeholder (a style without one is appended after a comma, as A1111 does).

Styles ship in ``prompts/styles.csv``; any ``*.csv`` in the user's ``styles/`` config folder adds to
them (a user's style of the same name wins), and an A1111 ``styles.csv`` can be dropped there as it is.
Each family has a default negative template (``negative-sd``, ``negative-sdxl``) that
``--negative-template default`` applies.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError, did_you_mean

@dataclass(frozen=True)
class Style:
    name: str
    prompt: str
    negative: str
    source: str

    def apply(self, prompt: str, negative: str) -> tuple[str, str]:
        return _merge(self.prompt, prompt), _merge(self.negative, negative)


def _merge(style: str, text: str) -> str:
    """A1111's rule, for the prompt and the negative alike: the style's ``{prompt}`` placeholder takes the
    user's text; a style without one is appended after a comma."""
    if "{prompt}" in style:
        return style.replace("{prompt}", text)
    return ", ".join(part for part in (text, style) if part)


def style_files() -> list[Path]:
    from genimg.datafiles import data_dir
    from genimg.paths import config_dir

    user = config_dir() / "styles"
    return [data_dir("prompts") / "styles.csv", *(sorted(user.glob("*.csv")) if user.is_dir() else [])]


def load_styles() -> dict[str, Style]:
    styles: dict[str, Style] = {}
    for path in style_files():
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "name" not in reader.fieldnames or "prompt" not in reader.fieldnames:
                raise UsageError(f"{path}: a styles file needs a header with name, prompt and negative_prompt (A1111's styles.csv)")
            for row in reader:
                if row.get("name"):
                    styles[row["name"].strip()] = Style(row["name"].strip(), row.get("prompt") or "",
                                                        row.get("negative_prompt") or "", str(path))
    return styles


def apply_styles(names, prompt: str, negative: str, family: str | None = None) -> tuple[str, str]:
    """``prompt`` and ``negative`` with each named style applied in turn (``default`` is the family's
    negative template)."""
    table = load_styles()
    for name in names:
        if name == "default":
            from genimg.models.families import FAMILIES

            name = FAMILIES[family].negative_style if family else ""
        if not name:
            continue
        if name not in table:
            raise UsageError(f"unknown style {name!r}{did_you_mean(name, table)}; `genimg styles` lists them")
        prompt, negative = table[name].apply(prompt, negative)
    return prompt, negative
