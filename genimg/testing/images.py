"""What tests compare: a written image's pixels, and the model families every family-wide test runs on."""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("sd", "sdxl", "flux")


def pixels(path: Path):
    """The image at ``path`` as an int16 RGB array (differences of two images stay signed)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)
