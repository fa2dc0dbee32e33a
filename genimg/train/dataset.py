"""Training images and their captions, and aspect-ratio buckets.

Three layouts are read: a folder of images with same-name ``.txt``/``.caption`` files (kohya's
``N_name`` sub-folders repeat their images N times), a Hugging Face imagefolder with
``metadata.jsonl`` (``file_name`` and ``text``), or any images with one ``--caption`` for all.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genimg.errors import UsageError
from genimg.inputs import IMAGE_SUFFIXES

_KOHYA = re.compile(r"^(\d+)_(.+)$")


@dataclass
class Example:
    path: Path
    caption: str | None  # None until checked: every image needs one
    repeats: int = 1
    is_prior: bool = False  # a class image for prior preservation


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def collect(dataset: Path, caption: str | None, repeats: int) -> list[Example]:
    if not dataset.is_dir():
        raise UsageError(f"dataset {dataset} is not a folder")
    metadata = dataset / "metadata.jsonl"
    if metadata.is_file():
        examples = []
        for n, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                examples.append(Example(dataset / row["file_name"], caption or row.get("text") or row.get("caption") or "", repeats))
            except (json.JSONDecodeError, KeyError) as e:
                raise UsageError(f"{metadata}:{n}: expected a JSON object with file_name and text ({e})") from None
        return _require_captions(examples, caption)
    groups = [(dataset, repeats)]
    for sub in sorted(p for p in dataset.iterdir() if p.is_dir()):
        match = _KOHYA.match(sub.name)
        groups.append((sub, int(match.group(1)) if match else repeats))
    examples = []
    for folder, n in groups:
        for image in _images(folder):
            text = caption
            for suffix in (".txt", ".caption"):
                sidecar = image.with_suffix(suffix)
                if text is None and sidecar.is_file():
                    text = sidecar.read_text(encoding="utf-8").strip()
            examples.append(Example(image, text, n))
    if not examples:
        raise UsageError(f"dataset {dataset} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return _require_captions(examples, caption)


def _require_captions(examples: list[Example], caption: str | None) -> list[Example]:
    missing = [e.path.name for e in examples if e.caption is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"{len(missing)} images have no caption file (.txt or .caption): {shown}; "
                         "add them, or give one caption for all with --caption")
    return examples


def load_images(examples: list[Example], strict: bool, warn: Callable[[str], None]) -> list[tuple[Example, object]]:
    """(example, RGB image) pairs; unreadable files are skipped with a warning, or stop with ``strict``."""
    from PIL import Image, UnidentifiedImageError

    loaded = []
    for example in examples:
        try:
            with Image.open(example.path) as im:
                loaded.append((example, im.convert("RGB")))
        except (OSError, UnidentifiedImageError) as e:
            if strict:
                raise UsageError(f"cannot read training image {example.path} ({e}); remove it or drop --strict") from None
            warn(f"skipping unreadable image {example.path.name}")
    if not loaded:
        raise UsageError("no readable training images")
    return loaded


def buckets(resolution: int, step: int) -> list[tuple[int, int]]:
    """(width, height) pairs of about resolution² pixels, multiples of ``step``, aspect 1:2 to 2:1."""
    sizes = set()
    w = resolution // 2 // step * step or step
    while w <= resolution * 2:
        h = int(resolution * resolution / w) // step * step
        if h >= step and 0.5 <= w / h <= 2:
            sizes.add((w, h))
        w += step
    sizes.add((resolution, resolution))
    return sorted(sizes)


def fit_to_bucket(image, sizes: list[tuple[int, int]], center_crop: bool, resolution: int):
    """The image resized to cover its nearest-aspect bucket (or a square) and centre-cropped."""
    from PIL import Image, ImageOps

    if center_crop:
        size = (resolution, resolution)
    else:
        aspect = image.width / image.height
        size = min(sizes, key=lambda s: abs(s[0] / s[1] - aspect))
    return ImageOps.fit(image, size, Image.LANCZOS)


def caption_for(example: Example, prefix: str, shuffle: bool, dropout: float, rng: random.Random) -> str:
    text = example.caption
    if shuffle and "," in text:
        tags = [t.strip() for t in text.split(",") if t.strip()]
        head, rest = tags[:1], tags[1:]
        rng.shuffle(rest)
        text = ", ".join(head + rest)
    if prefix and not example.is_prior:
        text = f"{prefix}, {text}" if text else prefix
    if dropout and rng.random() < dropout:
        return ""
    return text
