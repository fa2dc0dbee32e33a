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


def save_ring(path: Path) -> Path:
    """A white ring on black, 64×64: the control image the ControlNet tests steer with."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).ellipse((12, 12, 52, 52), outline="white", width=3)
    image.save(path)
    return path
