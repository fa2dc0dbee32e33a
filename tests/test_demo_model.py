"""The built-in demo model: ships in the package, is the default, and draws what the prompt says."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels
from genimg.demo.analyse import analyse
from genimg.models import resolve_model
from genimg.models.resolve import ALIAS_FILE

DEMO_DIR = ALIAS_FILE.parent / "demo"
pytestmark = pytest.mark.skipif(not (DEMO_DIR / "model_index.json").is_file(), reason="demo model not built")

# Fixed prompts and seeds; what the analyser must find in each picture.
CASES = [
    ("a red circle on a blue background", 1, ("blue", "red", "circle")),
    ("a yellow square on a black background", 2, ("black", "yellow", "square")),
    ("a white triangle on a green background", 3, ("green", "white", "triangle")),
    ("a purple star on a white background", 4, ("white", "purple", "star")),
    ("a large orange circle on a purple background", 5, ("purple", "orange", "circle")),
    ("a green square in the top left corner on a yellow background", 6, ("yellow", "green", "square")),
    ("a blue triangle on an orange background", 7, ("orange", "blue", "triangle")),
    ("a black star on a red background", 8, ("red", "black", "star")),
]


def test_demo_is_the_default_model_and_says_so(cli, tmp_path):
    result = cli("txt2img", "a red circle on a blue background", "--seed", "1", "-o", tmp_path / "d.png")
    assert result.code == 0, result
    assert "demo model" in result.err and "--model sd15" in result.err
    with Image.open(tmp_path / "d.png") as im:
        assert im.size == (64, 64) and im.mode == "RGB"


def test_demo_loads_by_alias_and_by_folder_alike(cli, tmp_path):
    assert resolve_model("demo").kind == "folder"
    assert cli("txt2img", "a red circle", "-m", "demo", "--seed", "3", "-o", tmp_path / "a.png").code == 0
    assert cli("txt2img", "a red circle", "-m", DEMO_DIR, "--seed", "3", "-o", tmp_path / "b.png").code == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


def test_demo_is_deterministic_per_seed(cli, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert cli("txt2img", "a star", "-m", "demo", "--seed", seed, "-o", tmp_path / f"{name}.png").code == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "c.png"))


def test_demo_draws_the_colours_and_shapes_it_is_asked_for():
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    hits = {"background": 0, "colour": 0, "shape": 0}
    for prompt, seed, (background, colour, shape) in CASES:
        verdict = analyse(generate(GenerationSpec(prompt, model="demo", seed=seed), factory)[0].image)
        hits["background"] += verdict.background == background
        hits["colour"] += verdict.colour == colour
        hits["shape"] += verdict.shape == shape
    assert hits["background"] >= 7 and hits["colour"] >= 7 and hits["shape"] >= 6, hits


def test_changing_the_colour_word_changes_the_colour():
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    seen = {}
    for colour in ("red", "yellow", "blue"):
        image = generate(GenerationSpec(f"a large {colour} circle on a black background", model="demo", seed=11), factory)[0]
        seen[colour] = analyse(image.image).colour
    assert seen == {"red": "red", "yellow": "yellow", "blue": "blue"}


def test_img2img_and_inpaint_work_with_the_demo_model(cli, tmp_path):
    from genimg.demo.shapes import ShapeScene, render

    render(ShapeScene("square", "red", "blue", "large", None, 0.5, 0.5, 0)).save(tmp_path / "in.png")
    assert cli("img2img", tmp_path / "in.png", "a red square on a green background", "-m", "demo", "--strength", "0.6",
               "--seed", "1", "-o", tmp_path / "i2i.png").code == 0
    result = cli("inpaint", tmp_path / "in.png", "a yellow star on a blue background", "-m", "demo",
                 "--mask-rect", "8,8,48,48", "--seed", "1", "-o", tmp_path / "inp.png", "--json")
    assert result.code == 0, result
    out = pixels(tmp_path / "inp.png")
    source = pixels(tmp_path / "in.png")
    assert np.abs(out[:2] - source[:2]).max() <= 1  # outside the rectangle: the input
    assert json.loads(result.out)["settings"]["task"] == "inpaint"


def test_a_smoke_sized_demo_model_run_takes_seconds_and_behaves_like_the_demo(cli, tmp_path):
    import json

    from PIL import Image

    out = tmp_path / "mine"
    result = cli("learn", "demo-model", "-o", out, "--unet-steps", "2", "--vae-steps", "2", "--decoder-steps", "1",
                 "--images", "64", "--batch", "4", "--vae-batch", "4", "--quiet")
    assert result.code == 0, result
    record = json.loads((out / "genimg_training.json").read_text())
    assert record["config"]["decoder_steps"] == 1 and record["config"]["images"] == 64
    # The folder carries the demo's generation defaults: 64x64, 20 steps, not SD1.5's 512x512.
    made = cli("txt2img", "a red circle", "-m", out, "--seed", "1", "-o", tmp_path / "a.png", "--json")
    assert made.code == 0, made
    settings = json.loads(made.out)["settings"]
    assert (settings["width"], settings["height"], settings["steps"]) == (64, 64, 20)
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (64, 64)
