"""A1111's X/Y/Z plot: its value syntax, every combination made as the same settings make it alone, the grid's
layout and labels, and `--from` on a grid making the plot again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels


@pytest.mark.parametrize("text,values", [
    ("steps=1-5", (1, 2, 3, 4, 5)),
    ("steps=1-10 (+3)", (1, 4, 7, 10)),
    ("cfg=0.5-1.5 (+0.5)", (0.5, 1.0, 1.5)),
    ("steps=10-20 [3]", (10, 15, 20)),
    ("sampler=Euler a, DDIM", ("Euler a", "DDIM")),
    ('prompt="red, bright",blue', ("red, bright", "blue")),
    ("seed=1-2, 7", (1, 2, 7)),
])
def test_axis_values_are_read_as_a1111_reads_them(text, values):
    from genimg.xyz import parse_axis

    assert parse_axis(text).values == values


def test_every_combination_is_the_image_its_settings_make_alone_and_the_grid_shows_them(cli, tmp_path):
    common = ("a red circle", "-m", "demo", "-W", "64", "-H", "64", "--seed", "3", "--preset", "cpu", "--local")
    result = cli("txt2img", *common, "--xyz", "steps=2,4", "--xyz", "cfg=1,5", "--xyz", "prompt=red,blue",
                 "-o", tmp_path / "plot", "--json")
    assert result.code == 0, result
    lines = [json.loads(line) for line in result.out.splitlines()]
    images, grids = [x for x in lines if "grid" not in x], [x for x in lines if "grid" in x]
    assert len(images) == 8 and len(grids) == 2
    by_settings = {(x["settings"]["steps"], x["settings"]["guidance"], x["settings"]["prompt"]): x["path"] for x in images}
    assert set(by_settings) == {(s, g, p) for s in (2, 4) for g in (1.0, 5.0) for p in ("a red circle", "a blue circle")}
    alone = tmp_path / "alone.png"
    assert cli("txt2img", "a blue circle", *common[1:], "--steps", "4", "--cfg", "5", "-o", alone).code == 0
    assert np.array_equal(pixels(by_settings[(4, 5.0, "a blue circle")]), pixels(alone))
    # the second grid (Z = blue): the images at their cells, in X order left to right and Y top to bottom
    grid = np.asarray(Image.open(grids[1]["path"]).convert("RGB"), dtype=np.int16)
    width, height = grids[1]["size"]
    left, top = width - 2 * 64, height - 2 * 64
    for (x, steps) in enumerate((2, 4)):
        for (y, cfg) in enumerate((1.0, 5.0)):
            cell = grid[top + 64 * y:top + 64 * (y + 1), left + 64 * x:left + 64 * (x + 1)]
            assert np.array_equal(cell, pixels(by_settings[(steps, cfg, "a blue circle")])), (steps, cfg)
    assert left > 0 and top > 0
    assert (grid[:top - 4, left:] < 128).any() and (grid[top:, :left - 4] < 128).any()  # labels drawn
    assert (grid[:top, :left] == 255).all()  # the corner left blank


def test_from_a_grid_makes_the_plot_again(cli, tmp_path):
    common = ("a red circle", "-m", "demo", "-W", "64", "-H", "64", "--seed", "5", "--preset", "cpu", "--local")
    assert cli("txt2img", *common, "--xyz", "steps=2,3", "-o", tmp_path / "a").code == 0
    again = cli("txt2img", "--from", tmp_path / "a" / "xyz_grid-00.png", "-o", tmp_path / "b", "--local")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "a" / "xyz_grid-00.png"), pixels(tmp_path / "b" / "xyz_grid-00.png"))


def test_a_bad_axis_is_one_line_before_anything_runs(cli, tmp_path):
    result = cli("txt2img", "a red circle", "-m", "demo", "--xyz", "stpes=1,2", "-o", tmp_path / "x")
    assert result.code == 2 and "'stpes' is not a setting" in result.err and not (tmp_path / "x").exists()
    result = cli("txt2img", "a red circle", "-m", "demo", "--xyz", "prompt=green,blue", "-o", tmp_path / "x")
    assert result.code == 2 and "'green'" in result.err
    result = cli("txt2img", "x", "-m", "demo", "--xyz", "steps=1,2", "-o", tmp_path / "one.png")
    assert result.code == 2 and "-o must be a folder" in result.err


def test_a_model_axis_loads_each_model_once(cli, tmp_path, tiny_models):
    """Cells are made grouped by model: a model axis crossed with another loads each model once, not per cell."""
    from genimg.api import process_factory, release

    release()
    factory = process_factory()
    before = factory.loads
    result = cli("txt2img", "a red circle", "-W", "64", "-H", "64", "--seed", "1", "--preset", "cpu", "--local",
                 "--xyz", f"model={tiny_models['sd']},{tiny_models['sdxl']}", "--xyz", "steps=2,3",  # X alternates models
                 "-o", tmp_path / "plot", "--json")
    assert result.code == 0, result
    assert factory.loads - before == 2
    assert len([line for line in result.out.splitlines() if '"grid"' not in line]) == 4
