"""img2img, inpaint and outpaint on tiny models of every family, with real photos from scikit-image."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from genimg.testing.images import FAMILIES, pixels
from genimg.output.metadata import read_metadata

FAST = ("--steps", "4", "--seed", "3")


@pytest.fixture(scope="session")
def photo(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("inputs") / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((100, 70), Image.LANCZOS).save(path)
    return path


@pytest.fixture(scope="session")
def mask(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("masks") / "mask.png"
    m = Image.new("L", (100, 70), 0)
    ImageDraw.Draw(m).rectangle((30, 20, 61, 51), fill=255)
    m.save(path)
    return path


def _run(cli, *args):
    result = cli(*args, "--json")
    assert result.code == 0, result
    return [json.loads(line) for line in result.out.splitlines()]


@pytest.mark.parametrize("family", FAMILIES)
def test_img2img_output_size_follows_the_input_rounded_to_the_factor(cli, tmp_path, tiny_models, photo, family):
    [record] = _run(cli, "img2img", photo, "a cat", "--model", tiny_models[family], *FAST, "-o", tmp_path / "a.png")
    factor = 16 if family == "flux" else 8
    with Image.open(record["path"]) as im:
        assert im.size == (100 // factor * factor, 70 // factor * factor) and im.mode == "RGB"
    meta = read_metadata(record["path"])
    assert meta["parameters"]["Denoising strength"] == "0.75"
    assert meta["genimg"]["source_hash"] and meta["genimg"]["denoising_steps"] == 3


def test_img2img_strength_zero_returns_the_input_and_one_departs_from_it(cli, tmp_path, tiny_models, photo):
    size = ("-W", "96", "-H", "64", "--resize", "stretch")
    _run(cli, "img2img", photo, "x", "--model", tiny_models["sd"], *size, *FAST, "--strength", "0", "-o", tmp_path / "s0.png")
    _run(cli, "img2img", photo, "x", "--model", tiny_models["sd"], *size, *FAST, "--strength", "1", "-o", tmp_path / "s1.png")
    source = np.asarray(Image.open(photo).convert("RGB").resize((96, 64), Image.LANCZOS), dtype=np.int16)
    keep, change = np.abs(pixels(tmp_path / "s0.png") - source).mean(), np.abs(pixels(tmp_path / "s1.png") - source).mean()
    assert keep < 1.0 < 20 < change


@pytest.mark.parametrize("mode,size", [("crop", (64, 64)), ("stretch", (64, 32)), ("fit", (48, 64))])
def test_img2img_resize_modes(cli, tmp_path, tiny_models, photo, mode, size):
    [record] = _run(cli, "img2img", photo, "x", "--model", tiny_models["sd"], "-W", size[0], "-H", size[1], *FAST,
                    "--resize", mode, "-o", tmp_path / f"{mode}.png")
    assert Image.open(record["path"]).size == size


def test_img2img_count_gives_reproducible_variations(cli, tmp_path, tiny_models, photo):
    records = _run(cli, "img2img", photo, "x", "--model", tiny_models["sd"], *FAST, "--count", "2", "--strength", "0.9",
                   "-o", f"{tmp_path}/many/")
    [again] = _run(cli, "img2img", photo, "x", "--model", tiny_models["sd"], "--steps", "4", "--seed", records[1]["seed"],
                   "--strength", "0.9", "-o", tmp_path / "again.png")
    assert np.array_equal(pixels(records[1]["path"]), pixels(again["path"]))
    assert not np.array_equal(pixels(records[0]["path"]), pixels(records[1]["path"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_inpaint_keeps_the_unmasked_pixels(cli, tmp_path, tiny_models, photo, mask, family):
    [record] = _run(cli, "inpaint", photo, "a cat", "--mask", mask, "--model", tiny_models[family], "-W", "96", "-H", "64",
                    "--resize", "stretch", *FAST, "--mask-blur", "2", "-o", tmp_path / "in.png")
    out = pixels(record["path"])
    source = np.asarray(Image.open(photo).convert("RGB").resize((96, 64), Image.LANCZOS), dtype=np.int16)
    hard = np.asarray(Image.open(mask).resize((96, 64), Image.NEAREST)) > 127
    # Far from the mask (beyond the blur seam, 3 blur radii), the output is the input to the pixel.
    from scipy import ndimage

    far = ~ndimage.binary_dilation(hard, iterations=6)
    assert np.abs(out[far] - source[far]).max() <= 1
    assert np.abs(out[hard] - source[hard]).mean() > 5  # the masked area was repainted
    assert read_metadata(record["path"])["parameters"]["Mask blur"] == "2"


def _assert_repainted_only_inside(path, photo, mask, size, invert=False):
    """Far from the mask's edge the input's pixels are kept exactly outside it, and changed inside it."""
    from scipy.ndimage import binary_erosion

    from genimg.inputs import resize

    source = np.asarray(resize(Image.open(photo).convert("RGB"), size, "fit"), dtype=np.int16)
    hard = np.asarray(resize(Image.open(mask).convert("L"), size, "fit")) >= 128
    hard = ~hard if invert else hard
    inside, outside = binary_erosion(hard, iterations=10), binary_erosion(~hard, iterations=14)
    assert inside.any() and outside.any()
    out = pixels(path)
    assert np.array_equal(out[outside], source[outside])
    assert np.abs(out[inside] - source[inside]).mean() > 10


def test_only_masked_area_mode(cli, tmp_path, tiny_models, photo, mask):
    [record] = _run(cli, "inpaint", photo, "x", "--mask", mask, "--mask-padding", "4", "--model", tiny_models["sd"],
                    "-W", "96", "-H", "64", *FAST, "-o", tmp_path / "crop.png")
    meta = read_metadata(record["path"])["parameters"]
    assert meta["Inpaint area"] == "Only masked" and meta["Masked area padding"] == "4"
    assert Image.open(record["path"]).size == (96, 64)
    _assert_repainted_only_inside(record["path"], photo, mask, (96, 64))
    [whole] = _run(cli, "inpaint", photo, "x", "--mask", mask, "--model", tiny_models["sd"], "-W", "96", "-H", "64",
                   *FAST, "-o", tmp_path / "whole.png")
    assert not np.array_equal(pixels(record["path"]), pixels(whole["path"]))  # the crop is painted at full size


def test_invert_mask_repaints_the_other_side(cli, tmp_path, tiny_models, photo, mask):
    [record] = _run(cli, "inpaint", photo, "x", "--mask", mask, "--invert-mask", "--model", tiny_models["sd"],
                    "-W", "96", "-H", "64", *FAST, "-o", tmp_path / "inv.png")
    _assert_repainted_only_inside(record["path"], photo, mask, (96, 64), invert=True)


def test_outpaint_fill_noise_starts_the_new_area_from_noise(cli, tmp_path, tiny_models, photo):
    from genimg.masks import outpaint_canvas

    edge, _ = outpaint_canvas(Image.open(photo).convert("RGB"), {"left": 32, "right": 0, "top": 0, "bottom": 0}, 8,
                              "edge", overlap=8, seed=3)
    noise, _ = outpaint_canvas(Image.open(photo).convert("RGB"), {"left": 32, "right": 0, "top": 0, "bottom": 0}, 8,
                               "noise", overlap=8, seed=3)
    border_edge, border_noise = np.asarray(edge)[:, :32].astype(float), np.asarray(noise)[:, :32].astype(float)
    assert border_edge.std(axis=1).mean() < 1 < 40 < border_noise.std(axis=1).mean()  # stretched rows vs noise
    common = ("--extend", "left", "32", "--strength", "0.6", "--model", tiny_models["sd"], *FAST)
    [a] = _run(cli, "outpaint", photo, "x", *common, "--fill", "edge", "-o", tmp_path / "edge.png")
    [b] = _run(cli, "outpaint", photo, "x", *common, "--fill", "noise", "-o", tmp_path / "noise.png")
    assert np.abs(pixels(a["path"])[:, :24] - pixels(b["path"])[:, :24]).mean() > 2
    assert np.array_equal(pixels(a["path"])[10:54, 70:120], pixels(b["path"])[10:54, 70:120])  # the photo is kept


def test_masks_from_alpha_and_rectangle_agree_with_a_mask_file(cli, tmp_path, tiny_models, photo):
    rgba = Image.open(photo).convert("RGBA").resize((96, 64))
    alpha = Image.new("L", rgba.size, 255)
    ImageDraw.Draw(alpha).rectangle((10, 10, 29, 29), fill=0)
    rgba.putalpha(alpha)
    rgba.save(tmp_path / "cutout.png")
    common = ("--model", tiny_models["sd"], *FAST)
    [a] = _run(cli, "inpaint", tmp_path / "cutout.png", "x", "--mask-from-alpha", *common, "-o", tmp_path / "a.png")
    [b] = _run(cli, "inpaint", tmp_path / "cutout.png", "x", "--mask-rect", "10,10,20,20", *common, "-o", tmp_path / "b.png")
    assert np.array_equal(pixels(a["path"]), pixels(b["path"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_outpaint_grows_the_canvas_and_keeps_the_middle(cli, tmp_path, tiny_models, photo, family):
    [record] = _run(cli, "outpaint", photo, "more sky", "--extend", "left,right", "32", "--model", tiny_models[family],
                    *FAST, "-o", tmp_path / "wide.png")
    factor = 16 if family == "flux" else 8
    w, h = Image.open(record["path"]).size
    assert w % factor == 0 and h % factor == 0 and w >= 100 + 64 and h >= 70
    out = pixels(record["path"])
    source = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
    # The inside of the original, away from the repainted seam, is unchanged.
    assert np.abs(out[10:60, 32 + 20:32 + 80] - source[10:60, 20:80]).max() <= 1


def test_inpaint_extend_is_the_same_as_outpaint(cli, tmp_path, tiny_models, photo):
    args = (photo, "x", "--extend", "top", "16", "--model", tiny_models["sd"], *FAST)
    [a] = _run(cli, "outpaint", *args, "-o", tmp_path / "a.png")
    [b] = _run(cli, "inpaint", *args, "-o", tmp_path / "b.png")
    assert np.array_equal(pixels(a["path"]), pixels(b["path"]))


@pytest.mark.parametrize("args,words", [
    (("img2img", "{missing}", "x"), ("does not exist",)),
    (("img2img", "{text}", "x"), ("not a readable image",)),
    (("img2img", "{photo}", "x", "--strength", "1.5"), ("--strength", "between 0 and 1")),
    (("inpaint", "{photo}", "x"), ("exactly one mask",)),
    (("inpaint", "{photo}", "x", "--mask", "{black}"), ("mask is empty",)),
    (("inpaint", "{photo}", "x", "--mask", "{tall}"), ("aspect ratio",)),
    (("inpaint", "{photo}", "x", "--mask-from-alpha"), ("transparency",)),
    (("inpaint", "{photo}", "x", "--mask-rect", "500,500,10,10"), ("outside",)),
    (("outpaint", "{photo}", "x", "--extend", "sideways", "10"), ("--extend",)),
    (("img2img", "{photo}", "x", "--resize", "squash"), ("--resize",)),
])
def test_bad_inputs_are_one_line_exit_2_and_write_nothing(cli, tmp_path, tiny_models, photo, args, words):
    (tmp_path / "text.png").write_text("hello")
    Image.new("L", (100, 70), 0).save(tmp_path / "black.png")
    Image.new("L", (20, 70), 255).save(tmp_path / "tall.png")
    paths = {"missing": tmp_path / "nope.png", "text": tmp_path / "text.png", "photo": photo,
             "black": tmp_path / "black.png", "tall": tmp_path / "tall.png"}
    args = [a.format(**paths) for a in args]
    out = tmp_path / "out.png"
    result = cli(*args, "--model", tiny_models["sd"], "--steps", "2", "-o", out)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1
    for word in words:
        assert word in result.err
    assert not out.exists()


def test_a_mask_of_another_size_but_same_aspect_is_resized_with_a_warning(cli, tmp_path, tiny_models, photo):
    small = Image.new("L", (50, 35), 0)
    ImageDraw.Draw(small).rectangle((10, 10, 30, 25), fill=255)
    small.save(tmp_path / "small.png")
    result = cli("inpaint", photo, "x", "--mask", tmp_path / "small.png", "--model", tiny_models["sd"], *FAST,
                 "--mask-blur", "0", "-o", tmp_path / "o.png")
    assert result.code == 0 and "the mask is 50x35; resized to the image's 100x70" in result.err, result
    # Away from the resized rectangle (20..60 x 20..50 in the 100x70 input, at 96x64 here) the input is kept.
    out = pixels(tmp_path / "o.png")
    from genimg.inputs import resize

    source = np.asarray(resize(Image.open(photo).convert("RGB"), out.shape[1::-1], "fit"), dtype=np.int16)
    keep = np.ones(out.shape[:2], bool)
    keep[16:52, 16:64] = False
    assert np.abs(out - source)[keep].max() <= 2 and np.abs(out - source)[~keep].mean() > 2


@pytest.fixture(scope="session")
def sd_inpainting_model(tmp_path_factory):
    from genimg.testing.tiny_models import build_sd

    folder = tmp_path_factory.mktemp("inpainting") / "tiny-sd-inpainting"
    build_sd(folder.parent / "build", inpaint=True).save_pretrained(folder, safe_serialization=True)
    return folder


def test_dedicated_inpainting_model_is_used_for_inpaint_and_refused_for_txt2img(cli, tmp_path, sd_inpainting_model, photo, mask):
    from genimg.models import resolve_model

    assert resolve_model(str(sd_inpainting_model)).variant == "inpaint"
    [record] = _run(cli, "inpaint", photo, "x", "--mask", mask, "--model", sd_inpainting_model, *FAST, "-o", tmp_path / "i.png")
    assert Image.open(record["path"]).size == (96, 64)
    _assert_repainted_only_inside(record["path"], photo, mask, (96, 64))
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    generate(GenerationSpec("x", model=str(sd_inpainting_model), task="inpaint", image=str(photo), mask=str(mask),
                            steps=2, seed=1), factory)
    pipe = factory.current.base
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline" and pipe.unet.config.in_channels == 9
    result = cli("txt2img", "x", "--model", sd_inpainting_model, "-o", tmp_path / "t.png")
    assert result.code == 2 and "inpainting model" in result.err


def test_an_image_too_large_for_the_preset_is_refused_with_advice(cli, tmp_path, tiny_models, photo, monkeypatch):
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config" / "presets").mkdir(parents=True)
    (tmp_path / "config" / "presets" / "tiny.toml").write_text('device = "cpu"\ndtype = "fp32"\nmax_megapixels = 0.005\n')
    result = cli("img2img", photo, "x", "--model", tiny_models["sd"], "--preset", "tiny", "--steps", "2",
                 "-o", tmp_path / "big.png")
    assert result.code == 2 and "--vae-tiling" in result.err and not (tmp_path / "big.png").exists()
    assert cli("img2img", photo, "x", "--model", tiny_models["sd"], "--preset", "tiny", "--steps", "2", "--vae-tiling",
               "-o", tmp_path / "ok.png").code == 0
