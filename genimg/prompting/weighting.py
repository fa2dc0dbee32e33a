"""A1111's prompt weighting syntax, read as A1111 reads it.

``(word)`` multiplies the attention to ``word`` by 1.1, ``((word))`` by 1.21, ``(word:1.5)`` by 1.5,
``[word]`` divides it by 1.1; weights multiply through nesting; ``\\(`` and ``\\)`` are literal
brackets; ``BREAK`` starts a new 75-token chunk. The rules follow A1111's ``parse_prompt_attention``
(modules/prompt_parser.py): an unclosed bracket weights the rest of the prompt, a stray closing one
is kept as text. genimg adds warnings for those and for ``AND`` (composable diffusion, which genimg
does not do: the word stays in the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND = 1.1
SQUARE = 1 / 1.1
BREAK = "BREAK"

_ATTENTION = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|
\(|\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|]|
[^\\()\[\]:]+|
:
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_SYNTAX = re.compile(r"[()\[\]\\]|\bBREAK\b|\bAND\b")


@dataclass(frozen=True)
class Fragment:
    text: str
    weight: float  # 1.0 plain; BREAK fragments have weight -1

    @property
    def is_break(self) -> bool:
        return self.weight == -1 and self.text == BREAK


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def has_syntax(prompt: str) -> bool:
    return bool(_SYNTAX.search(prompt))


def parse(prompt: str, warn=None) -> list[Fragment]:
    """(text, weight) runs of ``prompt``, neighbours of equal weight merged; never raises."""
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []
    stray = []
    not_numbers = []

    def multiply(start: int, factor: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= factor

    for match in _ATTENTION.finditer(prompt):
        text, weight = match.group(0), match.group(1)
        if weight is not None and not _is_number(weight):
            # "(red:.)": no number where A1111 expects one (A1111 itself fails here); the colon and what
            # follows stay text, the brackets weigh as plain ones
            not_numbers.append(text.strip())
            res.append([text.replace(")", ""), 1.0])
            if round_open:
                multiply(round_open.pop(), ROUND)
            continue
        if text.startswith("\\"):
            res.append([text[1:], 1.0])
        elif text == "(":
            round_open.append(len(res))
        elif text == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            multiply(round_open.pop(), float(weight))
        elif text == ")" and round_open:
            multiply(round_open.pop(), ROUND)
        elif text == "]" and square_open:
            multiply(square_open.pop(), SQUARE)
        else:
            if text in (")", "]") or (weight is not None and not round_open):
                stray.append(text.strip())
            for i, part in enumerate(_BREAK.split(text)):
                if i:
                    res.append([BREAK, -1])
                res.append([part, 1.0])
    for start in round_open:
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, SQUARE)
    if warn and (round_open or square_open or stray):
        warn(f"unbalanced brackets in the prompt {prompt!r}: read as A1111 does (an open bracket weights the rest, "
             "a stray closing one is text); write \\( or \\) for literal brackets")
    if warn and not_numbers:
        warn(f"{not_numbers[0]!r} in the prompt {prompt!r} has no number after its colon: read as text in plain "
             "brackets (weight 1.1); write (word:1.2) for a weight")
    if warn and re.search(r"\bAND\b", prompt):
        warn("AND (composable diffusion) is not supported: the word is kept as part of the prompt")
    if not res:
        res = [["", 1.0]]
    merged = [res[0]]
    for text, weight in res[1:]:
        if weight == merged[-1][1] and weight != -1 and merged[-1][0] != BREAK:
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    return [Fragment(text, weight) for text, weight in merged]


def plain_text(prompt: str) -> str:
    """The prompt with its weighting syntax removed (for models that cannot weight: FLUX's T5)."""
    return " ".join(f.text.strip() for f in parse(prompt) if not f.is_break and f.text.strip())
