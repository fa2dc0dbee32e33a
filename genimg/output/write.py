"""Generated images as PNG files, with their settings in the metadata chunks."""

from __future__ import annotations

from pathlib import Path

from genimg.files import atomic_save
from genimg.output.metadata import pnginfo


def save_png(image, path: Path, overwrite: bool = False) -> Path:
    """Save a generated image with its metadata chunks."""
    info = pnginfo(image)
    return atomic_save(path, lambda tmp: image.image.save(tmp, format="PNG", pnginfo=info), overwrite)
