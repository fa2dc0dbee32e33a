"""Inpainting masks (white = repaint): from a file, the image's alpha or a rectangle; and outpaint canvases."""

from __future__ import annotations

import numpy as np

from genimg.errors import UsageError
from genimg.inputs import load_image
from genimg.spec import SIDES, MaskSpec


def build_mask(settings: MaskSpec, image, warn=None):
    """An 'L' mask the size of ``image``; exactly one source must be given."""
    from PIL import Image, ImageDraw, ImageOps

    sources = [s for s in (settings.path, settings.from_alpha or None, settings.rect) if s]
    if len(sources) != 1:
        raise UsageError("give exactly one mask: --mask FILE, --mask-from-alpha or --mask-rect x,y,w,h")
    if settings.path:
        mask = load_image(settings.path, "mask").convert("L")
        if mask.size != image.size:
            mask = _match_size(mask, image.size, warn)
    elif settings.from_alpha:
        if "A" not in image.getbands():
            raise UsageError("--mask-from-alpha needs an image with transparency (RGBA); this one has none")
        mask = ImageOps.invert(image.getchannel("A"))  # transparent = repaint
    else:
        x, y, w, h = _rect(settings.rect, image.size)
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).rectangle((x, y, x + w - 1, y + h - 1), fill=255)
    if settings.invert:
        mask = ImageOps.invert(mask)
    mask = mask.point(lambda v: 255 if v >= 128 else 0)
    if not np.asarray(mask).any():
        raise UsageError("the mask is empty (all black), so there is nothing to inpaint; white marks what to repaint"
                         + ("" if settings.invert else ", or pass --invert-mask"))
    return mask


def _match_size(mask, size, warn):
    from PIL import Image

    mw, mh = mask.size
    w, h = size
    if abs(mw / mh - w / h) > 0.01:
        raise UsageError(f"the mask is {mw}x{mh} but the image is {w}x{h}, another aspect ratio; "
                         "make the mask the image's size")
    if warn:
        warn(f"the mask is {mw}x{mh}; resized to the image's {w}x{h}")
    return mask.resize(size, Image.NEAREST)


def _rect(rect: tuple[int, int, int, int], size) -> tuple[int, int, int, int]:
    x, y, w, h = rect
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x >= size[0] or y >= size[1]:
        raise UsageError(f"--mask-rect {x},{y},{w},{h} lies outside the {size[0]}x{size[1]} image")
    return x, y, w, h


def blend_mask(mask, blur: int):
    """The soft mask used to paste the result back: the hard mask, blurred (what diffusers'
    ``VaeImageProcessor.blur`` does, without importing diffusers while a run is being planned)."""
    from PIL import ImageFilter

    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else mask


def composite(original, generated, soft_mask):
    """Generated pixels where the mask is white, the original's where it is black, blended between."""
    from PIL import Image

    return Image.composite(generated.convert("RGB"), original.convert("RGB"), soft_mask)


def outpaint_canvas(image, extend: dict[str, int], factor: int, fill: str, overlap: int, seed: int):
    """A larger canvas with ``image`` inside it, the new border filled (``edge``: the image's edge pixels
    stretched out; ``noise``: random colours), and the mask of what to paint: the border plus
    ``overlap`` pixels into the image so the seam is repainted too. Grown sides are padded up to the factor."""
    from PIL import Image

    e = dict(extend)
    w, h = image.size
    extra_w = (-(w + e["left"] + e["right"])) % factor
    extra_h = (-(h + e["top"] + e["bottom"])) % factor
    e["right" if e["right"] or not e["left"] else "left"] += extra_w
    e["bottom" if e["bottom"] or not e["top"] else "top"] += extra_h
    pixels = np.asarray(image.convert("RGB"))
    pad = ((e["top"], e["bottom"]), (e["left"], e["right"]), (0, 0))
    canvas = np.pad(pixels, pad, mode="edge")
    if fill == "noise":
        rng = np.random.default_rng(seed)
        noise = rng.integers(0, 256, canvas.shape, dtype=np.uint8)
        inside = np.zeros(canvas.shape[:2], bool)
        inside[e["top"]:e["top"] + h, e["left"]:e["left"] + w] = True
        canvas = np.where(inside[..., None], canvas, noise)
    mask = np.full(canvas.shape[:2], 255, np.uint8)
    # The seam is repainted only on the sides asked for, not where a few pixels pad up to the factor.
    seam = {side: overlap if extend[side] else 0 for side in SIDES}
    top, left = e["top"] + seam["top"], e["left"] + seam["left"]
    bottom, right = e["top"] + h - seam["bottom"], e["left"] + w - seam["right"]
    mask[top:bottom, left:right] = 0
    return Image.fromarray(canvas), Image.fromarray(mask)
