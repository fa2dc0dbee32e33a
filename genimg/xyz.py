"""A1111's X/Y/Z plot: one setting varied along each of up to three axes, every combination made (each
image with its own metadata) and one labelled grid per value of Z, whose record holds the plot so `--from`
on the grid makes it again. Axes are written ``key=v1,v2,...`` with any spec key (``steps``, ``cfg``,
``sampler``, ``seed``, ``model`` …), A1111's ranges (``1-5``, ``1-10 (+2)``, ``0.5-1.5 (+0.25)``,
``1-10 [4]``) and prompt S/R (``prompt=red,blue``: each value in place of the first)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from genimg.errors import UsageError

# A1111's ranges (scripts/xyz_grid.py): start-end with an optional (+step) or [count]
_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*$")
_FLOAT_RANGE = re.compile(r"\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*$")
_COUNT_RANGE = re.compile(r"\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)\s*\[(\d+)\s*\]\s*$")
MAX_CELLS = 256


@dataclass(frozen=True)
class Axis:
    key: str  # a spec key, or "prompt" for prompt S/R
    values: tuple
    text: str  # as written: what the grid's record keeps

    def label(self, value) -> str:
        return str(value) if self.key == "prompt" else f"{self.key}: {value}"

    def apply(self, settings: dict, value) -> dict:
        if self.key != "prompt":
            return {**settings, self.key: value}
        return {**settings, "prompt": settings["prompt"].replace(str(self.values[0]), str(value))}


def parse_axis(text: str) -> Axis:
    from genimg.spec import known_keys

    key, sep, rest = text.partition("=")
    key = key.strip().lower().replace("-", "_").replace(" ", "_")
    if not sep or not rest.strip():
        raise UsageError(f"--xyz {text!r}: write KEY=VALUE,VALUE,... (e.g. steps=10,20 or cfg=4-8 (+2))")
    if key not in known_keys():
        raise UsageError(f"--xyz {text!r}: {key!r} is not a setting; known: {', '.join(known_keys())}")
    values = []
    for item in next(csv.reader([rest], skipinitialspace=True)):
        values.extend(_expanded(item.strip()))
    if not values:
        raise UsageError(f"--xyz {text!r}: no values")
    return Axis(key, tuple(values), text)


def _expanded(item: str) -> list:
    """One comma-separated item: a value, or A1111's range of them."""
    import numpy as np

    if m := _COUNT_RANGE.match(item):
        start, end, count = float(m[1].replace(" ", "")), float(m[2].replace(" ", "")), int(m[3])
        as_int = "." not in m[1] + m[2]
        points = np.linspace(start, end, count)
        return [int(v) for v in points] if as_int else [round(float(v), 6) for v in points]
    if m := _RANGE.match(item):
        start, end, step = int(m[1].replace(" ", "")), int(m[2].replace(" ", "")), int(m[3]) if m[3] else 1
        return list(range(start, end + 1, step))
    if m := _FLOAT_RANGE.match(item):
        start, end = float(m[1].replace(" ", "")), float(m[2].replace(" ", ""))
        step = float(m[3]) if m[3] else 1.0
        return [round(float(v), 6) for v in np.arange(start, end + step / 2, step)]
    for number in (int, float):
        try:
            return [number(item)]
        except ValueError:
            pass
    return [item]


def cells(spec, axes: list[Axis]) -> list[tuple[tuple[int, int, int], object]]:
    """((x, y, z), spec) of every combination, z slowest, as the grid lays them out."""
    from genimg.spec import GenerationSpec

    if not 1 <= len(axes) <= 3:
        raise UsageError("--xyz takes one to three axes (X, Y, Z)")
    xs, ys, zs = (list(axes) + [Axis("", (None,), "")] * 3)[:3]
    for axis in axes:
        if axis.key == "prompt" and str(axis.values[0]) not in spec.prompt:
            raise UsageError(f"--xyz {axis.text!r}: prompt S/R replaces its first value, {axis.values[0]!r}, which "
                             f"the prompt {spec.prompt!r} does not hold")
    count = len(xs.values) * len(ys.values) * len(zs.values)
    if count > MAX_CELLS:
        raise UsageError(f"--xyz: {count} combinations is more than {MAX_CELLS}; use fewer values")
    base = spec.to_dict()
    out = []
    for z, zv in enumerate(zs.values):
        for y, yv in enumerate(ys.values):
            for x, xv in enumerate(xs.values):
                settings = dict(base)
                for axis, value in ((xs, xv), (ys, yv), (zs, zv)):
                    if axis.key:
                        settings = axis.apply(settings, value)
                out.append(((x, y, z), GenerationSpec.from_dict({**settings, "count": 1})))
    return out


def draw_grid(images: dict, axes: list[Axis], z: int):
    """One Z value's grid: X labels above the columns, Y labels left of the rows, the Z label as a title."""
    from PIL import Image, ImageDraw, ImageFont

    xs, ys = axes[0], axes[1] if len(axes) > 1 else Axis("", (None,), "")
    first = next(iter(images.values()))
    w, h = first.size
    font = ImageFont.load_default(size=max(12, w // 12))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max((measure.textlength(ys.label(v), font=font) for v in ys.values if ys.key), default=0)
    left = int(left) + 16 if ys.key else 0
    top = font.size * 2 + (font.size * 2 if len(axes) > 2 else 0)
    grid = Image.new("RGB", (left + w * len(xs.values), top + h * len(ys.values)), "white")
    draw = ImageDraw.Draw(grid)
    if len(axes) > 2:
        draw.text((grid.width / 2, font.size), axes[2].label(axes[2].values[z]), fill="black", font=font, anchor="mm")
    for x, value in enumerate(xs.values):
        draw.text((left + w * x + w / 2, top - font.size), xs.label(value), fill="black", font=font, anchor="mm")
    for y, value in enumerate(ys.values):
        if ys.key:
            draw.text((left - 8, top + h * y + h / 2), ys.label(value), fill="black", font=font, anchor="rm")
        for x in range(len(xs.values)):
            grid.paste(images[(x, y)], (left + w * x, top + h * y))
    return grid, (left, top)


def is_grid(summary: dict) -> bool:
    """Whether ``summary`` (what :func:`make_plot` yields beside a path) is a grid's, not an image's."""
    return "grid" in summary


def make_plot(spec, axes: list[Axis], folder, executor):
    """Every combination made into ``folder`` (grouped by model, so each loads once), then one grid per Z
    value; yields (path, summary) of each image and then of each grid. Every path is checked first."""
    import json
    import secrets
    from pathlib import Path

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from genimg.files import check_writable
    from genimg.output.metadata import GENIMG_KEY, PARAMETERS_KEY, read_text_chunks

    if spec.seed is None:  # one seed for every cell, as A1111 keeps it unless seed is an axis
        spec = spec.replace(seed=secrets.randbelow(2**32))
    folder = Path(folder)
    made = cells(spec, axes)
    zs = len(axes[2].values) if len(axes) > 2 else 1
    paths = {at: folder / f"xyz-{n:04d}-{cell.seed}.png" for n, (at, cell) in enumerate(made)}
    grids = [folder / f"xyz_grid-{z:02d}.png" for z in range(zs)]
    check_writable([*paths.values(), *grids], executor.sink.overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    for at, cell in sorted(made, key=lambda item: str(item[1].model)):  # each model loads once
        for written in executor.generate(cell, paths[at]):
            yield written.path, written.summary
    record = {"spec": spec.to_dict(), "xyz": [axis.text for axis in axes]}
    for z, path in enumerate(grids):
        pictures = {}
        for (x, y, cz), _ in made:
            if cz == z:
                with Image.open(paths[(x, y, cz)]) as image:
                    pictures[(x, y)] = image.convert("RGB")
        grid, _ = draw_grid(pictures, axes, z)
        info = PngInfo()
        first = read_text_chunks(paths[(0, 0, z)]).get(PARAMETERS_KEY, "")
        # A1111's fields of a plot's grid: the script, then each axis's type and values as written
        plotted = ", ".join(["Script: X/Y/Z plot", *(f'{letter} Type: {axis.key}, {letter} Values: "{axis.text.partition("=")[2]}"'
                                                      for letter, axis in zip("XYZ", axes))])
        info.add_text(PARAMETERS_KEY, f"{first}, {plotted}" if first else plotted)
        info.add_text(GENIMG_KEY, json.dumps(record, ensure_ascii=False))
        yield executor.sink.picture(grid, path, info), {"grid": z, "axes": record["xyz"], "size": list(grid.size)}
