"""The pictures a lesson shows: sample grids, a forward-noising strip, a reverse-process GIF, loss curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def to_pil(batch: torch.Tensor, nrow: int, scale: int = 2):
    """A grid image of a batch in [−1, 1] (N, C, H, W), each cell enlarged ``scale`` times."""
    from PIL import Image

    x = ((batch.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    rows = (n + nrow - 1) // nrow
    grid = torch.full((c, rows * (h + 2) + 2, nrow * (w + 2) + 2), 255, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, 2 + r * (h + 2):2 + r * (h + 2) + h, 2 + col * (w + 2):2 + col * (w + 2) + w] = x[i]
    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if c == 1 else array)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def save_grid(batch: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    to_pil(batch, nrow).save(path)
    return path


def forward_noising_strip(schedule, images: torch.Tensor, path: Path, columns: int = 10) -> Path:
    """Rows of images noised ever more by q(x_t | x_0), left (t = 0) to right (t = T)."""
    from genimg.learn.schedule import q_sample

    g = torch.Generator().manual_seed(0)
    eps = torch.randn(images.shape, generator=g)
    times = np.linspace(0, schedule.T - 1, columns).round().astype(int)
    cells = [q_sample(schedule, images, torch.full((len(images),), int(t)), eps) for t in times]
    strip = torch.stack(cells, dim=1).flatten(0, 1)
    return save_grid(strip, path, nrow=columns)


def save_gif(frames: list[torch.Tensor], path: Path, nrow: int, ms: int = 60) -> Path:
    pictures = [to_pil(f, nrow) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:] + [pictures[-1]] * 10, duration=ms, loop=0)
    return path
