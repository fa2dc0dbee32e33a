"""Loss curves as PNG: drawn with PIL (no plotting library), for the LoRA trainer and the course runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def loss_curve(series: dict[str, list[float]], path: Path, width: int = 640, height: int = 360) -> Path:
    """A plain line chart of each loss series (smoothed), drawn with PIL so no plotting library is needed."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, width - 20, 20, height - 40
    draw.rectangle((left, top, right, bottom), outline="black")
    smoothed = {k: _smooth(np.asarray(v, dtype=float)) for k, v in series.items() if len(v)}
    if not smoothed:
        image.save(path)
        return path
    lo = min(float(v.min()) for v in smoothed.values())
    hi = max(float(v.max()) for v in smoothed.values())
    hi = hi if hi > lo else lo + 1
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for (name, values), colour in zip(smoothed.items(), colours):
        xs = np.linspace(left, right, len(values))
        ys = bottom - (values - lo) / (hi - lo) * (bottom - top)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=2)
        draw.text((left + 8, top + 6 + 14 * list(smoothed).index(name)), name, fill=colour)
    draw.text((4, top), f"{hi:.3g}", fill="black")
    draw.text((4, bottom - 10), f"{lo:.3g}", fill="black")
    draw.text((left, bottom + 8), "step 0", fill="black")
    draw.text((right - 80, bottom + 8), f"step {max(len(v) for v in series.values())}", fill="black")
    image.save(path)
    return path


def _smooth(values: np.ndarray, window: int = 25) -> np.ndarray:
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")
