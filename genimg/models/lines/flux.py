"""FLUX.1: what the line needs beyond its data."""

from __future__ import annotations


def cut_prompt(pipe, text: str, limit: int) -> str | None:
    """What T5 does not read of ``text`` (CLIP's pooled summary is cut at 77 tokens anyway)."""
    ids = pipe.tokenizer_2(text, add_special_tokens=True).input_ids
    if len(ids) <= limit:
        return None
    return pipe.tokenizer_2.decode(ids[limit - 1:-1], skip_special_tokens=True)
