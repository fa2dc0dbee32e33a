"""Back from a PNG: genimg's own record reproduces the image bit for bit; A1111's text maps to the spec."""

import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from genimg.testing.images import FAMILIES, pixels
from genimg.output.metadata import spec_from_png
import genimg
from genimg.spec import GenerationSpec


@pytest.mark.parametrize("family", FAMILIES)
def test_from_reproduces_a_genimg_png_bit_for_bit(cli, tmp_path, tiny_models, family):
    first = cli("txt2img", "a red circle, on: blue", "-n", "ugly", "-m", tiny_models[family], "-W", "64", "-H", "64",
                "--steps", "3", "--cfg", "4.5", "--seed", "11", "-o", tmp_path / "first.png", "--json")
    assert first.code == 0, first
    again = cli("txt2img", "--from", tmp_path / "first.png", "-o", tmp_path / "again.png", "--json")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "first.png"), pixels(tmp_path / "again.png"))
    assert json.loads(again.out)["settings"] == json.loads(first.out)["settings"]
    # A flag given overrides the image's setting, the others stay.
    other = cli("txt2img", "--from", tmp_path / "first.png", "--seed", "12", "-o", tmp_path / "other.png", "--json")
    settings = json.loads(other.out)["settings"]
    assert settings["seed"] == 12 and settings["steps"] == 3 and settings["guidance"] == 4.5
    assert not np.array_equal(pixels(tmp_path / "first.png"), pixels(tmp_path / "other.png"))


def test_png_metadata_read_back_from_disk_gives_the_spec_that_made_it(cli, tmp_path, tiny_models):
    target = tmp_path / "m.png"
    result = cli("txt2img", "a star", "-m", tiny_models["sd"], "-W", "64", "-H", "48", "--steps", "2", "--cfg", "5.5",
                 "--seed", "77", "--scheduler", "Euler a", "-o", target, "--json")
    assert result.code == 0
    from_file = genimg.read_spec(target)
    assert from_file == GenerationSpec.from_dict(json.loads(result.out)["settings"])
    assert (from_file.prompt, from_file.width, from_file.height, from_file.steps, from_file.guidance,
            from_file.scheduler, from_file.seed) == ("a star", 64, 48, 2, 5.5, "Euler a", 77)


def _a1111_png(path, text):
    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8), "gray").save(path, pnginfo=info)
    return path


# Written from A1111's format (modules/processing.py's infotext), not from genimg's writer.
A1111_TEXT = ("masterpiece, (red:1.2) fox, forest\nat dusk\n"
              "Negative prompt: lowres, bad anatomy, \"quoted\"\n"
              "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567, Size: 832x1216, "
              "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Clip skip: 2, "
              'Lora hashes: "fox: 0123456789ab", Version: v1.10.1')


def test_a_hand_written_a1111_text_is_read_into_the_right_fields(tmp_path):
    read = spec_from_png(_a1111_png(tmp_path / "a.png", A1111_TEXT))
    spec = read.spec
    assert read.source == "parameters"
    assert spec.prompt == "masterpiece, (red:1.2) fox, forest\nat dusk"
    assert spec.negative == 'lowres, bad anatomy, "quoted"'
    assert (spec.steps, spec.scheduler, spec.guidance, spec.seed) == (28, "DPM++ 2M Karras", 6.5, 1234567)
    assert (spec.width, spec.height, spec.model, spec.strength) == (832, 1216, "v1-5-pruned-emaonly", 0.45)
    assert spec.clip_skip == 2
    assert read.unmapped == {"Model hash": "6ce0161689", "Lora hashes": "fox: 0123456789ab", "Version": "v1.10.1"}


def test_forge_and_sdcpp_style_texts_without_schedule_type(tmp_path):
    text = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 42, Size: 512x512, Model: sd_xl_base_1.0"
    spec = spec_from_png(_a1111_png(tmp_path / "f.png", text)).spec
    assert (spec.prompt, spec.negative, spec.steps, spec.scheduler, spec.guidance, spec.seed, spec.width) == \
        ("a cat", "", 20, "Euler a", 7.0, 42, 512)


def test_info_shows_what_from_would_read_and_what_it_could_not_map(cli, tmp_path):
    result = cli("info", _a1111_png(tmp_path / "a.png", A1111_TEXT), "--json")
    assert result.code == 0, result
    shown = json.loads(result.out)
    assert shown["from"]["source"] == "parameters" and shown["from"]["spec"]["steps"] == 28
    assert shown["from"]["spec"]["clip_skip"] == 2 and "Clip skip" not in shown["from"]["unmapped"]
    text = cli("info", tmp_path / "a.png").out
    assert "--from reads" in text and "not mapped: Model hash, Lora hashes, Version" in text


def test_from_an_image_without_settings_or_missing(cli, tmp_path, tiny_models):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    for target, words in ((tmp_path / "plain.png", "holds no generation settings"), (tmp_path / "nope.png", "does not exist")):
        result = cli("txt2img", "--from", target, "-m", tiny_models["sd"], "-o", tmp_path / "x.png")
        assert result.code == 2 and words in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_a1111_from_with_a_model_flag_generates(cli, tmp_path, tiny_models):
    text = "a blue square\nNegative prompt: blur\nSteps: 2, Sampler: Euler, CFG scale: 3, Seed: 5, Size: 64x48, Model: elsewhere"
    result = cli("txt2img", "--from", _a1111_png(tmp_path / "a.png", text), "-m", tiny_models["sd"], "-o",
                 tmp_path / "out.png", "--json")
    assert result.code == 0, result
    settings = json.loads(result.out)["settings"]
    assert (settings["prompt"], settings["negative"], settings["steps"], settings["scheduler"], settings["seed"]) == \
        ("a blue square", "blur", 2, "Euler", 5)
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (64, 48)


def _noise(path, seed=3, size=64):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_from_an_edited_png_takes_its_recorded_input_when_unchanged(cli, tmp_path):
    from genimg.testing.images import pixels

    source = _noise(tmp_path / "in.png")
    made = cli("img2img", source, "a ring", "--steps", "4", "--seed", "2", "-o", tmp_path / "x-img2img.png")
    assert made.code == 0, made
    again = cli("img2img", "--from", tmp_path / "x-img2img.png", "-o", tmp_path / "again.png")  # no IMAGE, no prompt
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "x-img2img.png"), pixels(tmp_path / "again.png"))
    # txt2img from an img2img PNG: its prompt and seed, no input image (and no "img2img needs an input image")
    text = cli("txt2img", "--from", tmp_path / "x-img2img.png", "-o", tmp_path / "t.png")
    assert text.code == 0, text
    from genimg.output.metadata import read_metadata

    recorded = read_metadata(tmp_path / "t.png")["genimg"]["spec"]
    assert recorded.get("task", "txt2img") == "txt2img" and "image" not in recorded and recorded["prompt"] == "a ring"


def test_from_an_outpainted_png_remakes_a_txt2img(cli, tmp_path):
    source = _noise(tmp_path / "in.png")
    made = cli("outpaint", source, "--extend", "right", "16", "a ring", "--steps", "2", "--seed", "2",
               "-o", tmp_path / "o.png")
    assert made.code == 0, made
    text = cli("txt2img", "--from", tmp_path / "o.png", "-o", tmp_path / "t.png")
    assert text.code == 0 and "needs" not in text.err, text


@pytest.mark.parametrize("change,words", [("moved", "is not here"), ("changed", "has changed since")])
def test_from_names_a_recorded_input_that_is_gone_or_changed(cli, tmp_path, change, words):
    source = _noise(tmp_path / "in.png")
    assert cli("img2img", source, "a ring", "--steps", "2", "--seed", "2", "-o", tmp_path / "made" / "x.png").code == 0
    if change == "moved":
        source.rename(tmp_path / "elsewhere.png")
    else:
        _noise(source, seed=9)
    result = cli("img2img", "--from", tmp_path / "made" / "x.png", "-o", tmp_path / "again.png")
    assert result.code == 2 and words in result.err and "give IMAGE" in result.err and result.err.count("\n") == 1, result
    assert not (tmp_path / "again.png").exists()


def test_an_image_command_without_an_image_says_so(cli, tmp_path):
    result = cli("img2img", "-o", tmp_path / "x.png")
    assert result.code == 2 and "give the input image" in result.err, result


def test_info_takes_several_images(cli, tmp_path):
    first = _a1111_png(tmp_path / "a.png", A1111_TEXT)
    second = _a1111_png(tmp_path / "b.png", A1111_TEXT.replace("Steps: 28", "Steps: 9"))
    shown = json.loads(cli("info", first, second, "--json").out)
    assert [(s["path"], s["from"]["spec"]["steps"]) for s in shown] == [(str(first), 28), (str(second), 9)]
    text = cli("info", first, second).out
    assert text.index(f"== {first} ==") < text.index(f"== {second} ==") and text.count("--from reads") == 2
    missing = cli("info", first, tmp_path / "nope.png")
    assert missing.code == 2 and "nope.png does not exist" in missing.err and missing.out == ""
