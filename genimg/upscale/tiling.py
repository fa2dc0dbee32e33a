"""Run an image-to-image function tile by tile and blend the tiles back, so memory stays bounded
whatever the image size.

Tiles overlap by ``overlap`` input pixels. Across each overlap the two tiles' weights ramp from 0 to
1 over its middle half and are 0 over the outer quarter at each tile's own edge, where a network sees
zero padding instead of the neighbouring pixels. For a convolutional upscaler whose receptive field
fits in that quarter, the blended result equals the untiled one; for diffusion upscalers, whose tiles
are drawn apart, the ramp hides the seams.
"""

from __future__ import annotations

from typing import Callable


def positions(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: every ``tile - overlap`` pixels, the last flush with the end."""
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, start: int, end: int, size: int, overlap: int, scale: int):
    """Weights along one axis of a tile spanning [start, end) of ``size`` (in input pixels), at output scale."""
    import torch

    d = (torch.arange(length * scale, dtype=torch.float32) + 0.5) / scale
    margin, width = overlap / 4, max(overlap / 2, 1e-6)
    w = torch.ones(length * scale)
    if start > 0:  # an inner edge on this side
        w = torch.minimum(w, ((d - margin) / width).clamp(0, 1))
    if end < size:
        w = torch.minimum(w, ((length - d - margin) / width).clamp(0, 1))
    return w


def tiled(x, fn: Callable, scale: int, tile: int, overlap: int, progress: Callable | None = None):
    """``fn`` (a batch-of-one image tensor ``[1, C, h, w]`` to ``[1, C, h*scale, w*scale]``) applied to
    ``x`` in tiles of ``tile`` pixels; ``tile`` 0 (or a larger one than the image) runs it whole."""
    import torch

    _, channels, height, width = x.shape
    if tile <= 0 or (height <= tile and width <= tile):
        return fn(x)
    overlap = min(overlap, tile // 2)
    ys, xs = positions(height, tile, overlap), positions(width, tile, overlap)
    out = torch.zeros(1, channels, height * scale, width * scale)
    total = torch.zeros(1, 1, height * scale, width * scale)
    done = 0
    for y in ys:
        for x0 in xs:
            h, w = min(tile, height), min(tile, width)
            result = fn(x[:, :, y:y + h, x0:x0 + w]).float().cpu()
            wy = _ramp(h, y, y + h, height, overlap, scale)
            wx = _ramp(w, x0, x0 + w, width, overlap, scale)
            weight = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, y * scale:(y + h) * scale, x0 * scale:(x0 + w) * scale] += result * weight
            total[:, :, y * scale:(y + h) * scale, x0 * scale:(x0 + w) * scale] += weight
            done += 1
            if progress:
                progress("tile", step=done, total=len(ys) * len(xs))
    return out / total.clamp_min(1e-8)
