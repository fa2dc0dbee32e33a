"""Judge a picture of one coloured shape: background colour, foreground colour and shape.

The colours are the nearest palette entries to the border's median (background) and to the median
of the pixels that differ from it (foreground). The shape comes from three numbers of the shape's
mask: how much of its circumscribed circle it fills (circle 1, square 0.64, triangle 0.41), its
solidity (area over convex-hull area: a star's notches make it about 0.6, the others near 1) and its
extent (area over bounding box). The nearest centroid, in standardised units, over procedural
examples names the shape: a small, transparent classifier that needs no data beyond the generator.
Half of those examples are slightly blurred, because a generated shape has soft edges and soft
points: a star with rounded tips is still a star.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from genimg.demo.shapes import COLOURS, SHAPES, random_scene, render

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
_NAMES = list(COLOURS)


@dataclass(frozen=True)
class Verdict:
    background: str
    colour: str | None
    shape: str | None
    centre: tuple[float, float] | None = None  # the shape's centroid, as fractions of width and height


def nearest_colour(rgb) -> str:
    return _NAMES[int(np.argmin(((_PALETTE - np.asarray(rgb, np.float32)) ** 2).sum(1)))]


def foreground_mask(pixels: np.ndarray, background_rgb) -> np.ndarray:
    distance = np.sqrt(((pixels.astype(np.float32) - np.asarray(background_rgb, np.float32)) ** 2).sum(-1))
    return distance > 80


def _nearer(pixels: np.ndarray, rgb, other_rgb) -> np.ndarray:
    pixels = pixels.astype(np.float32)
    to = ((pixels - np.asarray(rgb, np.float32)) ** 2).sum(-1)
    return to < ((pixels - np.asarray(other_rgb, np.float32)) ** 2).sum(-1)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def shape_features(mask: np.ndarray) -> np.ndarray:
    from skimage.measure import regionprops

    ys, xs = np.nonzero(mask)
    area = len(xs)
    if area < 6:
        return np.zeros(3, np.float32)
    cy, cx = ys.mean(), xs.mean()
    r_max = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2).max() + 0.5
    region = regionprops(mask.astype(np.uint8))[0]
    return np.array([area / (np.pi * r_max**2), region.solidity, region.extent], np.float32)


@lru_cache(maxsize=1)
def _centroids() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centroids, mean, std) of the features, in standardised units, over 800 procedural scenes."""
    from PIL import ImageFilter

    rng = random.Random(1234)
    features, shapes = [], []
    for k in range(800):
        scene = random_scene(rng)
        image = render(scene)
        if k % 2:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
        mask = _largest_component(_nearer(np.asarray(image), COLOURS[scene.colour], COLOURS[scene.background]))
        features.append(shape_features(mask))
        shapes.append(scene.shape)
    features = np.stack(features)
    mean, std = features.mean(0), features.std(0)
    z = (features - mean) / std
    labels = np.array(shapes)
    return np.stack([z[labels == s].mean(0) for s in SHAPES]), mean, std


def analyse(image) -> Verdict:
    pixels = np.asarray(image.convert("RGB"))
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background_rgb = np.median(border, axis=0)
    background = nearest_colour(background_rgb)
    mask = foreground_mask(pixels, COLOURS[background])
    if mask.sum() < 6:
        return Verdict(background, None, None)
    colour = nearest_colour(np.median(pixels[_largest_component(mask)], axis=0))
    if colour == background:
        return Verdict(background, None, None)
    # The shape's pixels are those nearer its colour than the background's: a fixed threshold would
    # shave the soft edges off a shape drawn in a colour close to its background (yellow on orange).
    mask = _largest_component(_nearer(pixels, COLOURS[colour], COLOURS[background]))
    features = shape_features(mask)
    centroids, mean, std = _centroids()
    shape = SHAPES[int(np.argmin(((centroids - (features - mean) / std) ** 2).sum(1)))]
    ys, xs = np.nonzero(mask)
    return Verdict(background, colour, shape, (float(xs.mean() + 0.5) / mask.shape[1], float(ys.mean() + 0.5) / mask.shape[0]))
