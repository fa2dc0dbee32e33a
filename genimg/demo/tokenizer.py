"""The demo model's tokenizer, built from nothing: CLIP's tokenizer format with one token per printable
ASCII character (and its end-of-word form), plus whole words — for each word, BPE merges that join
its characters left to right. The tiny test models use the same builder without words."""

from __future__ import annotations

import json
from pathlib import Path

CHARS = [chr(c) for c in range(33, 127)]


def clip_tokenizer(folder: Path, words: tuple[str, ...] = ()):
    """A ``CLIPTokenizer`` saved in ``folder`` (vocab.json + merges.txt) and returned."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merges.append(f"{current} {piece}")
            current += piece
            vocab.setdefault(current, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in dict.fromkeys(merges)))
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
