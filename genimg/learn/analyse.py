"""Judge a picture of one coloured shape: background colour, foreground colour and shape.

The colours are the nearest palette entries to the border's median (background) and to the median
of the pixels that differ from it (foreground). The shape comes from the foreground mask's
fill ratio, compactness and corner count, by nearest centroid over procedural examples: a small,
transparent classifier that needs no training data beyond the generator itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from genimg.learn.shapes import COLOURS, SHAPES, random_scene, render

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
_NAMES = list(COLOURS)


@dataclass(frozen=True)
class Verdict:
    background: str
    colour: str | None
    shape: str | None


def nearest_colour(rgb) -> str:
    return _NAMES[int(np.argmin(((_PALETTE - np.asarray(rgb, np.float32)) ** 2).sum(1)))]


def foreground_mask(pixels: np.ndarray, background_rgb) -> np.ndarray:
    distance = np.sqrt(((pixels.astype(np.float32) - np.asarray(background_rgb, np.float32)) ** 2).sum(-1))
    return distance > 80


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def shape_features(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    area = len(xs)
    if area < 6:
        return np.zeros(3, np.float32)
    cy, cx = ys.mean(), xs.mean()
    radii = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)
    r_max = radii.max() + 0.5
    fill_circle = area / (np.pi * r_max**2)  # circle ~1, square ~0.64, triangle ~0.41, star ~0.3
    spread = radii.std() / (radii.mean() + 1e-6)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill_box = area / (h * w)
    return np.array([fill_circle, spread, fill_box], np.float32)


@lru_cache(maxsize=1)
def _centroids() -> np.ndarray:
    rng = random.Random(1234)
    sums = {s: [] for s in SHAPES}
    for _ in range(400):
        scene = random_scene(rng)
        pixels = np.asarray(render(scene))
        mask = _largest_component(foreground_mask(pixels, COLOURS[scene.background]))
        sums[scene.shape].append(shape_features(mask))
    return np.stack([np.mean(sums[s], axis=0) for s in SHAPES])


def analyse(image) -> Verdict:
    pixels = np.asarray(image.convert("RGB"))
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background_rgb = np.median(border, axis=0)
    background = nearest_colour(background_rgb)
    mask = foreground_mask(pixels, COLOURS[background])
    if mask.sum() < 6:
        return Verdict(background, None, None)
    mask = _largest_component(mask)
    colour = nearest_colour(np.median(pixels[mask], axis=0))
    features = shape_features(mask)
    shape = SHAPES[int(np.argmin(((_centroids() - features) ** 2).sum(1)))]
    return Verdict(background, colour, shape)
